"""Start-up: `synthgen --help` and `synthgen stats` must not import the heavy packages of other stages.

No timings here (they belong to bench/startup.py): what is checked is which modules a fresh
interpreter has loaded, which does not depend on the machine.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import synthgen
from stored import every_kind, write_jsonl

# openai alone takes most of a second to import; the others are the LLM, training, MTEB and cluster (ray) stacks.
HEAVY = ("openai", "aiohttp", "tenacity", "torch", "llama_cpp", "mteb", "sentence_transformers", "ray")
SOURCE = Path(synthgen.__file__).resolve().parents[1]

PROBE = """
import json, sys
from synthgen.cli import main
{call}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""
RUN_MAIN = """
try:
    main({argv!r})
except SystemExit:
    pass
"""


def loaded(call: str, cwd: Path) -> set[str]:
    """The top-level packages a fresh interpreter holds after `import synthgen.cli` and CALL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(call=call)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_importing_the_cli_imports_no_heavy_package(workdir):
    modules = loaded("", workdir)
    assert "typer" in modules  # the probe works
    assert not modules & set(HEAVY)


@pytest.mark.parametrize("command", ["help", "stats"])
def test_help_and_stats_import_no_heavy_package(workdir, command):
    argv = ["--help"] if command == "help" else ["stats", str(write_jsonl(workdir / "examples.jsonl", every_kind()))]
    assert not loaded(RUN_MAIN.format(argv=argv), workdir) & set(HEAVY)


def test_start_up_names_match_their_modules():
    """synthgen.names repeats the subtypes, whose own module is heavy to import; they must not drift."""
    from synthgen import kinds, names

    assert names.SUBTYPES == kinds.SUBTYPES
