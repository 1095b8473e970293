"""The callback service's settings, read from the environment when it starts (never at import)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pipelines.settings import Settings, get_sender_settings

TRUE_WORDS = ("1", "true", "yes", "on")
# Plivo's forms are small: an SMS is at most 1,600 characters, which percent-encoded UTF-8
# stays well under this. Anything bigger is not a Plivo callback.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_ROTATE_SECONDS = 60.0


class CallbackConfigError(ValueError):
    """A setting that makes the service unsafe or unusable; the message names the variable."""


@dataclass(frozen=True)
class CallbackSettings:
    events_dir: Path
    auth_token: str | None
    public_url: str | None  # CALLBACK_PUBLIC_URL: scheme://host[:port][/prefix]
    skip_signatures: bool = False  # local development only; logged loudly at start
    brand_name: str = "Acme Goods"
    support_contact: str = "help@acme.example"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rotate_seconds: float = DEFAULT_ROTATE_SECONDS

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise CallbackConfigError("CALLBACK_MAX_BODY_BYTES must be at least 1024")
        if self.rotate_seconds <= 0:
            raise CallbackConfigError("CALLBACK_ROTATE_SECONDS must be positive")
        if self.skip_signatures:
            return
        if not self.auth_token:
            raise CallbackConfigError(
                "PLIVO_AUTH_TOKEN is not set: callbacks cannot be authenticated "
                "(for local development only: CALLBACK_INSECURE_SKIP_SIGNATURES=1)"
            )
        if not self.public_url:
            raise CallbackConfigError(
                "CALLBACK_PUBLIC_URL is not set: Plivo signs the public URL it calls, "
                "e.g. https://hooks.example.com"
            )
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise CallbackConfigError(
                f"CALLBACK_PUBLIC_URL={self.public_url!r} must be scheme://host[/prefix]"
            )

    def public_url_for(self, path: str, query: str = "") -> str:
        """The URL Plivo called for a request path: what its signatures cover."""
        base = (self.public_url or "").rstrip("/")
        return f"{base}{path}" + (f"?{query}" if query else "")


def get_callback_settings(environ: dict[str, str] | None = None) -> CallbackSettings:
    env = os.environ if environ is None else environ
    sender = get_sender_settings(dict(env))
    # The same folder the sender reads suppressions from (pipelines.settings.Settings).
    data_dir = Path(env.get("POSTPURCHASE_DATA_DIR", "data")).resolve()
    return CallbackSettings(
        events_dir=Settings(data_dir).events_dir,
        auth_token=env.get("PLIVO_AUTH_TOKEN", "").strip() or None,
        public_url=env.get("CALLBACK_PUBLIC_URL", "").strip() or None,
        skip_signatures=env.get("CALLBACK_INSECURE_SKIP_SIGNATURES", "").strip().lower()
        in TRUE_WORDS,
        brand_name=sender.brand_name,
        support_contact=sender.support_contact,
        max_body_bytes=int(
            env.get("CALLBACK_MAX_BODY_BYTES", "").strip() or DEFAULT_MAX_BODY_BYTES
        ),
        rotate_seconds=float(
            env.get("CALLBACK_ROTATE_SECONDS", "").strip() or DEFAULT_ROTATE_SECONDS
        ),
    )
