"""Where the shipped prompts/ and configs/ are, and where synthgen keeps what it caches.

A wheel carries them inside the package (pyproject's force-include); an editable install or a
source checkout has them at the top of the repo.
"""

import os
from pathlib import Path
from typing import Mapping, Optional

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synthgen is installed without its {name}/ folder")


def user_cache(name: str, environ: Optional[Mapping[str, str]] = None) -> Path:
    """$XDG_CACHE_HOME/synthgen/NAME, or ~/.cache/synthgen/NAME (a relative XDG_CACHE_HOME is ignored)."""
    base = (os.environ if environ is None else environ).get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "synthgen" / name
