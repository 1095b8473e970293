"""SMS providers behind one interface: plivo (real SDK), simulator, dry-run.

`PlivoProvider` lives in `pipelines.providers.plivo` and is not imported here, so code that only
needs the interface or the dry run does not load the Plivo SDK.
"""

from pipelines.providers.base import (
    MAX_DESTINATIONS,
    Provider,
    SendRequest,
    SendResult,
    mask_phone,
)
from pipelines.providers.dry_run import DryRunProvider
from pipelines.providers.errors import (
    AmbiguousError,
    PermanentError,
    ProviderConfigError,
    ProviderError,
    RetryableError,
)

__all__ = [
    "MAX_DESTINATIONS",
    "AmbiguousError",
    "DryRunProvider",
    "PermanentError",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "RetryableError",
    "SendRequest",
    "SendResult",
    "mask_phone",
]
