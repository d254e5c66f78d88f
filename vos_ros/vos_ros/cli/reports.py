"""The JSON a command writes with its figures (``--json``): one format, indented and newline-terminated."""

from __future__ import annotations

import json
from pathlib import Path


def write_json(path: str | Path, data: object) -> Path:
    """Write ``data`` to ``path`` as indented JSON, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
