"""synthgen report without a browser: what the file holds, that it names nothing to load, that its
inline data cannot end its script, that its size is bounded by the sample, and one-line errors.
The browser's own checks are in test_report_browser.py."""

import json
import re

import pytest
import report_data
from stored import stored, write_jsonl

from synthgen.report.page import inline_json
from synthgen.report.sample import Reservoir

pytest.importorskip("matplotlib")

# What would make a browser fetch something: a scheme, a protocol-relative "//", an attribute that
# loads, CSS that loads, elements that load.
LOADS = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|//|url\((?!#)|@import|<(?:link|img|iframe|object|embed|audio|video|source|base)\b"
                   r"|<[a-z][^>]*?\s(?:src|srcset|action|poster|data|formaction|href)\s*=\s*(?![\"']?#)")


def loads(html: str) -> list[str]:
    return [m.group(0) for m in LOADS.finditer(html)]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return report_data.make(tmp_path_factory.mktemp("report-data"))


@pytest.fixture(scope="module")
def page(made, tmp_path_factory):
    from synthgen.report.build import report

    out = tmp_path_factory.mktemp("report") / "report.html"
    report([made["raw"], made["curated"]], out, evals=[made["passkey"], made["retrieval"]])
    return out.read_text(encoding="utf-8")


def embedded(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match, "no inline data"
    return json.loads(match.group(1))


def test_the_page_names_nothing_to_load_and_allows_nothing_else(page):
    assert loads(page) == []
    assert "https://" not in page and "evil.example" in page  # the planted URL is there, as data only
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert policy.startswith("default-src 'none'") and "script-src 'sha256-" in policy and "unsafe-eval" not in policy
    # One script runs: the page's own. The data is JSON, never run.
    assert re.findall(r"<script(?: [^>]*)?>", page) == ['<script type="application/json" id="report-data">', "<script>"]


def test_every_section_is_there_with_its_charts(page):
    for ident in ("overview", "kinds", "languages", "sources", "lengths", "adherence", "rejects", "drops", "hardness",
                  "tasks", "runs", "evaluation", "browser"):
        assert f'<section id="{ident}">' in page, ident
    figures = re.findall(r'<figure class="chart-box">(.*?)</figure>', page, re.S)
    assert len(figures) >= 15
    for figure in figures:
        assert re.search(r'<svg class="chart" role="img".*?<path', figure, re.S), figure[:200]
    # Charts from matplotlib, with ids of their own: no two elements share one.
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for heading in ("Passkey retrieval", "Retrieval: nDCG@10", "Hardness", "Rank of the positive", "Rejected answers by reason",
                    "Examples dropped by reason", "Examples by language"):
        assert heading in page, heading


def test_the_data_holds_the_sample_rejects_and_drops(page, made):
    data = embedded(page)
    assert data["datasets"] == [str(made["raw"]), str(made["curated"])]
    types = {}
    for row in data["rows"]:
        types.setdefault(row["type"], []).append(row)
    assert len(types["example"]) == 61 + 22  # both inputs whole: fewer than the sample
    assert {r["reason"] for r in types["reject"]} == {"invalid_json", "schema", "truncated", "empty"}
    assert all("raw" in r and "detail" in r for r in types["reject"])
    assert {r["reason"] for r in types["dropped"]} == {"inconsistent", "false-negative"}
    planted = next(r for r in types["example"] if report_data.PLANTED in r["query"])
    assert planted["query"] == report_data.HOSTILE and planted["source"] == "https://example.org/data.jsonl"


def test_the_run_and_curate_figures_are_shown(page):
    runs = page[page.index('<section id="runs">'):]
    assert "fake-model" in runs and "tokens per valid example" in runs
    hardness = page[page.index('<section id="hardness">'):page.index('<section id="tasks">')]
    assert "Not computed" not in hardness


def test_inline_json_cannot_end_its_script_or_name_a_url():
    hostile = {"a": "</script><script>alert(1)</script>", "b": "<!-- x", "c": "https://x.example/?a=1&b=(2)",
               "d": "line\u2028separator", "e": "back\\slash/"}
    text = inline_json(hostile)
    assert "<" not in text and ">" not in text and "&" not in text and "/" not in text.replace("\\/", "")
    assert loads(text) == [] and "\u2028" not in text
    assert json.loads(text) == hostile


def test_the_sample_is_seeded_bounded_and_fair():
    def sample(seed, n=10_000, size=50):
        reservoir = Reservoir(size, seed)
        for i in range(n):
            reservoir.add(i)
        return list(reservoir)

    assert sample(1) == sample(1) != sample(2)
    assert len(sample(1)) == 50 and sample(1) == sorted(sample(1))
    assert sample(1, n=30) == list(range(30))
    # Every place equally likely: the mean of the kept places is near the middle.
    means = [sum(sample(seed)) / 50 for seed in range(40)]
    assert 4_500 < sum(means) / len(means) < 5_500


def test_the_size_is_bounded_by_the_sample_not_the_input(cli, workdir):
    long_text = " ".join(f"w{i}" for i in range(600))  # 600 words: more than a text is shown
    sizes = {}
    for n in (2_000, 8_000):
        write_jsonl(workdir / f"d{n}" / "examples.jsonl",
                    [stored(i, "short-long", positive=long_text, negative=long_text, language=f"L{i % 100}",
                            placeholders={"query_length": "5 to 15 words", "num_words": "200"}) for i in range(n)])
        result = cli("report", f"d{n}", "--out", f"r{n}.html", "--sample", 500, "-q")
        assert result.status == 0, result.err
        sizes[n] = (workdir / f"r{n}.html").stat().st_size
        data = embedded((workdir / f"r{n}.html").read_text(encoding="utf-8"))
        assert len(data["rows"]) == 500
        assert all(len(r["positive"]) < 2_100 and r["positive"].endswith("more characters]") for r in data["rows"])
    assert sizes[8_000] < sizes[2_000] * 1.1
    assert sizes[8_000] < 2_500_000


@pytest.mark.parametrize("args, message", [
    (["missing"], "no such file or folder: missing"),
    (["not-data"], "no stored example in not-data"),
    (["data", "--eval", "nothing.json"], "no such file: nothing.json"),
    (["data", "--eval", "data/examples.jsonl"], "is not a result of `synthgen eval passkey --json`"),
    (["data", "--eval", "wrong.json"], "a field is missing or not a number"),
    (["data", "--out", "data"], "is a folder"),
])
def test_bad_input_is_one_line_and_status_2(cli, workdir, args, message):
    write_jsonl(workdir / "data" / "examples.jsonl", [stored(0)])
    write_jsonl(workdir / "not-data" / "notes.jsonl", [{"note": "no example here"}])
    (workdir / "wrong.json").write_text(json.dumps({"benchmark": "passkey", "lengths": [{"length": 1}]}))
    result = cli("report", *args)
    assert result.status == 2
    assert message in result.err and len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not (workdir / "report.html").exists()


def test_a_plain_file_of_examples_is_a_dataset(cli, workdir):
    write_jsonl(workdir / "some.jsonl", [stored(i, kind) for i, kind in enumerate(["sts", "bitext", "short-long"] * 5)])
    result = cli("report", "some.jsonl", "--out", "r.html", "-q")
    assert result.status == 0, result.err
    assert "15 examples from 1 input" in result.out
    page = (workdir / "r.html").read_text(encoding="utf-8")
    assert "No run manifest.json or rejects.jsonl" in page and "No curate output" in page and "No eval results" in page
