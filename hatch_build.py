"""Builds synthgen's compiled module (synthgen/_dedup_native.c, dedup's hot loops) into the wheel.

Where no C compiler is found the wheel is pure Python, says so, and dedup takes its pure-Python path:
the same output, about half the speed (bench/RESULTS.md). setuptools does the compiling: it knows each
platform's compiler and the flags Python was built with.
"""

import shutil
import tempfile
from pathlib import Path

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (python hatch_build.py), where hatchling need not be installed
    BuildHookInterface = object

MODULE, SOURCE = "synthgen._dedup_native", "synthgen/_dedup_native.c"


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        self._scratch = tempfile.mkdtemp(prefix="synthgen-build-")
        try:
            built = compile_module(root, Path(self._scratch))
        except Exception as error:  # no compiler, no headers: a pure wheel, and dedup's Python path
            self.app.display_warning(f"synthgen: {SOURCE} was not compiled ({error}); dedup runs in pure Python")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version == "editable":  # the package is imported from the source tree: the module goes there
            shutil.copy2(built, root / "synthgen" / built.name)
        else:
            build_data["force_include"][str(built)] = f"synthgen/{built.name}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_scratch", None):
            shutil.rmtree(self._scratch, ignore_errors=True)


def compile_module(root: Path, scratch: Path) -> Path:
    """Compile the module into `scratch`; returns the built file."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    command = build_ext(Distribution({"name": "synthgen", "ext_modules": [Extension(MODULE, [str(root / SOURCE)])]}))
    command.build_lib = str(scratch / "lib")
    command.build_temp = str(scratch / "temp")
    command.ensure_finalized()
    command.run()
    return Path(command.get_ext_fullpath(MODULE))


if __name__ == "__main__":  # python hatch_build.py: build it in place, for work on the source tree
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as scratch:
        built = compile_module(here, Path(scratch))
        shutil.copy2(built, here / "synthgen" / built.name)
        print(here / "synthgen" / built.name)
