"""Where the shipped prompts/ and configs/ are.

A wheel carries them inside the package (pyproject's force-include); an editable install or a
source checkout has them at the top of the repo.
"""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"synthgen is installed without its {name}/ folder")
