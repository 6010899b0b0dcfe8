"""What each section of the report shows, from the datasets collected and the eval results given:
a chart where a chart reads better, a table where the figures are the point, a line saying why when
a section has nothing to show (no manifest beside the examples, no curate output, no --eval)."""

import collections
from typing import Any, Callable, Iterable, Mapping, Optional

import synthgen.report.charts as charts
from synthgen.curate.retrieval import MARGIN_BIN
from synthgen.names import SUBTYPES
from synthgen.report.collect import Dataset
from synthgen.report.page import chart, esc, note, samples, table
from synthgen.store import DROPPED_NAME, MANIFEST_NAME, REJECTS_NAME, REPORT_NAME, TEXT_FIELDS

KIND_ORDER = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")
SHOWN_PER_REASON = 3  # rejects and drops written out under their chart; the browser has more

Section = tuple[str, str, str]  # id, title, inner HTML


def per(datasets: list[Dataset], value: Callable[[Dataset], Any]) -> dict[str, Any]:
    return {d.label: value(d) for d in datasets}


def _kinds(names: Iterable[str]) -> list[str]:
    present = set(names)
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def overview(datasets: list[Dataset]) -> Section:
    rows = [[d.label, d.stats["examples"], d.stats["files"], d.stats["unreadable"], d.stats["not_examples"],
             len(d.stats["kinds"]), len(d.stats["languages"]), d.stats["tasks"]["unique"], len(d.manifests),
             "yes" if d.curated else "no"] for d in datasets]
    header = ["dataset", "examples", "files", "unreadable lines", "lines not examples", "kinds", "languages",
              "distinct tasks", "run manifests", "curated"]
    return "overview", "Overview", table(header, rows)


def counts(datasets: list[Dataset]) -> list[Section]:
    kinds = per(datasets, lambda d: d.stats["kinds"])
    languages = per(datasets, lambda d: d.stats["languages"])
    sources = per(datasets, lambda d: d.stats["sources"])
    count = len({name for values in languages.values() for name in values})
    return [
        ("kinds", "Kinds", chart("Examples by kind", charts.bars(kinds, order=_kinds(n for v in kinds.values() for n in v)))),
        ("languages", "Languages", chart(f"Examples by language (all {count}, largest first)",
                                         charts.bars(languages, horizontal=True))),
        ("sources", "Sources", chart("Examples by source (imported data names its source; generated is synthetic)",
                                     charts.bars(sources, horizontal=True))),
    ]


def lengths(datasets: list[Dataset]) -> Section:
    parts = []
    for kind in _kinds(n for d in datasets for n in d.stats["kinds"]):
        by_field: dict[str, dict[str, Any]] = {name: {d.label: d.lengths.get((kind, name), {}) for d in datasets} for name in TEXT_FIELDS}
        parts.append(chart(f"{kind}: length in words", charts.lengths(by_field)))
    rows = [[kind, name, d.label, s["n"], s["min"], s["median"], s["p95"], s["max"]]
            for d in datasets for kind, fields in d.stats["lengths"].items() for name, s in fields.items()]
    parts.append(table(["kind", "text", "dataset", "n", "min", "median", "p95", "max"], rows, numeric_from=3))
    return "lengths", "Lengths", "".join(parts)


def adherence(datasets: list[Dataset]) -> Section:
    parts = [note("Each box: the middle half of the lengths written for one length asked (the line is the median, "
                  "the whiskers the 5th and 95th percentiles); the green band is the range the prompt asked for.")]
    checks = list(dict.fromkeys(name for d in datasets for name in d.asked))
    for name in checks:
        phrases = list(dict.fromkeys(p for d in datasets for p in d.asked.get(name, {})))
        by_value: dict[str, dict[str, Any]] = {p: {d.label: d.asked.get(name, {}).get(p, {}) for d in datasets} for p in phrases}
        parts.append(chart(f"{name}: asked against written", charts.asked(by_value)))
    shares = per(datasets, lambda d: {f"{name} = {value}": t["share"] for name, check in d.stats["adherence"].items()
                                      for value, t in check["by_value"].items() if t["share"] is not None})
    parts.append(chart("Share of examples whose length meets what was asked", charts.bars(
        shares, horizontal=True, label="share met", share=True, order=list(dict.fromkeys(
            k for v in shares.values() for k in v)))))
    if not checks:
        parts.append(note("No example here has a length placeholder (short-long, long-short, long-long) to check."))
    rows = [[name, d.label, c["examples"], c["met"], _pct(c["share"])]
            for d in datasets for name, c in d.stats["adherence"].items()]
    parts.append(table(["check", "dataset", "examples", "met", "share"], rows, numeric_from=2))
    leaks = [[kind, d.label, r["examples"], r["query_equals_positive"], r["query_contains_positive"],
              r["positive_equals_negative"]] for d in datasets for kind, r in d.stats["leaks"].items()]
    parts.append(table(["kind", "dataset", "examples", "query = positive", "query contains positive",
                        "positive = negative"], leaks, numeric_from=2))
    return "adherence", "Adherence", "".join(parts)


def _reason_samples(datasets: list[Dataset], kind: str) -> str:
    shown: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
    for d in datasets:
        for row in d.rows:
            if row["type"] == kind and len(shown[(d.label, row["reason"])]) < SHOWN_PER_REASON:
                body = (f"detail: {row['detail']}\nfinish reason: {row['finish_reason']}\n\nraw answer:\n{row['raw']}"
                        if kind == "reject" else
                        f"query: {row['query']}\npositive: {row['positive']}\n\nevidence:\n{row['evidence']}")
                shown[(d.label, row["reason"])].append((f"{row['reason']} · {row['kind']} · {row['id']}", body))
    return "".join(f"<h3>{esc(reason)} <span class=\"note\">{esc(label)}</span></h3>{samples(records)}"
                   for (label, reason), records in sorted(shown.items(), key=lambda item: item[0][1]))


def rejects(datasets: list[Dataset]) -> Section:
    reasons = per(datasets, lambda d: d.stats["runs"]["rejected"])
    if not any(d.stats["runs"]["manifests"] or d.stats["runs"]["rejects_files"] for d in datasets):
        return "rejects", "Rejected answers", note(f"No run {MANIFEST_NAME} or {REJECTS_NAME} beside these examples.")
    if not any(reasons.values()):
        return "rejects", "Rejected answers", note("No answer was rejected.")
    inner = chart("Rejected answers by reason", charts.bars(reasons, horizontal=True, label="answers"))
    return "rejects", "Rejected answers", inner + _reason_samples(datasets, "reject")


def drops(datasets: list[Dataset]) -> Section:
    def dropped(d: Dataset) -> Mapping[str, int]:
        if d.drops:
            return d.drops
        total: collections.Counter = collections.Counter()
        for report in d.curated:
            total.update(report["dropped"])
        return total

    reasons = per(datasets, dropped)
    if not any(d.curated for d in datasets):
        return "drops", "Curation", note(f"No curate output among these inputs (synthgen curate writes {REPORT_NAME} "
                                         f"and {DROPPED_NAME} beside the examples it keeps).")
    rows = [[d.label, ", ".join(r["checks"]) or "none", r["examples"], r["kept"], sum(r["dropped"].values())]
            for d in datasets for r in d.curated]
    inner = table(["dataset", "checks", "examples in", "kept", "dropped"], rows, numeric_from=2)
    inner += chart("Examples dropped by reason", charts.bars(reasons, horizontal=True))
    return "drops", "Curation", inner + _reason_samples(datasets, "dropped")


def hardness(datasets: list[Dataset]) -> Section:
    margins: dict[str, collections.Counter] = {}
    ranks: dict[str, collections.Counter] = {}
    for d in datasets:
        margin: collections.Counter = collections.Counter()
        rank: collections.Counter = collections.Counter()
        for report in d.curated:
            margin.update(report["margin"])
            rank.update(report["positive_rank"])
        margins[d.label], ranks[d.label] = margin, rank  # empty ones too: a dataset keeps its colour
    parts = [chart("Hardness: cos(query, positive) − cos(query, negative), by the curate embedder",
                   charts.histogram(margins, MARGIN_BIN, "margin (below 0: the negative wins)", zero_line=True),
                   "from the false-negative check"),
             chart("Rank of the positive among the positives of its kind", charts.bars(
                 ranks, order=sorted({r for v in ranks.values() for r in v}, key=lambda r: (r.startswith(">"), int(r.lstrip(">")))),
                 label="examples"), "from the consistency check")]
    if not any(margins.values()) and not any(ranks.values()):
        parts.append(note("Not computed: curate's consistency and false-negative checks (an embedder) measure these."))
    return "hardness", "Hardness", "".join(parts)


def _binned(counter: Mapping[Any, int]) -> dict[str, int]:
    """Tasks by how many examples use them, in doubling bins: 1, 2, 3-4, 5-8, ..."""
    bins: collections.Counter = collections.Counter()
    for uses in counter.values():
        low = 1
        while low * 2 < uses:
            low *= 2
        bins[str(uses) if uses <= 2 else f"{low + 1}–{low * 2}"] += 1
    return dict(bins)


def tasks(datasets: list[Dataset]) -> Section:
    unique = per(datasets, lambda d: {k: t["unique"] for k, t in d.stats["tasks"]["by_kind"].items() if k in SUBTYPES})
    parts = [chart("Distinct tasks per subtype", charts.bars(unique, order=[k for k in SUBTYPES if any(
        k in v for v in unique.values())], label="tasks"))]
    uses = per(datasets, lambda d: _binned(collections.Counter(
        {(k, t): n for k, counter in d.tasks.items() if k in SUBTYPES for t, n in counter.items()})))
    order = sorted({b for v in uses.values() for b in v}, key=lambda b: int(b.split("–")[0]))
    parts.append(chart("Examples per task", charts.bars(uses, order=order, label="tasks"), "brainstormed subtypes"))
    series = {}
    for d in datasets:
        for m in d.manifests:
            for subtype, rounds in m["new_by_round"].items():
                name = subtype if len(datasets) == 1 else f"{subtype} ({d.label})"
                series[name] = [(float(i + 1), float(n)) for i, n in enumerate(rounds)]
    parts.append(chart("Brainstorm: new distinct tasks per round", charts.lines(series, "round", "new tasks")))
    rows = [[kind, d.label, t["unique"], *(t["per_task"][k] if t["per_task"] else None for k in ("min", "median", "max")),
             t["diversity"]["jaccard_distance"], t["diversity"]["distinct_2"]]
            for d in datasets for kind, t in d.stats["tasks"]["by_kind"].items()]
    parts.append(table(["kind", "dataset", "tasks", "examples per task: min", "median", "max", "diversity: distance",
                        "distinct-2"], rows, numeric_from=2))
    brainstorm = [[subtype, d.label, b["rounds"], b["asked"], b["new"], _pct(b["yield"]), "yes" if b["exhausted"] else ""]
                  for d in datasets for subtype, b in d.stats["runs"]["brainstorm"].items()]
    if brainstorm:
        parts.append(table(["subtype", "dataset", "rounds", "tasks asked", "new", "yield", "stopped at the floor"],
                           brainstorm, numeric_from=2))
    return "tasks", "Tasks", "".join(parts)


RUN_ROWS = (("model", "model"), ("backend", "backend"), ("status", "status"), ("stop reason", "stop_reason"),
            ("N asked", "n"), ("requests", "requests"), ("valid", "valid"), ("rejected", "rejected"),
            ("HTTP requests", "http_requests"), ("retries", "retries"), ("prompt tokens", "prompt_tokens"),
            ("completion tokens", "completion_tokens"), ("brainstorm tokens", "brainstorm_tokens"),
            ("cost (USD)", "cost_usd"), ("wall time (s)", "wall_seconds"), ("sessions", "sessions"))


def runs(datasets: list[Dataset]) -> Section:
    manifests = [(d.label, m) for d in datasets for m in d.manifests]
    if not manifests:
        return "runs", "Runs", note(f"No run manifest beside these examples (generate writes {MANIFEST_NAME}).")
    header = ["", *(m["folder"] for _, m in manifests)]
    rows = [[name, *(m[key] for _, m in manifests)] for name, key in RUN_ROWS]
    per_valid = [m["prompt_tokens"] + m["completion_tokens"] for _, m in manifests]
    rows.append(["tokens per valid example", *(round(t / m["valid"], 1) if m["valid"] else None
                                               for t, (_, m) in zip(per_valid, manifests))])
    rows.append(["valid examples per second", *(round(m["valid"] / m["wall_seconds"], 2) if m["wall_seconds"] else None
                                                for _, m in manifests)])
    inner = table(header, rows)
    if all(m["cost_usd"] is None for _, m in manifests):
        inner += note("Cost: the manifest holds no price (a run given one records its cost).")
    return "runs", "Runs", inner


def evaluation(results: list[dict[str, Any]]) -> Section:
    passkey = [r for r in results if r["benchmark"] == "passkey"]
    retrieval = [r for r in results if r["benchmark"] == "retrieval"]
    parts = []
    if passkey:
        series = {r.get("model") or r["file"]: [(float(x["length"]), float(x["accuracy"])) for x in r["lengths"]]
                  for r in passkey}
        parts.append(chart("Passkey retrieval: top-1 accuracy by document length", charts.lines(
            series, f"length ({passkey[0].get('unit') or 'tokens'})", "top-1 accuracy", log_x=True, share=True)))
        parts.append(table(["model", "length", "queries", "accuracy"],
                           [[r.get("model"), x["length"], x["queries"], x["accuracy"]] for r in passkey for x in r["lengths"]],
                           numeric_from=1))
    if retrieval:
        from synthgen.report.evals import METRICS

        ndcg = {r.get("model") or r["file"]: {g: v["ndcg@10"] for g, v in r["groups"].items()} for r in retrieval}
        parts.append(chart("Retrieval: nDCG@10 by group", charts.bars(ndcg, label="nDCG@10", share=True,
                                                                       order=list(dict.fromkeys(g for v in ndcg.values() for g in v)))))
        parts.append(table(["model", "source", "group", "queries", *METRICS],
                           [[r.get("model"), r.get("source"), g, v["queries"], *(v.get(m, "-") for m in METRICS)]
                            for r in retrieval for g, v in r["groups"].items()], numeric_from=3))
    if not parts:
        parts.append(note("No eval results given: synthgen eval passkey --json > passkey.json, then "
                          "synthgen report ... --eval passkey.json (and likewise eval retrieval)."))
    return "evaluation", "Evaluation", "".join(parts)


def browser(datasets: list[Dataset], sample: int) -> Section:
    sampled = sum(1 for d in datasets for row in d.rows if row["type"] == "example")
    total = sum(d.stats["examples"] for d in datasets)
    text = (f"{sampled:,} of {total:,} examples (a seeded random sample, at most {sample:,} per input), with a few "
            "rejected answers and dropped examples of each reason. Texts longer than 2,000 characters are cut.")
    return "browser", "Examples", note(text) + '<div id="example-browser"></div>'


def all_sections(datasets: list[Dataset], results: list[dict[str, Any]], sample: int) -> list[Section]:
    return [overview(datasets), *counts(datasets), lengths(datasets), adherence(datasets), rejects(datasets),
            drops(datasets), hardness(datasets), tasks(datasets), runs(datasets), evaluation(results),
            browser(datasets, sample)]
