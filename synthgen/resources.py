"""Where the shipped prompts/ and configs/ are, and where synthgen keeps what it caches.

A wheel carries them inside the package (pyproject's force-include); an editable install or a
source checkout has them at the top of the repo.
"""

from pathlib import Path
from typing import Mapping, Optional

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synthgen is installed without its {name}/ folder")


def user_cache(name: str, environ: Optional[Mapping[str, str]] = None) -> Path:
    """$XDG_CACHE_HOME/synthgen/NAME, or ~/.cache/synthgen/NAME: beside the embedded model's folder
    (the llm package knows nothing of the rest of synthgen, so the rule lives there)."""
    from synthgen.llm.model_file import cache_root

    return cache_root(environ) / name
