"""Near-duplicate tasks in task files: the paper's breadth is 150k distinct instructions, and
near-copies ("... in the city" / "... in a city") collapse it while exact checks let them through.

`synthgen curate --tasks DIR --out OUT` writes OUT/<subtype>.jsonl (the kept tasks, the same layout
as DIR, so `generate --tasks OUT` uses them), OUT/dropped.jsonl (each dropped task and the kept task
it nearly repeats) and OUT/report.json.
"""

from pathlib import Path
from typing import Any

import msgspec

from synthgen.config import Config
from synthgen.curate.near_duplicates import NearDuplicates
from synthgen.errors import BadInput
from synthgen.names import SUBTYPES
from synthgen.store import (
    DROPPED_NAME,
    REPORT_NAME,
    DroppedTask,
    HeldFolder,
    task_file,
    write_records,
    write_report,
)

REASON = "near-duplicate"


def curate_tasks(tasks_dir: Path, out: Path, config: Config) -> dict[str, Any]:
    settings = config.curate.tasks
    sources = [task_file(tasks_dir, subtype) for subtype in SUBTYPES]
    sources = [source for source in sources if source.path.is_file()]
    if not sources:
        raise BadInput(f"no task file in {tasks_dir} (looked for {', '.join(s + '.jsonl' for s in SUBTYPES)})")
    if out.resolve() == tasks_dir.resolve():
        raise BadInput("--out must be another folder than --tasks: the task files are read, not rewritten")
    report: dict[str, Any] = {"tasks": str(tasks_dir), "by_subtype": {},
                              "settings": settings.model_dump(mode="json")}
    dropped: list[DroppedTask] = []
    with HeldFolder(out, "curate"):
        for source in sources:
            index = NearDuplicates(settings.threshold, settings.num_perm, settings.bands, settings.word_shingle,
                                   settings.char_shingle, settings.exact)
            kept = []
            records = source.records()
            for record in records:
                first = index.first_like(record.task, "English")
                if first is None:
                    kept.append(record)
                else:
                    dropped.append(DroppedTask(**msgspec.structs.asdict(record), reason=REASON,
                                               duplicate_of=kept[first].task))
            write_records(task_file(out, source.subtype).path, kept)
            report["by_subtype"][source.subtype] = {"in": len(records), "kept": len(kept),
                                                    "dropped": len(records) - len(kept)}
        write_records(out / DROPPED_NAME, dropped)
        write_report(out / REPORT_NAME, report)
    return report
