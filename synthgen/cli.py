"""The command line: one thin function per command; the work is in the stages."""

import asyncio
import enum
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from synthgen import __version__
from synthgen.brainstorm import brainstorm_subtypes
from synthgen.config import Config, load_config, parse_weights
from synthgen.dedup import dedup as dedup_files
from synthgen.errors import BadInput, Interrupted, RunStopped
from synthgen.generate import EXAMPLES, REJECTS, generate as run_generation
from synthgen.kinds import SUBTYPES

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Synthetic training data for text-embedding models, after the E5-mistral recipe.",
)

Subtype = enum.Enum("Subtype", {name: name for name in SUBTYPES}, type=str)  # type: ignore[misc]
Key = enum.Enum("Key", {"example": "example", "query": "query"}, type=str)  # type: ignore[misc]
Backend = enum.Enum("Backend", {"auto": "auto", "openai": "openai", "local": "local"}, type=str)  # type: ignore[misc]

ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="A TOML file over configs/default.toml.")]
BaseUrl = Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")]
Model = Annotated[Optional[str], typer.Option(help="Model name the endpoint serves.")]
ApiKey = Annotated[Optional[str], typer.Option(help="API key (better: OPENAI_API_KEY).", show_default=False)]
BackendOpt = Annotated[Optional[Backend], typer.Option("--backend", help="auto, openai or local.")]
ModelPath = Annotated[Optional[Path], typer.Option(help="A GGUF file for the local backend instead of the built-in model.")]
Concurrency = Annotated[Optional[int], typer.Option(min=1, max=4096, help="Requests in flight at once.")]
TasksDir = Annotated[Optional[Path], typer.Option("--tasks", help="Folder of task files (default data/tasks).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"synthgen {__version__}")
        raise typer.Exit()


def settings(config_file: Optional[Path], **flags: Any) -> Config:
    """Load the config with the flags on top; a flag left unset is None and changes nothing."""
    llm = {k: flags.pop(k) for k in ("base_url", "model", "api_key") if k in flags}
    model_path = flags.pop("model_path", None)
    llm["model_path"] = str(model_path) if model_path is not None else None
    backend = flags.pop("backend", None)
    llm["backend"] = backend.value if backend is not None else None
    overrides: dict[str, Any] = {"llm": llm, "generate": {}}
    for name in ("concurrency", "seed", "out", "tasks"):
        value = flags.pop(name, None)
        overrides["generate"][name] = str(value) if isinstance(value, Path) else value
    for name in ("kinds", "languages"):
        text = flags.pop(name, None)
        if text is not None:
            overrides[name] = parse_weights(text, name)
    assert not flags, f"unhandled flags {flags}"
    return load_config(config_file, os.environ, overrides)


@app.command()
def brainstorm(
    subtype: Annotated[Optional[Subtype], typer.Option(help="Which subtype; all four when left out.")] = None,
    rounds: Annotated[Optional[int], typer.Option(min=1, help="Calls of about 20 tasks each.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Task file to append to (default data/tasks/<subtype>.jsonl).")] = None,
    tasks: TasksDir = None,
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    model: Model = None,
    api_key: ApiKey = None,
    backend: BackendOpt = None,
    model_path: ModelPath = None,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
) -> None:
    """Stage 1: brainstorm task definitions for the asymmetric subtypes."""
    if out is not None and subtype is None:
        raise BadInput("--out needs --subtype: one file holds one subtype's tasks")
    cfg = settings(config, base_url=base_url, model=model, api_key=api_key, backend=backend,
                   model_path=model_path, concurrency=concurrency, tasks=tasks)
    subtypes = [subtype.value] if subtype else list(SUBTYPES)
    results = asyncio.run(brainstorm_subtypes(cfg, subtypes, rounds, out, show_progress=not quiet))
    for result in results:
        failed = f" ({result.rounds_failed} rounds gave nothing usable)" if result.rounds_failed else ""
        typer.echo(f"{result.subtype}: {result.added} new tasks in {result.path}{failed}")


@app.command()
def generate(
    n: Annotated[int, typer.Option("--n", min=1, help="How many valid examples to make.")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default data/raw).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the plan.")] = None,
    kinds: Annotated[Optional[str], typer.Option(help="Kind mix, e.g. short-long=0.4,sts=0.1.")] = None,
    languages: Annotated[Optional[str], typer.Option(help="Language weights, e.g. Chinese=0.6,English=0.4.")] = None,
    max_requests: Annotated[Optional[int], typer.Option(min=1, help="Cap on requests (default from the config).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over: remove the run already in --out.")] = False,
    tasks: TasksDir = None,
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    model: Model = None,
    api_key: ApiKey = None,
    backend: BackendOpt = None,
    model_path: ModelPath = None,
    concurrency: Concurrency = None,
    quiet: Quiet = False,
) -> None:
    """Stage 2: generate N valid examples into OUT/examples.jsonl (resumes an interrupted run)."""
    cfg = settings(config, base_url=base_url, model=model, api_key=api_key, backend=backend,
                   model_path=model_path, concurrency=concurrency, seed=seed, out=out, tasks=tasks, kinds=kinds, languages=languages)
    folder = Path(cfg.generate.out)
    try:
        run = asyncio.run(run_generation(cfg, n, folder, overwrite, show_progress=not quiet, max_requests=max_requests))
    except (KeyboardInterrupt, Interrupted):
        typer.echo(f"interrupted: what was written in {folder} is kept; to resume, run: {resume_command()}", err=True)
        raise typer.Exit(130) from None
    rejected = ", ".join(f"{reason} {count}" for reason, count in sorted(run.reasons.items())) or "none"
    typer.echo(f"{run.valid} valid examples in {folder / EXAMPLES}; rejected: {rejected} (see {folder / REJECTS})")
    if run.valid < n:
        typer.echo(f"stopped short of {n}: the cap of {run.cap} requests was reached "
                   f"(raise --max-requests and run again to go on)", err=True)
        raise typer.Exit(1)


@app.command()
def dedup(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option(help="Where the survivors go.")] = Path("data/dedup/examples.jsonl"),
    key: Annotated[Key, typer.Option(help="example: kind+query+positive+negative; query: kind+query.")] = Key.example,
    quiet: Quiet = False,
) -> None:
    """Remove exact duplicates, keeping the first occurrence."""
    result = dedup_files(paths, out, key.value, show_progress=not quiet)
    skipped = f", {result.not_examples} not examples" if result.not_examples else ""
    typer.echo(f"read {result.read} lines from {result.files} files: kept {result.kept}, removed {result.removed}, "
               f"unreadable {result.unreadable}{skipped} -> {out}")


def resume_command() -> str:
    """The command line that was run, minus an --api-key value (the key is never printed)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--api-key":
            skip = True
        elif not arg.startswith("--api-key="):
            args.append(arg)
    return shlex.join(["synthgen", *args])


def _fail(message: str, status: int) -> None:
    print(f"synthgen: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(status)


def main(argv: Optional[list[str]] = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        status = app(args=args or ["--help"], prog_name="synthgen", standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: bad flag, value out of range, missing file
        _fail(exc.format_message(), 2)
    except typer.Abort:
        _fail("aborted", 130)
    except BadInput as exc:
        _fail(str(exc), 2)
    except RunStopped as exc:
        _fail(f"stopped: {exc}", 1)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot use{where}: {exc.strerror or exc}", 2)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
