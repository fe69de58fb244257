"""Reading a TOML settings file, with problems reported in one line."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path) -> dict[str, Any]:
    """The file's top-level table; ValueError with one line if it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # Notepad writes a BOM
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
