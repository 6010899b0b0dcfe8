"""synthgen report from end to end: the eval files checked, each input read, the page written."""


import datetime
from pathlib import Path
from typing import Any, Optional

from synthgen import __version__
from synthgen.errors import BadInput
from synthgen.files import write_atomic


def report(paths: list[Path], out: Path, sample: int = 2_000, seed: int = 0, evals: Optional[list[Path]] = None,
           show_progress: bool = False) -> dict[str, Any]:
    """Write the report of `paths` to `out`; returns what it holds (inputs, examples, sample, bytes)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BadInput("synthgen report draws its charts with matplotlib: pip install 'synthgen[report]'") from None
    from synthgen.report.collect import collect
    from synthgen.report.evals import read_eval
    from synthgen.report.page import esc, page
    from synthgen.report.sections import all_sections

    if out.is_dir():
        raise BadInput(f"--out {out} is a folder: give the HTML file to write")
    results = [read_eval(path) for path in evals or []]  # a wrong file is said before the long read
    datasets = [collect(n, path, sample, seed, show_progress) for n, path in enumerate(paths)]
    examples = sum(d.stats["examples"] for d in datasets)
    made = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    inputs = ", ".join(d.label for d in datasets)
    counted = "; ".join(f"{d.label}: {d.stats['examples']:,} examples" for d in datasets)
    header = (f"<h1>synthgen report</h1><p class=\"meta\">{esc(counted)}. "
              f"Made {esc(made)} by synthgen {esc(__version__)}; this file needs no network.</p>")
    data: dict[str, Any] = {"datasets": [d.label for d in datasets], "rows": [row for d in datasets for row in d.rows]}
    text = page(f"synthgen report: {inputs}", all_sections(datasets, results, sample), header, data)
    write_atomic(out, text.encode("utf-8", "replace"))
    return {"inputs": len(datasets), "examples": examples, "sampled": len(data["rows"]), "bytes": out.stat().st_size,
            "out": str(out)}
