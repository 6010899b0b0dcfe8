"""synthgen eval mteb: MTEB tasks, named or on disk, run by mteb itself on a synthgen embedder.

A name is looked up in MTEB's registry (its data comes from the Hugging Face Hub, or the cache where
the Hub put it before); a folder is the passkey benchmark or a BEIR folder (synthgen.mteb_tasks).
Every task's data is loaded before the model, so a task whose data is neither on disk nor reachable
ends the command in one line that names it and the cache mteb looked in, before anything is run.
mteb writes each task's result (its own JSON) under OUT/results/<model>/<revision>/, and it is
always run afresh: a model folder trained again keeps its name.
"""

import logging
import os
from pathlib import Path
from typing import Any, Callable

from synthgen.errors import BadInput
from synthgen.tables import table

INSTALL = "pip install torch==2.13.0 'synthgen[train,mteb]'"


def import_mteb(results: Path) -> Any:
    """mteb, or BadInput without the extra. Its default result cache is made when it is imported
    (~/.cache/mteb): pointed at OUT unless MTEB_CACHE says otherwise."""
    os.environ.setdefault("MTEB_CACHE", str(results.resolve()))
    try:
        import mteb
    except ImportError:
        raise BadInput(f"synthgen eval mteb needs the mteb extra: {INSTALL}") from None
    return mteb


def parse_prompts(pairs: list[str]) -> dict[str, str]:
    """--prompt KEY=INSTRUCTION: a task name, a task type (Retrieval, STS, ...) or query/document."""
    prompts = {}
    for pair in pairs:
        key, sep, instruction = pair.partition("=")
        if not sep or not key.strip() or not instruction.strip():
            raise BadInput(f"--prompt {pair!r}: give KEY=INSTRUCTION, KEY a task name, a task type or query")
        prompts[key.strip()] = instruction.strip()
    return prompts


def resolve_tasks(names: list[str]) -> list[Any]:
    """Each name: a folder on disk, else an MTEB task name."""
    import mteb

    from synthgen.mteb_tasks import folder_task

    tasks: list[Any] = []
    for name in names:
        if Path(name).is_dir():
            tasks.append(folder_task(Path(name)))
            continue
        try:
            tasks.append(mteb.get_task(name))
        except KeyError as exc:
            hint = str(exc.args[0] if exc.args else exc).removeprefix("KeyError: ")
            raise BadInput(f"{name} is neither a folder nor an MTEB task: {hint}") from None
    if len({task.metadata.name for task in tasks}) < len(tasks):
        raise BadInput("the same task is named twice")
    return tasks


def load_task_data(task: Any) -> None:
    """Load a task's data now, or say in one line why it cannot be had."""
    from huggingface_hub import constants
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # its retry warnings would bury the one line below
    try:
        task.load_data()
    except BadInput:
        raise
    except Exception as exc:  # the Hub's, datasets' and the network's errors: many types
        dataset = task.metadata.dataset
        where = f"the Hugging Face dataset {dataset.get('path')} (revision {str(dataset.get('revision'))[:12]})"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, (ConnectionError, OSError)) or "offline" in reason.lower():
            raise BadInput(f"MTEB task {task.metadata.name}: its data, {where}, is not in the cache mteb reads "
                           f"({constants.HF_HUB_CACHE}) and the Hub cannot be reached ({reason}); run it once with "
                           f"a network, or set HF_HOME to a cache that holds it") from None
        raise BadInput(f"MTEB task {task.metadata.name}: cannot load {where}: {reason}") from None


def run(tasks: list[Any], encoder: Any, results: Path, batch_size: int, show_progress: bool) -> list[dict]:
    """Run the tasks; one row per task, split and subset."""
    import mteb

    if not show_progress:
        logging.getLogger("mteb").setLevel(logging.ERROR)
    encode: Any = {"batch_size": batch_size, "show_progress_bar": show_progress}
    outcome = mteb.evaluate(encoder, tasks, cache=mteb.ResultCache(results), overwrite_strategy="always",
                            encode_kwargs=encode,
                            show_progress_bar=show_progress, co2_tracker=False)
    rows = []
    for result in outcome.task_results:
        for split, scores in result.scores.items():
            for score in scores:
                main = next(t for t in tasks if t.metadata.name == result.task_name).metadata.main_score
                rows.append({"task": result.task_name, "split": split, "subset": score["hf_subset"],
                             "main_score": main, "value": score["main_score"],
                             "scores": {k: v for k, v in score.items() if isinstance(v, (int, float))}})
    return rows


def evaluate_mteb(names: list[str], open_encoder: Callable[[], Any], results: Path, batch_size: int,
                  show_progress: bool) -> dict:
    """Resolve the tasks, load their data, then the model, then run; the report."""
    import_mteb(results)
    tasks = resolve_tasks(names)
    for task in tasks:
        load_task_data(task)
    encoder = open_encoder()
    rows = run(tasks, encoder, results, batch_size, show_progress)
    meta = encoder.mteb_model_meta
    folder = results / "results" / meta.model_name_as_path() / meta.revision
    return {"benchmark": "mteb", **encoder.embedder.describe(), "query_template": encoder.template,
            "prompts": encoder.prompts_dict or {}, "results": str(folder), "tasks": rows}


def mteb_table(report: dict) -> str:
    rows = [[r["task"], r["subset"], r["split"], r["main_score"], f"{r['value']:.4f}"] for r in report["tasks"]]
    return table(f"MTEB, {report['model']} (results in {report['results']})",
                 ["task", "subset", "split", "main score", "value"], rows)

