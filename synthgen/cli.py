"""The command line: one thin function per command; the work is in the stages."""

import enum
import functools
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from synthgen import __version__
from synthgen.console import one_line
from synthgen.errors import BadInput, BudgetReached, Interrupted, RunStopped
from synthgen.instructions import QUERY_TEMPLATE, check_template
from synthgen.llm.base import StopRun
from synthgen.names import EXPORT_FORMATS, IMPORT_FORMATS, MAX_EXAMPLES, MAX_REQUESTS, SUBTYPES
from synthgen.resources import resource_dir
from synthgen.store import DROPPED_NAME, EXAMPLES_NAME, REPORT_NAME, RunFolder

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The stages are imported inside their commands: `synthgen --help` must not pay for openai & co.
if TYPE_CHECKING:
    from synthgen.config import Config
    from synthgen.results_files import ResultsFileSession

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Synthetic training data for text-embedding models, after the E5-mistral recipe.",
)

Subtype = enum.Enum("Subtype", {name: name for name in SUBTYPES}, type=str)  # type: ignore[misc]
Key = enum.Enum("Key", {"example": "example", "query": "query"}, type=str)  # type: ignore[misc]
Backend = enum.Enum("Backend", {"auto": "auto", "openai": "openai", "local": "local"}, type=str)  # type: ignore[misc]


@functools.lru_cache(maxsize=1)
def _shipped_config() -> dict[str, Any]:
    # tomllib alone, no pydantic: the help is built at import and must stay cheap. A file that
    # cannot be read leaves the help without defaults; loading the config then says what is wrong.
    try:
        with open(resource_dir("configs") / "default.toml", "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):
        return {}


def _default(table: str, key: str = "") -> str:
    """' [default from config: VALUE]' for a help string: the options default to None (unset), and
    the value that then applies is configs/default.toml's."""
    value = _shipped_config().get(table)
    if key:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None or value == {}:
        return ""
    if table == "languages":
        top = sorted(value.items(), key=lambda item: -item[1])[:3]
        text = f"{len(value)} languages, " + ", ".join(f"{k}={w:g}" for k, w in top) + ", ..."
    elif isinstance(value, dict):
        text = ",".join(f"{k}={w:g}" for k, w in value.items())
    else:
        text = f"{value:g}" if isinstance(value, float) else str(value)
    return f" [default from config: {text}]"


def _rate(text: str) -> float:
    """A --rpm or --tpm value: a finite number >= 0 (typer's min=0 let inf through, and called nan below 0)."""
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"{text} is not a finite number >= 0")
    return value


def _base_url(value: Optional[str]) -> Optional[str]:
    """An empty --base-url is refused: the client would take it as unset and call api.openai.com."""
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty (leave the flag out for OPENAI_BASE_URL or the provider's default)")
    return value


def _base_urls(values: Optional[list[str]]) -> Optional[list[str]]:
    """--base-url, given once or more (several endpoints): each one an http(s) URL, none twice."""
    if not values:
        return None
    from synthgen.config import check_url, repeated_url

    for value in values:
        _base_url(value)
        try:
            check_url(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    twice = repeated_url(values)
    if twice is not None:
        raise typer.BadParameter(f"{twice} is given twice")
    return values


ConfigFile = Annotated[Optional[Path], typer.Option("--config", help="A TOML file over configs/default.toml.")]
BaseUrl = Annotated[Optional[list[str]], typer.Option(
    callback=_base_urls, metavar="URL", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1; again for "
                                             "several (each with --concurrency; the least busy gets each request).")]
Model = Annotated[Optional[str], typer.Option(help="Model name the endpoint serves." + _default("llm", "model"))]
ApiKey = Annotated[Optional[str], typer.Option(help="API key (better: OPENAI_API_KEY).", show_default=False)]
BackendOpt = Annotated[Optional[Backend], typer.Option("--backend", help="auto, openai or local." + _default("llm", "backend"))]
ModelPath = Annotated[Optional[Path], typer.Option(help="A GGUF file for the local backend instead of the built-in model.")]
Rpm = Annotated[Optional[float], typer.Option(parser=_rate, metavar="<float>", help="Requests per minute at most (0: no limit)." + _default("llm", "rpm"))]
Tpm = Annotated[Optional[float], typer.Option(parser=_rate, metavar="<float>", help="Tokens per minute at most (0: no limit)." + _default("llm", "tpm"))]
PriceIn = Annotated[Optional[float], typer.Option(
    parser=_rate, metavar="USD", help="Price of a million prompt tokens (default: synthgen's table, configs/prices.toml).")]
PriceOut = Annotated[Optional[float], typer.Option(
    parser=_rate, metavar="USD", help="Price of a million completion tokens (with --price-in).")]
Concurrency = Annotated[Optional[int], typer.Option(min=1, max=4096, help="Requests in flight at once (at each endpoint, with several)." + _default("generate", "concurrency"))]
TasksDir = Annotated[Optional[Path], typer.Option("--tasks", help="Folder of task files (default data/tasks).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"synthgen {__version__}")
        raise typer.Exit()


def settings(config_file: Optional[Path], **flags: Any) -> "Config":
    """Load the config with the flags on top; a flag left unset is None and changes nothing."""
    from synthgen.config import load_config, parse_weights

    llm: dict[str, Any] = {k: flags.pop(k) for k in ("model", "api_key") if k in flags}
    urls = flags.pop("base_url", None)
    if urls:  # flags over the config: one endpoint, or several in place of the config's [[llm.endpoints]]
        llm["base_url"], llm["endpoints"] = (urls[0], []) if len(urls) == 1 else (None, [{"base_url": u} for u in urls])
    for name in ("rpm", "tpm"):
        llm[name] = flags.pop(name, None)
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
    overrides["curate"] = flags.pop("curate", None)
    overrides["cost"] = {name: flags.pop(name, None) for name in ("price_in", "price_out", "budget")}
    assert not flags, f"unhandled flags {flags}"
    return load_config(config_file, os.environ, overrides)


@app.command()
def brainstorm(
    subtype: Annotated[Optional[Subtype], typer.Option(help="Which subtype; all four when left out.")] = None,
    rounds: Annotated[Optional[int], typer.Option(min=1, help="Calls of about 20 tasks each." + _default("brainstorm", "rounds"))] = None,
    n_tasks: Annotated[Optional[int], typer.Option("--n-tasks", min=1, max=MAX_EXAMPLES, help="Brainstorm until the file holds this many distinct tasks (instead of --rounds).")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Task file to append to (default data/tasks/<subtype>.jsonl).")] = None,
    tasks: TasksDir = None,
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    model: Model = None,
    api_key: ApiKey = None,
    backend: BackendOpt = None,
    model_path: ModelPath = None,
    concurrency: Concurrency = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    quiet: Quiet = False,
) -> None:
    """Stage 1: brainstorm task definitions for the asymmetric subtypes."""
    import asyncio

    from synthgen.brainstorm import brainstorm_subtypes

    if out is not None and subtype is None:
        raise BadInput("--out needs --subtype: one file holds one subtype's tasks")
    if n_tasks is not None and rounds is not None:
        raise BadInput("give --n-tasks or --rounds, not both")
    cfg = settings(config, base_url=base_url, model=model, api_key=api_key, backend=backend,
                   model_path=model_path, concurrency=concurrency, rpm=rpm, tpm=tpm, tasks=tasks)
    subtypes = [subtype.value] if subtype else list(SUBTYPES)
    results = asyncio.run(brainstorm_subtypes(cfg, subtypes, rounds, out, show_progress=not quiet, wanted=n_tasks))
    for result in results:
        failed = f", {result.rounds_failed} rounds gave nothing usable" if result.rounds_failed else ""
        got = f"{result.yield_:.0%} of the tasks asked for were new" if result.yield_ is not None else "no round sent"
        typer.echo(f"{result.subtype}: {result.added} new tasks in {result.path}, {result.total} in all ({got}{failed})")
        if result.exhausted:
            typer.echo(f"{result.subtype}: brainstorming stopped short of {result.wanted or 'the rounds asked for'}: "
                       f"{result.stop_reason}")
    # Every round failing is not a result: say why and exit 1 (the tasks of other subtypes are kept).
    barren = [r for r in results if r.barren]
    if barren:
        raise RunStopped("; ".join(f"no round for {r.subtype} gave a usable task ({r.stop_reason or r.failures[0]})"
                                   for r in barren))


@app.command()
def generate(
    n: Annotated[int, typer.Option("--n", min=1, max=MAX_EXAMPLES, help="How many valid examples to make.")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default data/raw).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the plan." + _default("generate", "seed"))] = None,
    kinds: Annotated[Optional[str], typer.Option(help="Kind mix, e.g. short-long=0.4,sts=0.1." + _default("kinds"))] = None,
    languages: Annotated[Optional[str], typer.Option(help="Language weights, e.g. German=0.6,English=0.4." + _default("languages"))] = None,
    max_requests: Annotated[Optional[int], typer.Option(min=1, max=MAX_REQUESTS, help="Cap on requests (default from the config).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over: remove the run already in --out.")] = False,
    tasks: TasksDir = None,
    corpus: Annotated[Optional[Path], typer.Option(
        help="A folder of `synthgen corpus ingest`: ground every example in one of its passages "
             "([generate.corpus]: no brainstorm, the LLM writes each task), then mine negatives among them "
             "into OUT-mined.")] = None,
    shard: Annotated[Optional[str], typer.Option(
        metavar="K/M", help="Make only shard K of M (K from 0): the plan indices i with i % M == K, into "
                            "OUT-shards/K-of-M. Same seed, config and task files on every machine; "
                            "`synthgen merge OUT-shards --out OUT` joins them.")] = None,
    ray: Annotated[Optional[str], typer.Option(
        metavar="ADDRESS", help="Run the shards as Ray tasks and merge them into OUT: 'local' (a Ray instance on "
                                "this machine), 'auto' (the cluster this machine is in) or the head's address "
                                "(extra: ray).")] = None,
    shards: Annotated[Optional[int], typer.Option(
        min=1, max=100_000, help="With --ray: how many shards (default: one per node of the cluster).")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Through the OpenAI Batch API ([batch]: half price, answers "
                                                        "within 24 h); the same command again collects.")] = False,
    write_requests: Annotated[Optional[Path], typer.Option(
        metavar="FILE", help="Write the next round's requests for `vllm run-batch -i FILE` instead of sending them.")] = None,
    read_results: Annotated[Optional[Path], typer.Option(
        metavar="FILE", exists=True, dir_okay=False,
        help="Read a results file (`vllm run-batch -o FILE`) into the run, then write the next round's requests.")] = None,
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    model: Model = None,
    api_key: ApiKey = None,
    backend: BackendOpt = None,
    model_path: ModelPath = None,
    concurrency: Concurrency = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    price_in: PriceIn = None,
    price_out: PriceOut = None,
    budget: Annotated[Optional[float], typer.Option(
        parser=_rate, metavar="USD", help="Stop before the run (all its sessions, brainstorm included) spends more "
                                          "than this; needs a price (the table's, or --price-in/--price-out).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Send nothing: print the requests, tokens and cost the "
                                                             "run would take (a resumed run: what is left).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: the estimate as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    """Stage 2: generate N valid examples into the run folder OUT (resumes an interrupted run)."""
    import asyncio

    from synthgen.generate import generate as run_generation
    from synthgen.prices import dollars
    from synthgen.rounds import BatchOptions

    if as_json and not dry_run:
        raise BadInput("--json goes with --dry-run")
    part = _shard_flags(shard, ray, shards, api_key)
    if batch and (write_requests or read_results):
        raise BadInput("--batch sends the requests to the Batch API; --write-requests and --read-results are for an "
                       "offline runner: give one or the other")
    rounds = BatchOptions(batch, write_requests, read_results) if batch or write_requests or read_results else None
    if rounds is not None and (part is not None or ray is not None):
        from synthgen.shards import NOT_WITH_ROUNDS

        raise BadInput(NOT_WITH_ROUNDS)
    if dry_run and (part is not None or ray is not None):
        raise BadInput("--dry-run prices the whole plan of --n examples: leave out --shard and --ray")
    if budget is not None and (rounds is not None or ray is not None):
        # The meter stops live requests before they are sent, in one process.
        raise BadInput("--budget stops a live run in one process; a batch round or a Ray run is priced before it is "
                       "sent: run `generate --dry-run` (it gives the Batch API's price too)")
    cfg = settings(config, base_url=base_url, model=model, api_key=api_key, backend=backend,
                   model_path=model_path, concurrency=concurrency, rpm=rpm, tpm=tpm, seed=seed, out=out, tasks=tasks, kinds=kinds, languages=languages,
                   price_in=price_in, price_out=price_out, budget=budget)
    folder = Path(cfg.generate.out)
    corpus_tasks = corpus is not None and tasks is not None
    if dry_run:
        import json

        from synthgen.dryrun import dry_run as estimate
        from synthgen.dryrun import render

        report = estimate(cfg, n, folder, max_requests, corpus, corpus_tasks, overwrite)
        typer.echo(json.dumps(report, indent=2) if as_json else render(report))
        return
    if rounds is not None and cfg.llm.backend == "local":
        raise BadInput("the embedded model answers live: --batch, --write-requests and --read-results are for an "
                       "endpoint's model")
    if batch:
        from synthgen.batch_api import batch_endpoint

        batch_endpoint(cfg)  # before a brainstorm spends anything
    if ray is not None:
        _generate_on_ray(cfg, n, folder, ray, shards, overwrite, max_requests, corpus, corpus_tasks, quiet)
        return
    if part is not None:
        folder = RunFolder(folder).shard_folder(part.index, part.count)
    try:
        run = asyncio.run(run_generation(cfg, n, folder, overwrite, show_progress=not quiet, max_requests=max_requests,
                                         corpus=corpus, corpus_tasks=corpus_tasks, shard=part, batch=rounds))
    except (KeyboardInterrupt, Interrupted):
        typer.echo(f"interrupted: what was written in {folder} is kept; to resume, run: {resume_command()}", err=True)
        raise typer.Exit(130) from None
    except BudgetReached as exc:
        more = math.ceil((exc.enough or 2 * (cfg.cost.budget or 0)) * 100) / 100
        typer.echo(f"stopped: {exc}. What was written in {folder} is kept; to go on, raise the budget (about "
                   f"{dollars(more)} lets the run finish at its cost so far) and run: "
                   f"{resume_command(budget=f'{more:.2f}')}", err=True)
        raise typer.Exit(1) from None
    ledger, files = run.ledger, run.folder
    if rounds is not None and not rounds.api:
        from synthgen.results_files import ResultsFileSession

        assert isinstance(run, ResultsFileSession)
        _report_files_round(run, cfg)
        if ledger.valid < n and run.written is not None:
            return
    rejected = ", ".join(f"{reason} {count}" for reason, count in sorted(ledger.reasons.items())) or "none"
    cost = ledger.cost()
    spent = f"; cost {dollars(cost['usd'])} ({cost['price']['source']})" if cost else ""
    typer.echo(f"{ledger.valid} valid examples in {files.examples}; rejected: {rejected} (see {files.rejects}){spent}")
    target = ledger.header.n  # a shard's share of n, or n
    if ledger.valid < target:
        typer.echo(f"stopped short of {target}: the cap of {ledger.header.request_cap} requests was reached "
                   f"(raise --max-requests and run again to go on)", err=True)
        raise typer.Exit(1)
    if part is not None:
        typer.echo(f"shard {part} is complete; once every shard is: synthgen merge {folder.parent} "
                   f"--out {cfg.generate.out}" + (" (then mine its negatives with curate --mine-negatives --corpus)"
                                                   if corpus is not None else ""))
    elif corpus is not None and cfg.generate.corpus.negatives:
        _mine_grounded_run(cfg, files, corpus, quiet)


def _shard_flags(shard: Optional[str], ray: Optional[str], shards: Optional[int], api_key: Optional[str]) -> Any:
    """--shard K/M parsed (None without it); BadInput for flags that do not go together."""
    if shards is not None and ray is None:
        raise BadInput("--shards is for --ray (with --shard, M is the M of K/M)")
    if ray is not None and shard is not None:
        raise BadInput("give --shard or --ray, not both: --ray runs every shard")
    if ray is not None and api_key:
        raise BadInput("--ray does not send --api-key to the cluster: set OPENAI_API_KEY on every node (a local "
                       "Ray instance takes this shell's)")
    if shard is None:
        return None
    from synthgen.shards import Shard

    try:
        return Shard.parse(shard)
    except ValueError as exc:
        raise BadInput(f"--shard {exc}") from None


def _generate_on_ray(cfg: "Config", n: int, out: Path, address: str, shards: Optional[int], overwrite: bool,
                     max_requests: Optional[int], corpus: Optional[Path], corpus_tasks: bool, quiet: bool) -> None:
    from synthgen.ray_shards import run_on_ray

    try:
        run = run_on_ray(cfg, n, out, address, shards, overwrite, max_requests, corpus, corpus_tasks,
                         show_progress=not quiet)
    except (KeyboardInterrupt, Interrupted):
        typer.echo(f"interrupted: what the shards wrote in {RunFolder(out).shards} is kept; to resume, run: "
                   f"{resume_command()}", err=True)
        raise typer.Exit(130) from None
    again = f"to go on, run the same command again (every shard resumes): {resume_command()}"
    complete = _report_merge(run.merged, again)
    if run.stopped:
        raise RunStopped("; ".join(run.stopped) + f" (what every shard made is merged into {out})")
    if not complete:
        raise typer.Exit(1)
    if corpus is not None and cfg.generate.corpus.negatives:
        _mine_grounded_run(cfg, run.merged.out, corpus, quiet)


def _report_merge(result: Any, again: Optional[str] = None) -> bool:
    """Print the merge's summary, and what is missing on stderr; returns whether nothing is."""
    from synthgen.merge import describe

    summary, gaps = describe(result, again)
    typer.echo(summary)
    for line in gaps:
        typer.echo(line, err=True)
    return not gaps


@app.command()
def merge(
    paths: Annotated[list[Path], typer.Argument(help="Shard folders (generate --shard), or the folders holding "
                                                     "them (OUT-shards).")],
    out: Annotated[Path, typer.Option(help="The run folder to write (replaces an earlier merge there).")] = Path("data/raw"),
) -> None:
    """Join the shards of one plan into one run folder; says which shards and plan indices are missing."""
    from synthgen.merge import merge as merge_shards

    if not _report_merge(merge_shards(paths, out)):
        raise typer.Exit(1)


def _report_files_round(run: "ResultsFileSession", cfg: "Config") -> None:
    """What --read-results read, and where the next round went, with the two commands that go on."""
    for line in run.report():
        typer.echo(line)
    if run.written is None:
        return
    requests = run.written
    results = run.options.read_results or requests.with_name(requests.name.replace("requests", "results")
                                                             if "requests" in requests.name else requests.stem + "-results.jsonl")
    again = command_line(without=("--write-requests", "--read-results"))
    typer.echo(f"next round: {run.written_requests} requests in {requests}; run them, e.g. "
               f"`vllm run-batch -i {shlex.quote(str(requests))} -o {shlex.quote(str(results))} --model "
               f"{shlex.quote(cfg.llm.model)}`, then `{again} --read-results {shlex.quote(str(results))}`")


def _mine_grounded_run(cfg: "Config", run: RunFolder, corpus: Path, quiet: bool) -> None:
    """generate --corpus's last step: the run's examples with negatives mined among the passages."""
    from synthgen.curate.run import mine_grounded_run

    try:
        report = mine_grounded_run(run.examples, run.mined, cfg, corpus, show_progress=not quiet)
    except BadInput as exc:
        typer.echo(f"negatives not mined: {exc}. The examples stay in {run.path}: run the same command again to "
                   "mine them (nothing is asked of the LLM again), or set [generate.corpus] negatives = 0", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted while mining: the examples stay in {run.path}; to mine, run: {resume_command()}",
                   err=True)
        raise typer.Exit(130) from None
    mined = report["check_counts"].get("mine", {})
    dropped = ", ".join(f"{reason} {count}" for reason, count in report["dropped"].items())
    typer.echo(f"{report['kept']} examples with {mined.get('negatives added', 0)} negatives mined from the corpus "
               f"in {run.mined / EXAMPLES_NAME}" + (f"; left out: {dropped}" if dropped else ""))


@app.command()
def dedup(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or folders (searched recursively).")],
    out: Annotated[Path, typer.Option(help="Where the survivors go.")] = Path("data/dedup") / EXAMPLES_NAME,
    key: Annotated[Key, typer.Option(help="example: kind+query+positive+negative; query: kind+query.")] = Key.example,
    quiet: Quiet = False,
) -> None:
    """Remove exact duplicates, keeping the first occurrence."""
    from synthgen.dedup import dedup as dedup_files

    result = dedup_files(paths, out, key.value, show_progress=not quiet)
    skipped = f", {result.not_examples} not examples" if result.not_examples else ""
    typer.echo(f"read {result.read} lines from {result.files} files: kept {result.kept}, removed {result.removed}, "
               f"unreadable {result.unreadable}{skipped} -> {out}")


ExportFormat = enum.Enum("ExportFormat", {n: n for n in EXPORT_FORMATS}, type=str)  # type: ignore[misc]
ImportFormat = enum.Enum("ImportFormat", {n: n for n in IMPORT_FORMATS}, type=str)  # type: ignore[misc]
FalseNegativeAction = enum.Enum("FalseNegativeAction", {n: n for n in ("drop", "swap", "keep")}, type=str)  # type: ignore[misc]


@app.command("export")
def export_(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or folders of stored examples (raw or deduplicated).")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="e5, sentence-transformers, flagembedding or medi.")],
    out: Annotated[Optional[Path], typer.Option(help="Output file (default data/export/<format>.jsonl); "
                                                      "a .parquet name writes Parquet (needs pyarrow).")] = None,
    to_parquet: Annotated[bool, typer.Option("--to-parquet", help="Write Parquet (default name <format>.parquet).")] = False,
    instruction: Annotated[bool, typer.Option("--instruction/--no-instruction",
                                              help="sentence-transformers: the instruction in the anchor, or not.")] = True,
    require_negative: Annotated[bool, typer.Option("--require-negative",
                                                   help="Leave out examples without a negative (counted).")] = False,
    mix: Annotated[Optional[str], typer.Option(help="Mix sources by ratio, e.g. synthetic=0.5,msmarco=0.5.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --mix selection.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Write stored examples in the layout a trainer reads."""
    from synthgen.export import export, summary

    if not instruction and format.value != "sentence-transformers":
        raise BadInput("--no-instruction is for --format sentence-transformers: the other formats keep the instruction apart or in the template")
    suffix = ".parquet" if to_parquet else ".jsonl"
    out = out if out is not None else Path("data") / "export" / f"{format.value}{suffix}"
    if to_parquet and out.suffix != ".parquet":
        raise BadInput(f"--to-parquet writes a .parquet file, not {out.name}")
    result = export(paths, out, format.value, instruction=instruction, require_negative=require_negative,
                    mix=mix, seed=seed, show_progress=not quiet)
    typer.echo(summary(result))


@app.command()
def stats(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files or folders of stored examples.")],
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object for machines instead of tables.")] = False,
    quality: Annotated[bool, typer.Option(
        "--quality", help="Also what curate's checks measure: language agreement, near duplicates, the positive's "
                          "rank and margin by the [curate.embed] embedder (its vectors cached, shared with curate).")] = False,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Counts, lengths, prompt adherence, tasks, rejects and tokens of a dataset."""
    import json

    from synthgen.stats import render
    from synthgen.stats import stats as dataset_stats

    report = dataset_stats(paths, show_progress=not quiet and not json_out,
                           quality=settings(config) if quality else None)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2) if json_out else render(report).rstrip("\n"))


@app.command()
def report(
    paths: Annotated[list[Path], typer.Argument(help="Run folders, curate or dedup outputs, imported data: JSONL "
                                                     "files or folders of stored examples (several: side by side).")],
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    sample: Annotated[int, typer.Option(min=0, max=100_000, help="Examples in the page's browser, per input "
                                                                   "(a seeded random sample).")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
    eval_files: Annotated[Optional[list[Path]], typer.Option(
        "--eval", help="A result of `synthgen eval passkey --json` or `eval retrieval --json` (repeatable).")] = None,
    quiet: Quiet = False,
) -> None:
    """One self-contained HTML file that shows the data: charts, tables and an example browser, no network."""
    from synthgen.report.build import report as write_report

    result = write_report(paths, out, sample, seed, eval_files, show_progress=not quiet)
    typer.echo(f"{result['examples']:,} examples from {result['inputs']} input(s), {result['sampled']:,} in the "
               f"browser: {out} ({result['bytes'] / 2**20:.1f} MB)")


@app.command()
def curate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="JSONL files or folders of stored examples.",
                                                          show_default=False)] = None,
    out: Annotated[Optional[Path], typer.Option(help=f"Folder for {EXAMPLES_NAME}, {DROPPED_NAME} and {REPORT_NAME} "
                                                     "(default data/curated; with --tasks, data/tasks-curated).")] = None,
    checks: Annotated[Optional[str], typer.Option(help="Comma-separated checks to run, e.g. near-duplicate "
                                                       "(default [curate] checks of the config).")] = None,
    tasks: Annotated[Optional[Path], typer.Option("--tasks", help="Curate the task files of this folder instead: "
                                                                  "near-duplicate tasks out.")] = None,
    mine_negatives: Annotated[Optional[int], typer.Option(
        "--mine-negatives", min=0, help="Add this many hard negatives per kept example, mined from the documents "
                                        "of its kind ([curate.mine]).")] = None,
    corpus: Annotated[Optional[Path], typer.Option(
        help="A corpus (synthgen corpus ingest) whose passages short-long and long-long queries are ranked "
             "against (consistency, --relabel) and their negatives mined from, instead of the examples' documents.")] = None,
    on_false_negative: Annotated[Optional[FalseNegativeAction], typer.Option(
        help="An example whose negative beats its positive: drop it, swap the two, or keep it.")] = None,
    embed_model: Annotated[Optional[str], typer.Option(
        help="The embedder: a sentence-transformers name or folder (default the offline all-MiniLM-L6-v2), "
             "or with --embed-base-url the model the endpoint serves.")] = None,
    embed_base_url: Annotated[Optional[str], typer.Option(
        callback=_base_url, help="An OpenAI-compatible /v1/embeddings endpoint (key: OPENAI_API_KEY).")] = None,
    relabel: Annotated[bool, typer.Option(
        "--relabel", help="The LLM judges the documents retrieved for each kept query; a better one becomes the "
                          "positive ([curate.relabel]). Needs an endpoint (or the embedded model).")] = False,
    base_url: BaseUrl = None,
    model: Model = None,
    api_key: ApiKey = None,
    backend: BackendOpt = None,
    model_path: ModelPath = None,
    concurrency: Concurrency = None,
    rpm: Rpm = None,
    tpm: Tpm = None,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Drop bad examples with the evidence: nothing is lost (kept + dropped = input)."""
    if embed_base_url and not embed_model:
        raise BadInput("--embed-base-url needs --embed-model: the embedding model the endpoint serves")
    llm_flags = {"base_url": base_url, "model": model, "api_key": api_key, "backend": backend,
                 "model_path": model_path, "concurrency": concurrency, "rpm": rpm, "tpm": tpm}
    if not relabel and any(value is not None for value in llm_flags.values()):
        raise BadInput("--base-url, --model, --backend and the other LLM flags are for --relabel")
    cfg = settings(config, **llm_flags, curate={
        "embed": {"model": embed_model, "base_url": embed_base_url},
        "mine": {"negatives": mine_negatives},
        "false_negative": {"action": on_false_negative.value if on_false_negative else None},
    })
    if tasks is not None:
        from synthgen.curate.task_files import curate_tasks

        if paths:
            raise BadInput("give example files or --tasks, not both")
        out = out or Path("data/tasks-curated")
        report = curate_tasks(tasks, out, cfg)
        for subtype, counts in report["by_subtype"].items():
            typer.echo(f"{subtype}: {counts['in']} tasks, kept {counts['kept']}, near duplicates {counts['dropped']}")
        typer.echo(f"-> {out}")
        return
    if not paths:
        raise BadInput("give the example files or folders to curate (or --tasks DIR)")
    from synthgen.curate.report import render
    from synthgen.curate.run import curate as run_curate

    out = out or Path("data/curated")
    names = [name.strip() for name in checks.split(",") if name.strip()] if checks is not None else None
    report = run_curate(paths, out, cfg, names, show_progress=not quiet, relabel=relabel, corpus=corpus)
    typer.echo(render(report, out).rstrip("\n"))


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A file (pairs, medi, flagembedding) or a BEIR folder.")],
    format: Annotated[ImportFormat, typer.Option("--format", "-f", help="pairs, beir, medi or flagembedding.")],
    task: Annotated[Optional[str], typer.Option(help="The task definition (instruction) of every example; "
                                                     "needed for pairs and beir.")] = None,
    kind: Annotated[Optional[str], typer.Option(help="The kind to file them under (default short-long; "
                                                     "medi: its task_name when that is a kind).")] = None,
    source_name: Annotated[Optional[str], typer.Option("--source", help="The source name export --mix counts by "
                                                                         "(default the file or folder name).")] = None,
    language: Annotated[str, typer.Option(help="The language of the data.")] = "unknown",
    out: Annotated[Optional[Path], typer.Option(help="Output file (default data/imported/<source>.jsonl).")] = None,
    query_field: Annotated[Optional[str], typer.Option(help="pairs: the query column (default query).")] = None,
    positive_field: Annotated[Optional[str], typer.Option(help="pairs: the positive column (default positive).")] = None,
    negative_field: Annotated[Optional[str], typer.Option(help="pairs: the negative column, if any (default negative).")] = None,
    header: Annotated[bool, typer.Option("--header/--no-header", help="pairs, TSV or CSV: whether the first row names "
                                                                      "the columns (without: 0, 1, 2).")] = True,
    split: Annotated[Optional[str], typer.Option(help="beir: the qrels file, qrels/<split>.tsv (default test).")] = None,
    quiet: Quiet = False,
) -> None:
    """Turn public data into stored examples, to dedup, export and mix with synthetic data."""
    from synthgen.importers import Fields, import_source, summary

    fields = Fields(query_field, positive_field, negative_field)
    result = import_source(source, format.value, out=out, task=task, kind=kind, name=source_name, language=language,
                           fields=fields, header=header, split=split, show_progress=not quiet)
    typer.echo(summary(result))


# -- passkey benchmark, split, train, eval ---------------------------------------------------------

EmbedModel = Annotated[Optional[str], typer.Option(
    "--model", help="A sentence-transformers model (name or folder; default the offline all-MiniLM-L6-v2), "
                    "or with --base-url the embedding model the endpoint serves.")]
EmbedBaseUrl = Annotated[Optional[str], typer.Option(
    "--base-url", callback=_base_url, help="An OpenAI-compatible endpoint serving /v1/embeddings, e.g. http://127.0.0.1:8000/v1.")]
EmbedApiKey = Annotated[Optional[str], typer.Option(
    "--api-key", help="Key for --base-url (better: OPENAI_API_KEY).", show_default=False)]
BatchSize = Annotated[int, typer.Option(min=1, help="Texts per forward pass or per request.")]
MaxSeqLength = Annotated[Optional[int], typer.Option(min=8, help="Truncate inputs to this many tokens (default: the model's).")]
QueryTemplate = Annotated[str, typer.Option(help="How the query side is written; '{query}' alone drops the instruction.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]


@app.command("passkey")
def passkey_command(
    lengths: Annotated[str, typer.Option(help="Target document lengths, comma-separated.")] = "256,512,1024,2048,4096,8192,16384,32768",
    queries: Annotated[int, typer.Option(min=1, help="Queries per length.")] = 50,
    candidates: Annotated[int, typer.Option(min=2, help="Candidate documents per query (one holds the answer).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same benchmark.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder: one BEIR folder per length.")] = Path("data/passkey"),
    tokenizer: Annotated[Optional[str], typer.Option(help="Count lengths in tokens of this tokenizer (name or folder), "
                                                          "or 'words' (default: all-MiniLM-L6-v2's with the train extra, else words).")] = None,
    quiet: Quiet = False,
) -> None:
    """Write the personalized passkey retrieval benchmark of the E5-mistral paper."""
    from synthgen.passkey import counter_for, generate_benchmark, parse_lengths

    summary = generate_benchmark(out, parse_lengths(lengths), queries, candidates, seed, counter_for(tokenizer),
                                 show_progress=not quiet)
    typer.echo(f"{len(summary['lengths'])} lengths x {queries} queries x {candidates} candidates, lengths in "
               f"{summary['length_counted_as'].split(';')[0]} -> {out} (see {out / 'passkey.json'})")


@app.command("split")
def split_command(
    paths: Annotated[list[Path], typer.Argument(help="Stored examples: JSONL files or folders.")],
    out: Annotated[Path, typer.Option(help="Folder for train.jsonl, test.jsonl and split.json.")] = Path("data/split"),
    test_share: Annotated[float, typer.Option(help="Share of the examples held out for test.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
) -> None:
    """Hold out a test split, deterministic and disjoint by task."""
    from synthgen.split import split

    result = split(paths, out, test_share, seed)
    typer.echo(f"train {result.train} examples ({result.train_groups} groups), test {result.test} examples "
               f"({result.test_groups} groups, {len(result.test_tasks)} of them tasks) -> {out}")


@app.command("train")
def train_command(
    paths: Annotated[list[Path], typer.Argument(help="Stored examples (or an e5 / sentence-transformers export): files or folders.")],
    out: Annotated[Path, typer.Option(help="Folder for the trained model, its checkpoints, log, plot and synthgen-train.json.")],
    base_model: Annotated[Optional[str], typer.Option(help="sentence-transformers model to start from, or a decoder LLM (pooled on its last token, EOS appended; default: the offline all-MiniLM-L6-v2).")] = None,
    batch_size: Annotated[int, typer.Option(min=2, help="Rows per batch (per process): each row's negatives are the others' documents.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 2e-5,
    warmup_ratio: Annotated[float, typer.Option(help="Share of the steps spent warming the learning rate up.")] = 0.1,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the data.")] = 1,
    max_steps: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many steps.")] = None,
    scale: Annotated[float, typer.Option(help="Similarity scale of the loss: 1 / temperature (the paper: 0.02).")] = 50.0,
    loss: Annotated[str, typer.Option(help="mnrl (MultipleNegativesRankingLoss) or cached-mnrl (GradCache: a large batch "
                                           "in the memory of --mini-batch-size rows, the same loss).")] = "mnrl",
    mini_batch_size: Annotated[int, typer.Option(min=1, help="cached-mnrl: rows embedded per forward pass.")] = 32,
    mined_negatives: Annotated[Optional[int], typer.Option(min=0, help="Take up to K of curate's mined negatives per row, "
                                                                       "besides the generated one (default: one hard negative, the generated one or else a mined one).")] = None,
    eval_data: Annotated[Optional[list[Path]], typer.Option(help="Held-out stored examples the evaluator ranks during training.")] = None,
    eval_share: Annotated[float, typer.Option(help="Hold out this share of the input, whole tasks at a time, for the evaluator.")] = 0.0,
    eval_steps: Annotated[Optional[int], typer.Option(min=1, help="Evaluate every N steps (default: each epoch).")] = None,
    save_steps: Annotated[Optional[int], typer.Option(min=1, help="Checkpoint every N steps (default: each epoch).")] = None,
    save_total_limit: Annotated[int, typer.Option(min=1, help="Checkpoints kept (the oldest go).")] = 2,
    resume_from_checkpoint: Annotated[Optional[str], typer.Option(help="Go on from a checkpoint folder, or 'latest' for OUT's last.")] = None,
    lora: Annotated[bool, typer.Option("--lora", help="Train a LoRA adapter (peft) instead of every weight, as the paper trained Mistral-7B.")] = False,
    lora_rank: Annotated[int, typer.Option(min=1, help="LoRA rank (the paper: 16).")] = 16,
    lora_alpha: Annotated[int, typer.Option(min=1, help="LoRA alpha.")] = 32,
    lora_dropout: Annotated[float, typer.Option(min=0.0, max=0.9, help="LoRA dropout.")] = 0.1,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 mixed precision (GPUs that have it).")] = False,
    max_seq_length: MaxSeqLength = None,
    query_template: QueryTemplate = QUERY_TEMPLATE,
    seed: Annotated[int, typer.Option(help="Seed of the batches and the initialisation.")] = 0,
    device: Annotated[Optional[str], typer.Option(help="cpu to force the CPU (default: the Trainer's choice, a GPU when there is one).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Write into a folder that is not empty.")] = False,
    quiet: Quiet = False,
) -> None:
    """Fine-tune an embedding model with the sentence-transformers Trainer (extra: train)."""
    from synthgen.train import TrainOptions, train
    from synthgen.train_model import LoraSettings

    options = TrainOptions(batch_size=batch_size, learning_rate=lr, warmup_ratio=warmup_ratio, epochs=epochs,
                           max_steps=max_steps, scale=scale, max_seq_length=max_seq_length,
                           query_template=query_template, seed=seed, device=device, loss=loss,
                           mini_batch_size=mini_batch_size, mined_negatives=mined_negatives, eval_share=eval_share,
                           eval_steps=eval_steps, save_steps=save_steps, save_total_limit=save_total_limit,
                           lora=lora, lora_settings=LoraSettings(lora_rank, lora_alpha, lora_dropout), bf16=bf16)
    try:
        config = train(paths, base_model, out, options, overwrite=overwrite, show_progress=not quiet,
                       eval_paths=eval_data, resume_from_checkpoint=resume_from_checkpoint)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the checkpoints in {out / 'checkpoints'} are kept; to go on, run: "
                   f"{resume_command()}" + ("" if resume_from_checkpoint else " --resume-from-checkpoint latest"), err=True)
        raise typer.Exit(130) from None
    if config:  # the main process of several reports
        typer.echo(train_summary(config, out))


def train_summary(config: dict, out: Path) -> str:
    losses = (f", loss {config['loss_first']:.3f} -> {config['loss_last_20_mean']:.3f}"
              if config["loss_first"] is not None else "")
    line = (f"trained {config['base_model']} on {config['rows_trained']} rows ({config['rows_with_negative']} with a hard "
            f"negative) to step {config['steps']} in {config['seconds']} s{losses}: {out} (settings in "
            f"{out / 'synthgen-train.json'})")
    if config["evaluator"] and config["evaluator"]["results"]:
        first, last = config["evaluator"]["results"][0], config["evaluator"]["results"][-1]
        key = next((k for k in last if k.endswith("ndcg@10")), None)
        if key is not None:
            line += f"\nheld-out nDCG@10: {first[key]:.3f} at step {first['step']} -> {last[key]:.3f} at step {last['step']}"
    return line


eval_app = typer.Typer(help="Evaluate an embedding model: the passkey benchmark, retrieval, or MTEB tasks.")
app.add_typer(eval_app, name="eval")


@eval_app.command("passkey")
def eval_passkey(
    folder: Annotated[Path, typer.Argument(help="What `synthgen passkey` wrote (or one length's folder).")] = Path("data/passkey"),
    model: EmbedModel = None,
    base_url: EmbedBaseUrl = None,
    api_key: EmbedApiKey = None,
    batch_size: BatchSize = 32,
    max_seq_length: MaxSeqLength = None,
    query_template: QueryTemplate = QUERY_TEMPLATE,
    plot: Annotated[Optional[Path], typer.Option(help="PNG of accuracy against length (default FOLDER/accuracy-<model>.png; needs matplotlib).")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="No PNG.")] = False,
    as_json: JsonOut = False,
    quiet: Quiet = False,
) -> None:
    """Top-1 accuracy per length on the passkey benchmark."""
    import json

    from synthgen.embedders import open_embedder
    from synthgen.evaluate import default_plot_path, evaluate_passkey, passkey_folders, passkey_table, plot_passkey

    passkey_folders(folder)  # a wrong folder fails before a model loads
    embedder = open_embedder(model, base_url, api_key, batch_size, max_seq_length)
    result = evaluate_passkey(folder, embedder, check_template(query_template), show_progress=not quiet)
    if not no_plot:
        written = plot_passkey([result], plot or default_plot_path(folder, result["model"]))
        result["plot"] = str(written) if written else None
    typer.echo(json.dumps(result, indent=2) if as_json else passkey_table(result)
               + (f"\nplot: {result['plot']}" if result.get("plot") else ""))


@eval_app.command("retrieval")
def eval_retrieval(
    paths: Annotated[list[Path], typer.Argument(help="Held-out stored examples (files or folders), or one BEIR folder.")],
    instruction: Annotated[Optional[str], typer.Option(help="Instruction for queries that carry none (BEIR).")] = None,
    corpus: Annotated[Optional[Path], typer.Option(
        help="A corpus folder (synthgen corpus ingest): its passages join the document pool.")] = None,
    model: EmbedModel = None,
    base_url: EmbedBaseUrl = None,
    api_key: EmbedApiKey = None,
    batch_size: BatchSize = 32,
    max_seq_length: MaxSeqLength = None,
    query_template: QueryTemplate = QUERY_TEMPLATE,
    as_json: JsonOut = False,
    quiet: Quiet = False,
) -> None:
    """nDCG, MRR, recall and MAP: each query against every document.

    nDCG@10, MRR@10, recall@1, recall@10, MAP@100 and recall@100 by sentence-transformers'
    InformationRetrievalEvaluator; the pool is every positive and negative (and --corpus passages)."""
    import json

    from synthgen.embedders import open_embedder
    from synthgen.evaluate import evaluate_retrieval, is_beir_folder, load_beir, load_examples, retrieval_table

    template = check_template(query_template)
    if len(paths) == 1 and is_beir_folder(paths[0]):
        if corpus is not None:
            raise BadInput("--corpus is for synthgen examples: a BEIR folder holds its own corpus")
        data = load_beir(paths[0], instruction)
    else:
        data, _ = load_examples(paths, instruction, corpus)
    embedder = open_embedder(model, base_url, api_key, batch_size, max_seq_length)
    result = evaluate_retrieval(data, embedder, template, show_progress=not quiet)
    typer.echo(json.dumps(result, indent=2) if as_json else retrieval_table(result))


@eval_app.command("mteb")
def eval_mteb(
    tasks: Annotated[list[str], typer.Argument(help="MTEB task names (SciFact, STSBenchmark, ...), or folders: "
                                                    "what `synthgen passkey` wrote, or any BEIR folder.")],
    model: EmbedModel = None,
    base_url: EmbedBaseUrl = None,
    api_key: EmbedApiKey = None,
    batch_size: BatchSize = 32,
    max_seq_length: MaxSeqLength = None,
    query_template: QueryTemplate = QUERY_TEMPLATE,
    prompt: Annotated[Optional[list[str]], typer.Option(
        help="KEY=INSTRUCTION, repeatable: the instruction for a task name, a task type (Retrieval, STS, ...) or "
             "query, over MTEB's own (the task's prompt, else one per task type).")] = None,
    out: Annotated[Path, typer.Option(help="Where mteb writes its results (results/<model>/<revision>/<task>.json).")] = Path("data/mteb"),
    as_json: JsonOut = False,
    quiet: Quiet = False,
) -> None:
    """MTEB tasks and the passkey benchmark, run by mteb (extra: mteb).

    MTEB's instruction for each task is written with the query template on the query side."""
    import json

    from synthgen.mteb_eval import evaluate_mteb, mteb_table, parse_prompts

    template, prompts = check_template(query_template), parse_prompts(prompt or [])

    def open_encoder():  # after the tasks' data is known to be there
        from synthgen.embedders import open_embedder
        from synthgen.mteb_encoder import SynthgenEncoder

        return SynthgenEncoder(open_embedder(model, base_url, api_key, batch_size, max_seq_length), template, prompts)

    report = evaluate_mteb(tasks, open_encoder, out, batch_size, show_progress=not quiet)
    typer.echo(json.dumps(report, indent=2) if as_json else mteb_table(report))


corpus_app = typer.Typer(help="A user's documents as passages, for examples grounded in them (generate --corpus).")
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("ingest")
def corpus_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (walked recursively): .txt, .md, .jsonl, "
                                                     ".html, .htm, .pdf (the pdf extra).")],
    out: Annotated[Path, typer.Option(help="The corpus folder: its passages, those dropped (with why) and a manifest.")] = Path("data/corpus"),
    text_field: Annotated[Optional[str], typer.Option(help=".jsonl: the field of each line that holds the document's "
                                                           "text." + _default("corpus", "text_field"))] = None,
    config: ConfigFile = None,
    quiet: Quiet = False,
) -> None:
    """Cut documents into passages, repeats dropped.

    Sizes and near-duplicate settings: [corpus] in the config."""
    from synthgen.config import load_config
    from synthgen.corpus.ingest import ingest, summary

    cfg = load_config(config, os.environ, {"corpus": {"text_field": text_field}})
    typer.echo(summary(ingest(paths, out, cfg, show_progress=not quiet), out))


batch_app = typer.Typer(help="The batches of a `generate --batch` run at the OpenAI Batch API.")
app.add_typer(batch_app, name="batch")
RunDir = Annotated[Path, typer.Argument(help="The run folder (generate --out).")]


@batch_app.command("status")
def batch_status(
    folder: RunDir = Path("data/raw"),
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Each batch of the run: its round, requests, status at the Batch API and what it ran."""
    import asyncio

    from synthgen.batch_api import batch_status as status_of

    cfg = settings(config, base_url=base_url, api_key=api_key)
    from synthgen.tables import table

    manifest, jobs = asyncio.run(status_of(cfg, folder))
    rows = [[job.round, job.part, f"{job.requests:,}", job.batch_id or job.file, job.status, f"{job.completed:,}",
             f"{job.failed:,}", "yes" if job.collected else "no"] for job in jobs]
    typer.echo(table(f"batches of {folder}", ["round", "part", "requests", "batch (or file)", "status", "ran",
                                               "failed", "collected"], rows))
    typer.echo(f"{manifest.valid:,} of {manifest.n:,} valid examples in {folder} (manifest status: {manifest.status})")


@batch_app.command("cancel")
def batch_cancel(
    folder: RunDir = Path("data/raw"),
    config: ConfigFile = None,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Cancel the run's batches at the Batch API (what they already ran is paid, and collected by the
    run's command)."""
    import asyncio

    from synthgen.batch_api import batch_cancel as cancel

    cfg = settings(config, base_url=base_url, api_key=api_key)
    cancelled = asyncio.run(cancel(cfg, folder))
    for job in cancelled:
        typer.echo(f"{job.batch_id}: {job.status}")
    typer.echo(f"cancelled {len(cancelled)} batches; the answers they gave before are paid for: run the generate "
               f"command with --batch to collect them into {folder}")


def resume_command(budget: Optional[str] = None) -> str:
    """The command line that was run, minus an --api-key value (the key is never printed); with
    `budget`, its --budget given that value."""
    return command_line(replace={"--budget": budget} if budget is not None else None)


def command_line(without: tuple[str, ...] = (), replace: Optional[dict[str, str]] = None) -> str:
    """The command line that was run, minus --api-key and the options named in `without`, with their
    values; the options in `replace` given the values there."""
    replaced: dict[str, Optional[str]] = {"--api-key": None, **dict.fromkeys(without), **(replace or {})}
    args, skip = [], False
    for arg in sys.argv[1:]:
        name = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif name in replaced:
            skip = "=" not in arg
        else:
            args.append(arg)
    args += [item for name, value in replaced.items() if value is not None for item in (name, value)]
    return shlex.join(["synthgen", *args])


def _fail(message: str, status: int) -> None:
    print(one_line(message), file=sys.stderr)
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
    except (RunStopped, StopRun) as exc:  # StopRun: the endpoint refused us outside a stage's own handling
        _fail(f"stopped: {exc}", 1)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(f"cannot use{where}: {exc.strerror or exc}", 2)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()
