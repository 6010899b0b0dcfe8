"""synthgen's compiled module (synthgen/_dedup_native.c), or None where it was not built.

It is built when the package is installed, where a C compiler is found (hatch_build.py); everything it
does has a pure-Python path beside it that gives the same results, slower.
"""

from types import ModuleType
from typing import Optional

dedup_native: Optional[ModuleType]
try:
    from synthgen import _dedup_native as dedup_native
except ImportError:
    dedup_native = None
