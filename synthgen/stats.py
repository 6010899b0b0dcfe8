"""What a dataset holds and how well the LLM followed its prompts, in one streaming pass.

- counts by kind, language, source and placeholder value;
- lengths in words (white-space separated) of query, positive and negative per kind: min, median,
  95th percentile (nearest rank) and max, from a histogram of lengths (memory does not grow with
  the data);
- adherence: the share of examples whose lengths meet what their prompt asked for (short-long
  query_length and num_words, long-short num_words, long-long's fixed "at least 300 words");
- leaks: the share where the query equals or contains the positive (case and spacing ignored),
  and where the positive equals the negative;
- tasks: how many distinct task definitions, and examples per task (min, median, max);
- the runs behind the data: rejected answers by reason and tokens per valid example, from
  the run's manifest (or its rejects file) beside the input files;
- with --quality, what curate's checks measure (curate/quality.py): language agreement, the
  near-duplicate rate, the positive's rank and the positive-negative margin by an embedder.
"""

import collections
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from synthgen.errors import BadInput

if TYPE_CHECKING:
    from synthgen.config import Config
from synthgen.store import (
    MANIFEST_NAME,
    REJECTS_NAME,
    TEXT_FIELDS,
    Example,
    ReadCounts,
    example_files,
    read_examples,
    reject_reasons,
    run_files_beside,
    source_of,
)
from synthgen.summary import spread, summarise
from synthgen.tables import cell, table
from synthgen.tasks import diversity

FIELDS = TEXT_FIELDS
# Placeholders counted elsewhere: every task is its own value, and language has its own table.
NOT_COUNTED_PLACEHOLDERS = frozenset({"task", "language"})
INF = math.inf


def words(text: Optional[str]) -> int:
    return len(text.split()) if text else 0


_LESS = re.compile(r"^(?:less|fewer) than (\d+)(?: words?)?$")
_AT_MOST = re.compile(r"^(?:at most|up to|no more than) (\d+)(?: words?)?$")
_AT_LEAST = re.compile(r"^(?:at least|no less than|no fewer than) (\d+)(?: words?)?$")
_MORE = re.compile(r"^more than (\d+)(?: words?)?$")
_RANGE = re.compile(r"^(?:between )?(\d+) ?(?:to|-|and) ?(\d+)(?: words?)?$")
_NUMBER = re.compile(r"^(\d+)(?: words?)?$")


def word_bounds(phrase: Any) -> Optional[tuple[float, float]]:
    """The inclusive word-count range a length phrase asks for, or None when it is not one.

    "less than 5 words" -> (0, 4); "5 to 15 words" -> (5, 15); "at least 10 words" -> (10, inf);
    a bare number is a minimum, as the short-long prompt says ("at least {num_words} words").
    """
    if isinstance(phrase, (int, float)) and not isinstance(phrase, bool):
        return (float(phrase), INF)
    if not isinstance(phrase, str):
        return None
    text = " ".join(phrase.lower().split())
    if m := _LESS.match(text):
        return (0, int(m[1]) - 1)
    if m := _AT_MOST.match(text):
        return (0, int(m[1]))
    if m := _AT_LEAST.match(text):
        return (int(m[1]), INF)
    if m := _MORE.match(text):
        return (int(m[1]) + 1, INF)
    if m := _RANGE.match(text):
        return (int(m[1]), int(m[2]))
    if m := _NUMBER.match(text):
        return (int(m[1]), INF)
    return None


@dataclass(frozen=True)
class Check:
    """One length constraint: the kind's `field` should meet the phrase in `placeholder` (or `fixed`)."""

    name: str
    kind: str
    field: str
    placeholder: Optional[str] = None
    fixed: Optional[str] = None


CHECKS = (
    Check("short-long query_length (query)", "short-long", "query", placeholder="query_length"),
    Check("short-long num_words (positive)", "short-long", "positive", placeholder="num_words"),
    Check("short-long num_words (negative)", "short-long", "negative", placeholder="num_words"),
    Check("long-short num_words (input_text)", "long-short", "query", placeholder="num_words"),
    Check("long-long at least 300 words (input)", "long-long", "query", fixed="at least 300 words"),
    Check("long-long at least 300 words (positive)", "long-long", "positive", fixed="at least 300 words"),
)


def _norm(text: Optional[str]) -> str:
    return " ".join(text.split()).casefold() if text else ""


def share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


@dataclass
class Tally:
    examples: int = 0
    met: int = 0

    def add(self, ok: bool) -> None:
        self.examples += 1
        self.met += ok

    def as_dict(self) -> dict[str, Any]:
        return {"examples": self.examples, "met": self.met, "share": share(self.met, self.examples)}


@dataclass
class Collector:
    """Everything the pass over the examples counts."""

    kinds: collections.Counter = field(default_factory=collections.Counter)
    languages: collections.Counter = field(default_factory=collections.Counter)
    sources: collections.Counter = field(default_factory=collections.Counter)
    placeholders: dict = field(default_factory=lambda: collections.defaultdict(
        lambda: collections.defaultdict(collections.Counter)))
    lengths: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    checks: dict = field(default_factory=lambda: {c.name: (Tally(), collections.defaultdict(Tally)) for c in CHECKS})
    leaks: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    tasks: dict = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    # check name -> the length phrase asked -> lengths in words of what came back (the report draws them).
    asked: dict = field(default_factory=lambda: collections.defaultdict(
        lambda: collections.defaultdict(collections.Counter)))

    def add(self, example: Example) -> None:
        kind = example.kind
        self.kinds[kind] += 1
        self.languages[example.language or "(none)"] += 1
        self.sources[source_of(example)] += 1
        for name, value in example.placeholders.items():
            if name not in NOT_COUNTED_PLACEHOLDERS:
                self.placeholders[kind][name][str(value)] += 1
        lengths = {}
        for name in FIELDS:
            text = getattr(example, name)
            if text is not None:
                lengths[name] = words(text)
                self.lengths[(kind, name)][lengths[name]] += 1
        for check in CHECKS:
            if check.kind != kind or check.field not in lengths:
                continue
            phrase = check.fixed if check.fixed is not None else example.placeholders.get(check.placeholder or "")
            bounds = word_bounds(phrase)
            if bounds is None:
                continue
            ok = bounds[0] <= lengths[check.field] <= bounds[1]
            total, by_value = self.checks[check.name]
            total.add(ok)
            by_value[str(phrase)].add(ok)
            self.asked[check.name][str(phrase)][lengths[check.field]] += 1
        query, positive = _norm(example.query), _norm(example.positive)
        leak = self.leaks[kind]
        leak["examples"] += 1
        leak["query_equals_positive"] += query == positive
        leak["query_contains_positive"] += positive in query
        if example.negative is not None:
            leak["with_negative"] += 1
            leak["positive_equals_negative"] += positive == _norm(example.negative)
        self.tasks[kind][example.task] += 1


def _leak_row(counts: collections.Counter) -> dict[str, Any]:
    n = counts["examples"]
    return {
        "examples": n,
        "query_equals_positive": counts["query_equals_positive"],
        "query_contains_positive": counts["query_contains_positive"],
        "share_query_contains_positive": share(counts["query_contains_positive"], n),
        "with_negative": counts["with_negative"],
        "positive_equals_negative": counts["positive_equals_negative"],
    }


def run_folders(files: list[Path]) -> list[Path]:
    """The folders of the input files, where a run keeps its manifest and rejects."""
    folders: dict[Path, None] = {}
    for file in files:
        folders.setdefault(file.resolve().parent, None)
    return list(folders)


def run_report(folders: list[Path]) -> dict[str, Any]:
    """Rejected answers by reason and tokens, summed over the runs found beside the input."""
    rejected: collections.Counter = collections.Counter()
    brainstormed: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    manifests = rejects_files = 0
    valid = prompt_tokens = completion_tokens = 0
    for folder in folders:
        manifest, rejects = run_files_beside(folder)
        if manifest is not None:
            manifests += 1
            rejected.update(manifest.rejected)
            valid += manifest.valid
            prompt_tokens += manifest.prompt_tokens
            completion_tokens += manifest.completion_tokens
            for subtype, record in ((manifest.brainstorm or {}).get("subtypes") or {}).items():
                brainstormed[subtype].update({"rounds": record.get("rounds") or 0, "asked": record.get("asked") or 0,
                                              "new": record.get("new") or 0, "exhausted": bool(record.get("exhausted"))})
        elif rejects is not None:
            rejects_files += 1
            rejected.update(reject_reasons(rejects))
    tokens = prompt_tokens + completion_tokens
    per_valid = (lambda n: round(n / valid, 1)) if valid and manifests else (lambda n: None)
    return {
        "manifests": manifests,
        "rejects_files": rejects_files,
        "valid": valid if manifests else None,
        "rejected": dict(sorted(rejected.items())),
        "rejected_total": sum(rejected.values()),
        "prompt_tokens": prompt_tokens if manifests else None,
        "completion_tokens": completion_tokens if manifests else None,
        "tokens_per_valid": per_valid(tokens),
        "prompt_tokens_per_valid": per_valid(prompt_tokens),
        "completion_tokens_per_valid": per_valid(completion_tokens),
        "brainstorm": {subtype: {**counts, "yield": share(counts["new"], counts["asked"])}
                       for subtype, counts in sorted(brainstormed.items())},
    }


def stats(paths: list[Path], show_progress: bool = False, quality: Optional["Config"] = None) -> dict[str, Any]:
    """The report; with `quality` (the config of curate's checks), the quality figures too."""
    files = example_files(paths)
    read = ReadCounts()
    collector = Collector()
    measure = None
    if quality is not None:
        from synthgen.curate.quality import Quality

        measure = Quality(quality, show_progress)
    for example in read_examples(files, read, "stats", show_progress):
        collector.add(example)
        if measure is not None:
            measure.add(example)
    if read.examples == 0:
        raise BadInput(f"no stored examples in {', '.join(str(p) for p in paths)} "
                       f"({read.lines} lines{read.skipped()})")
    return {**figures(collector, read, files), **({"quality": measure.report()} if measure is not None else {})}


def figures(c: Collector, read: ReadCounts, files: list[Path]) -> dict[str, Any]:
    """What stats reports of the examples counted, and of the runs beside their files."""
    total_leaks: collections.Counter = collections.Counter()
    for counts in c.leaks.values():
        total_leaks.update(counts)
    all_tasks: collections.Counter = collections.Counter()
    for counter in c.tasks.values():
        all_tasks.update(counter)
    return {
        "files": read.files,
        "lines": read.lines,
        "examples": read.examples,
        "unreadable": read.unreadable,
        "not_examples": read.not_examples,
        "kinds": dict(c.kinds.most_common()),
        "languages": dict(c.languages.most_common()),
        "sources": dict(c.sources.most_common()),
        "placeholders": {
            kind: {name: dict(sorted(values.items())) for name, values in sorted(names.items())}
            for kind, names in sorted(c.placeholders.items())
        },
        "lengths": {
            kind: {name: summary for name in FIELDS if (summary := summarise(c.lengths[(kind, name)])) is not None}
            for kind in c.kinds
        },
        "adherence": {
            name: {**total.as_dict(), "by_value": {value: t.as_dict() for value, t in sorted(by_value.items())}}
            for name, (total, by_value) in c.checks.items()
            if total.examples
        },
        "leaks": {"all": _leak_row(total_leaks), **{kind: _leak_row(counts) for kind, counts in c.leaks.items()}},
        "tasks": {
            "unique": len(all_tasks),
            "per_task": spread(all_tasks.values()),
            "by_kind": {
                kind: {"unique": len(counter), "per_task": spread(counter.values()), "diversity": diversity(list(counter))}
                for kind, counter in c.tasks.items()
            },
        },
        "runs": run_report(run_folders(files)),
    }


# -- the terminal ------------------------------------------------------------------------------


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _counts_table(title: str, counts: dict[str, int], total: int) -> str:
    return table(title, ["", "examples", "share"], [[k, v, _percent(share(v, total))] for k, v in counts.items()])


def render(report: dict[str, Any]) -> str:
    """The report as tables for people, one blank line between them."""
    n = report["examples"]
    skipped = "".join(f", {label} {report[key]}" for key, label in (("unreadable", "unreadable"),
                                                                     ("not_examples", "not examples")) if report[key])
    out = [f"{n} examples in {report['files']} files{skipped}"]
    out.append(_counts_table("by kind", report["kinds"], n))
    out.append(_counts_table("by language", report["languages"], n))
    out.append(_counts_table("by source", report["sources"], n))
    for kind, names in report["placeholders"].items():
        rows = [[f"{name} = {value}", count] for name, values in names.items() for value, count in values.items()]
        out.append(table(f"placeholders of {kind}", ["", "examples"], rows))
    rows = [[f"{kind} {name}", s["n"], s["min"], s["median"], s["p95"], s["max"]]
            for kind, fields in report["lengths"].items() for name, s in fields.items()]
    out.append(table("length in words", ["", "n", "min", "median", "p95", "max"], rows))
    rows = []
    for name, check in report["adherence"].items():
        rows.append([name, check["examples"], check["met"], _percent(check["share"])])
        rows += [[f"  {value}", t["examples"], t["met"], _percent(t["share"])] for value, t in check["by_value"].items()]
    if rows:
        out.append(table("adherence to the requested length", ["", "examples", "met", "share"], rows))
    rows = [[kind, r["examples"], r["query_equals_positive"], r["query_contains_positive"],
             _percent(r["share_query_contains_positive"]), r["positive_equals_negative"]]
            for kind, r in report["leaks"].items()]
    out.append(table("query and positive", ["", "examples", "query = positive", "query contains positive", "share",
                                            "positive = negative"], rows))
    tasks = report["tasks"]
    rows = [["all", tasks["unique"], *(tasks["per_task"][k] for k in ("min", "median", "max")), "", ""]]
    rows += [[kind, t["unique"], *(t["per_task"][k] for k in ("min", "median", "max")),
              cell(t["diversity"]["jaccard_distance"]), cell(t["diversity"]["distinct_2"])]
             for kind, t in tasks["by_kind"].items()]
    out.append(table("tasks (diversity: mean word-Jaccard distance between tasks, distinct word pairs; 1 is best)",
                     ["", "unique", "examples per task: min", "median", "max", "distance", "distinct-2"], rows))
    runs = report["runs"]
    if runs["manifests"] or runs["rejects_files"]:
        where = f"{runs['manifests']} manifests" + (f", {runs['rejects_files']} rejects files" if runs["rejects_files"] else "")
        reasons = ", ".join(f"{reason} {count}" for reason, count in runs["rejected"].items()) or "none"
        lines = [f"rejected answers ({where}): {runs['rejected_total']} ({reasons})"]
        if runs["tokens_per_valid"] is not None:
            lines.append(f"tokens per valid example: {cell(runs['tokens_per_valid'])} "
                         f"(prompt {cell(runs['prompt_tokens_per_valid'])}, completion "
                         f"{cell(runs['completion_tokens_per_valid'])}; {runs['valid']} valid examples)")
        lines += [f"brainstorm {subtype}: {b['new']} new tasks for {b['asked']} asked for in {b['rounds']} rounds "
                  f"(yield {_percent(b['yield'])}){', stopped at the floor' if b['exhausted'] else ''}"
                  for subtype, b in runs["brainstorm"].items()]
        out.append("\n".join(lines))
    else:
        out.append(f"rejected answers and tokens: no {MANIFEST_NAME} or {REJECTS_NAME} beside the input")
    if "quality" in report:
        out += render_quality(report["quality"])
    return "\n\n".join(out) + "\n"


def render_quality(quality: dict[str, Any]) -> list[str]:
    out = []
    near = quality["near_duplicates"]
    lines = [f"near duplicates: {near['near_duplicates']} of {near['examples']} examples ({_percent(near['share'])})"]
    lines += [f"{part} not measured: {reason}" for part, reason in quality["skipped"].items()]
    out.append("\n".join(lines))
    if "language_agreement" in quality:
        rows = [[language, c["judged"], c["agree"], _percent(c["share"])] for language, c in quality["language_agreement"].items()]
        out.append(table("language agreement (examples whose texts are in the language asked for)",
                         ["", "judged", "agree", "share"], rows))
    if "retrieval" in quality:
        r = quality["retrieval"]
        rank, margin = r["positive_rank"], r["margin"]
        top = next(key for key in rank if key.startswith("top_"))
        out.append("\n".join([
            f"by {r['embedder']}: {r['examples']} examples ({r['passed_through']} in languages it does not read)",
            f"positive's rank among the positives of its kind: first {_percent(rank['first'])}, "
            f"{top.replace('_', ' ')} {_percent(rank[top])}, median {cell(rank.get('median'))}, p95 {cell(rank.get('p95'))}, "
            f"max {cell(rank.get('max'))}",
            f"cos(q, positive) - cos(q, negative) over {margin['examples']} examples with a negative: "
            f"negative wins {_percent(margin['negative_wins'])}; min {cell(margin['min'])}, p5 {cell(margin['p5'])}, "
            f"p25 {cell(margin['p25'])}, median {cell(margin['median'])}, p75 {cell(margin['p75'])}, max {cell(margin['max'])}",
        ]))
    return out
