"""Message templates: one SMS per file at ``<flow>/<name>.j2``; every flow has ``default``."""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES_ROOT = Path(__file__).resolve().parent
DEFAULT = "default"

# Plain names only, so a spec can never point outside the templates folder.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def template_path(flow: str, name: str = DEFAULT) -> Path:
    if not _NAME.match(flow) or not _NAME.match(name):
        raise ValueError(f"not a template name: {flow}/{name}")
    return TEMPLATES_ROOT / flow / f"{name}.j2"


def template_exists(flow: str, name: str = DEFAULT) -> bool:
    try:
        return template_path(flow, name).is_file()
    except ValueError:
        return False


def template_names(flow: str) -> list[str]:
    return sorted(p.stem for p in (TEMPLATES_ROOT / flow).glob("*.j2"))
