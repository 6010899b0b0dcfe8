"""synthgen corpus ingest on a folder of every format (tests/fixtures/corpus): what is read, skipped,
kept and dropped, where each passage comes from, and that it streams, repeats itself and locks."""

import json
import random
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from conftest import read_jsonl
from test_store import hold_in_another_process

from synthgen.config import load_config
from synthgen.corpus.ingest import document_id, ingest
from synthgen.corpus.passages import count_words, cut, paragraphs, passages

FIXTURE = Path(__file__).parent / "fixtures" / "corpus"
FILES = ("passages.jsonl", "dropped.jsonl", "manifest.json")


@pytest.fixture
def docs(workdir):
    """A copy of the fixture folder in the test's own folder (a run never writes beside the fixture)."""
    return shutil.copytree(FIXTURE, workdir / "docs")


def ingested(cli, *args):
    result = cli("corpus", "ingest", *args, "-q")
    assert result.status == 0, result.err
    out = Path(args[args.index("--out") + 1])
    return result, read_jsonl(out / "passages.jsonl"), read_jsonl(out / "dropped.jsonl"), \
        json.loads((out / "manifest.json").read_text())


def by_source(records):
    found = {}
    for record in records:
        found.setdefault(record["source"], []).append(record)
    return found


def test_every_format_is_read_and_counted_and_nothing_else(cli, docs):
    result, kept, dropped, manifest = ingested(cli, "docs", "--out", "corpus")
    assert manifest["files"] == {"read": 9, "by_ending": {".html": 1, ".jsonl": 1, ".md": 1, ".pdf": 1, ".txt": 5},
                                 "skipped": 3, "hidden": 2, "other_formats": {".csv": 1, ".py": 1}}
    assert manifest["skipped"] == {"by_reason": {"binary": 1, "empty": 1, "no text": 1}, "files": [
        {"path": "binary.txt", "reason": "binary", "detail": "NUL bytes"},
        {"path": "blank.md", "reason": "no text", "detail": "nothing but spaces"},
        {"path": "empty.txt", "reason": "empty"}]}
    # articles.jsonl: 8 lines, 4 documents (one repeating another, one of six words).
    assert manifest["documents"]["read"] == 12
    assert manifest["documents"]["lines_skipped"] == {"no string field 'text'": 2, "no text": 1, "not JSON": 1}
    assert manifest["passages"]["made"] == 17 and manifest["passages"]["kept"] == 14 == len(kept)
    assert manifest["passages"]["dropped"] == {"duplicate": 1, "near-duplicate": 1, "short": 1}
    assert manifest["passages"]["words"] == sum(count_words(p["text"]) for p in kept)
    assert manifest["passages"]["characters"] == sum(len(p["text"]) for p in kept)
    assert manifest["settings"]["passage_words"] == 150 and manifest["settings"]["text_field"] == "text"
    assert manifest["synthgen_version"] and manifest["inputs"] == ["docs"]
    counts = {source: len(records) for source, records in by_source(kept).items()}
    assert counts == {"articles.jsonl:1": 1, "articles.jsonl:2": 1, "guide.md": 5, "legacy/cp1251.txt": 1,
                      "legacy/latin1.txt": 1, "legacy/utf16.txt": 1, "notes.txt": 2, "page.html": 1, "report.pdf": 1}
    # Hidden files and other formats are never read: no passage names them.
    assert not [p for p in kept + dropped if p["source"].startswith((".", "script", "data"))]
    line = result.out.strip()
    assert "\n" not in line and line == (
        "read 9 files, 12 documents: kept 14 passages (1,258 words), dropped duplicate 1, near-duplicate 1, short 1; "
        "skipped 3 files (binary 1, empty 1, no text 1); passed over hidden 2, other formats 2 -> corpus/passages.jsonl")


def test_repeats_are_dropped_naming_the_kept_passage_in_input_order(cli, docs):
    _, kept, dropped, _ = ingested(cli, "docs", "--out", "corpus")
    ids = {p["source"]: p["id"] for p in kept}
    assert [(d["source"], d["reason"], d.get("duplicate_of")) for d in dropped] == [
        ("articles.jsonl:5", "duplicate", ids["articles.jsonl:1"]),  # the same text as line 1
        ("articles.jsonl:6", "short", None),  # six words
        ("nested/deeper/faq.txt", "near-duplicate", ids["articles.jsonl:2"]),  # "two weeks" -> "three weeks"
    ]
    faq = dropped[2]["text"]
    original = next(p["text"] for p in kept if p["source"] == "articles.jsonl:2")
    assert faq != original and faq.replace("three weeks", "two weeks") == original
    assert not {p["id"] for p in kept} & {d["id"] for d in dropped}


def decoded(path: Path) -> str:
    """A text file's text, decoded here by what the fixture is known to be in."""
    encodings = {"latin1.txt": "latin-1", "utf16.txt": "utf-16", "cp1251.txt": "cp1251"}
    return path.read_bytes().decode(encodings.get(path.name, "utf-8"))


def test_offsets_point_at_the_passage_in_the_decoded_document(cli, docs):
    _, kept, dropped, _ = ingested(cli, "docs", "--out", "corpus")
    lines = (docs / "articles.jsonl").read_text().splitlines()
    checked = 0
    for passage in kept + dropped:
        source = passage["source"]
        if source.startswith("articles.jsonl:"):
            text = json.loads(lines[int(source.split(":")[1]) - 1])["text"]
        elif source.endswith((".txt", ".md")):
            text = decoded(docs / source)
        else:
            continue
        start = passage["offset"]
        assert text[start:start + len(passage["text"])] == passage["text"], passage["id"]
        assert passage["doc_id"] == document_id(source) and passage["id"].startswith(passage["doc_id"] + "-")
        checked += 1
    assert checked == 15
    # A document's passages are numbered in order, from 0, and start where the last began or later.
    guide = by_source(kept)["guide.md"]
    assert [p["id"].rsplit("-", 1)[1] for p in guide] == ["0", "1", "2", "3", "4"]
    assert [p["offset"] for p in guide] == sorted(p["offset"] for p in guide)


def test_text_in_other_encodings_is_read_right(cli, docs):
    _, kept, _, _ = ingested(cli, "docs", "--out", "corpus")
    texts = {source: records[0]["text"] for source, records in by_source(kept).items()}
    assert texts["legacy/latin1.txt"].startswith("Le marché du village ouvre à sept heures")
    assert "crème brûlée très appréciée" in texts["legacy/latin1.txt"]  # cp1250 would read "trčs"
    assert texts["legacy/utf16.txt"].startswith("Die Stadtbücherei bleibt während")  # no byte-order mark kept
    assert texts["legacy/cp1251.txt"].startswith("Городская библиотека временно закрыта")
    assert texts["notes.txt"].count("\r\n\r\n") == 2  # CRLF blank lines are paragraph breaks, kept as they were


def test_html_is_read_as_the_text_a_reader_sees(cli, docs):
    _, kept, _, _ = ingested(cli, "docs", "--out", "corpus")
    [page] = by_source(kept)["page.html"]
    assert page["text"] == (
        "Repair Café opening hours\n\nRepair Café\n\nBring your broken toasters, lamps, bicycles and clothes to the "
        "community hall on the last Saturday of every month. Volunteer fixers will help you repair them for free, "
        "and you keep what you learn.\n\nTea & cake are served all afternoon.\nDonations go to the hall's heating "
        "fund.\n\nElectrical repairs: ten until one\n\nBicycles and textiles: ten until four\n\nMonth Date\n\nMarch 29")


def test_pdf_pages_are_read_with_the_extra(cli, docs):
    pytest.importorskip("pypdf")
    _, kept, _, _ = ingested(cli, "docs", "--out", "corpus")
    [report] = by_source(kept)["report.pdf"]
    assert report["text"].startswith("Annual report of the allotment society.\nForty-two plots were let this year")
    assert "\n\nPlans for next year." in report["text"]  # pages joined by a blank line
    assert report["text"].endswith("ate the winter cabbages.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 the rest of it lost")
    _, _, _, manifest = ingested(cli, "docs/broken.pdf", "docs/report.pdf", "--out", "again")
    [broken] = manifest["skipped"]["files"]
    assert broken["path"] == "docs/broken.pdf" and broken["reason"] == "unreadable PDF" and broken["detail"]


def test_without_the_pdf_extra_a_pdf_is_skipped_with_what_to_install(workdir, docs):
    # pypdf made unimportable in a process of its own, as it is where the extra is not installed.
    code = ("import sys; sys.modules['pypdf'] = None; from synthgen.cli import main; "
            "main(['corpus', 'ingest', 'docs/report.pdf', 'docs/notes.txt', '--out', 'corpus', '-q'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((workdir / "corpus" / "manifest.json").read_text())
    assert manifest["skipped"]["files"] == [{"path": "docs/report.pdf", "reason": "PDF needs: pip install 'synthgen[pdf]'"}]
    assert "skipped 1 files (PDF needs: pip install 'synthgen[pdf]' 1)" in proc.stdout


def test_the_same_input_gives_the_same_bytes_and_a_new_file_renumbers_nothing(cli, docs):
    ingested(cli, "docs", "--out", "first")
    ingested(cli, "docs", "--out", "second")
    for name in FILES:
        assert (Path("first") / name).read_bytes() == (Path("second") / name).read_bytes(), name
    before = {p["id"]: p for p in read_jsonl(Path("first/passages.jsonl"))}
    # A new file, first in path order, leaves every other document's ids and passages as they were.
    (docs / "aaa-new.txt").write_text("A new note about the lending library's opening hours on bank holidays, "
                                      "which change every year and are posted on the door a week before. " * 2)
    _, kept, _, _ = ingested(cli, "docs", "--out", "third")
    after = {p["id"]: p for p in kept}
    assert {i: p for i, p in after.items() if p["source"] != "aaa-new.txt"} == before
    assert kept[0]["source"] == "aaa-new.txt"


def test_files_named_outright_go_by_the_path_given_and_are_read_once(cli, docs):
    _, kept, _, manifest = ingested(cli, "docs/notes.txt", "docs/legacy", "docs/notes.txt", "--out", "corpus")
    assert [p["source"] for p in kept] == ["docs/notes.txt", "docs/notes.txt", "cp1251.txt", "latin1.txt", "utf16.txt"]
    assert manifest["inputs"] == ["docs/notes.txt", "docs/legacy", "docs/notes.txt"]


def test_the_jsonl_text_field_is_a_flag(cli, workdir):
    (workdir / "docs.jsonl").write_text("".join(json.dumps({"body": f"Entry {n}: " + "words of the body " * 10}) + "\n"
                                                for n in range(3)))
    _, kept, _, manifest = ingested(cli, "docs.jsonl", "--text-field", "body", "--out", "corpus")
    assert [p["source"] for p in kept] == ["docs.jsonl:1", "docs.jsonl:2", "docs.jsonl:3"]
    assert manifest["settings"]["text_field"] == "body"


def test_sizes_come_from_the_config(cli, docs, workdir):
    (workdir / "small.toml").write_text("[corpus]\npassage_words = 40\noverlap_words = 10\nmin_words = 5\n")
    _, kept, _, manifest = ingested(cli, "docs/guide.md", "--config", "small.toml", "--out", "corpus")
    assert manifest["settings"]["passage_words"] == 40
    assert all(count_words(p["text"]) <= 40 + 5 for p in kept) and len(kept) > 10


def test_a_second_writer_is_refused_in_one_line(cli, docs, workdir):
    holder = hold_in_another_process(workdir / "corpus")
    try:
        result = cli("corpus", "ingest", "docs", "--out", "corpus", "-q")
    finally:
        holder.kill()
        holder.wait()
    assert result.status == 2 and len(result.err.strip().splitlines()) == 1
    assert f"corpus is in use by synthgen generate (pid {holder.pid} on " in result.err
    assert not (workdir / "corpus" / "passages.jsonl").exists()
    assert cli("corpus", "ingest", "docs", "--out", "corpus", "-q").status == 0  # the lock went with the process


@pytest.mark.parametrize("args,message", [
    (["missing"], "no such file or folder: missing"),
    (["docs", "missing.txt"], "no such file or folder: missing.txt"),
    (["docs", "--out", "docs/notes.txt"], "docs/notes.txt is a file, not a folder"),
    (["docs/notes.txt/inner.txt"], "no such file or folder: docs/notes.txt/inner.txt"),
    (["docs/script.py", "docs/data.csv"], "nothing to ingest in docs/script.py, docs/data.csv: passed over: other "
                                          "formats 2 (.csv 1, .py 1) (corpus ingest reads .txt, .md, .jsonl, .html, .htm, .pdf)"),
    (["docs/empty.txt", "docs/binary.txt"], "no passage to keep in docs/empty.txt, docs/binary.txt: 2 files skipped "
                                            "(binary 1, empty 1)"),
    (["docs/articles.jsonl", "--text-field", "body"], "no passage to keep in docs/articles.jsonl: 1 files skipped "
                                                      "(no text field 1)"),
    (["docs", "--text-field", ""], "config: corpus.text_field: String should have at least 1 character"),
    (["docs", "--config", "bad.toml"], "config: corpus: overlap_words (150) must be less than passage_words (150)"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, docs, workdir, args, message):
    (workdir / "bad.toml").write_text("[corpus]\noverlap_words = 150\n")
    result = cli("corpus", "ingest", *args, *([] if "--out" in args else ["--out", "corpus"]), "-q")
    assert result.status == 2, result.out
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert message in result.err, result.err
    assert not (workdir / "corpus").exists()


def test_the_output_folder_is_not_read_as_input(cli, docs):
    _, first, _, _ = ingested(cli, "docs", "--out", "docs/corpus")
    _, again, _, _ = ingested(cli, "docs", "--out", "docs/corpus")  # its passages.jsonl is not a document
    assert again == first
    result = cli("corpus", "ingest", "docs/corpus", "--out", "docs/corpus", "-q")
    assert result.status == 2 and "docs/corpus is the output folder" in result.err


# -- cutting text into passages ------------------------------------------------------------------------


def words(count, start=0):
    return " ".join(f"w{n}" for n in range(start, start + count))


def cut_text(text, size, overlap, minimum, blocks=1):
    step = max(1, len(text) // blocks)
    pieces = [text[n:n + step] for n in range(0, len(text), step)]
    return list(passages(paragraphs(pieces), size, overlap, minimum))


def test_paragraphs_are_packed_whole_and_a_heading_goes_with_what_it_heads():
    text = f"{words(4)}.\n\n{words(4, 10)}.\n\nA heading\n\n{words(6, 20)}.\n\n{words(3, 30)}."
    cut_up = cut_text(text, size=10, overlap=2, minimum=3)
    assert [p.text for p in cut_up] == [f"{words(4)}.\n\n{words(4, 10)}.", f"A heading\n\n{words(6, 20)}.",
                                        f"{words(3, 30)}."]
    assert [p.words for p in cut_up] == [8, 8, 3]


def test_a_long_paragraph_is_cut_into_even_windows_that_overlap():
    text = words(330)
    cut_up = cut_text(text, size=150, overlap=30, minimum=25, blocks=7)
    assert [p.words for p in cut_up] == [130, 130, 130]  # three windows, no short tail
    spans = [(int(p.text.split()[0][1:]), int(p.text.split()[-1][1:])) for p in cut_up]
    assert spans[0][0] == 0 and spans[-1][1] == 329
    assert all(earlier[1] - later[0] + 1 >= 30 for earlier, later in zip(spans, spans[1:]))
    for piece in cut_up:
        assert text[piece.offset:piece.offset + len(piece.text)] == piece.text


def test_a_short_end_joins_the_passage_before_and_a_short_document_stays_one():
    text = f"{words(20)}\n\n{words(20, 100)}\n\n{words(4, 200)}"
    cut_up = cut_text(text, size=30, overlap=5, minimum=10)
    assert [p.words for p in cut_up] == [20, 24]
    assert cut_up[1].text == f"{words(20, 100)}\n\n{words(4, 200)}"
    assert [p.words for p in cut_text("just four words here", 30, 5, 10)] == [4]
    assert cut_text("  \n\n \r\n ", 30, 5, 10) == []


def test_chinese_and_japanese_count_a_character_a_word():
    assert count_words("東京は日本の首都です。") == 11
    assert count_words("Tokyo 東京 is big") == 5
    group = list(paragraphs(["東京" * 100]))
    assert [p.words for p in cut(group, size=80, overlap=10)] == [74, 74, 74]


def test_a_file_with_no_blank_line_is_cut_without_holding_it_whole():
    text = words(50_000)
    pieces = list(paragraphs([text[n:n + 10_000] for n in range(0, len(text), 10_000)], longest=30_000))
    assert max(len(p.text) for p in pieces) <= 30_000
    assert " ".join(p.text for p in pieces) == text


# -- streaming -----------------------------------------------------------------------------------------


def generated_corpus(folder: Path, megabytes: float, seed: int) -> int:
    """Random prose in three files: paragraphs (half the bytes), one with no blank line (a quarter), a
    .jsonl (a quarter). Returns the bytes written."""
    rng = random.Random(seed)
    vocabulary = [f"{rng.choice('bcdfghklmnprstvw')}{rng.choice('aeiou')}{n}" for n in range(20_000)]

    def prose(count):
        return " ".join(rng.choices(vocabulary, k=count))

    folder.mkdir()
    with open(folder / "book.txt", "w") as f:
        while f.tell() < megabytes * 500_000:
            f.write(prose(rng.randint(20, 120)) + ".\n\n")
    with open(folder / "log.txt", "w") as f:
        while f.tell() < megabytes * 250_000:
            f.write(prose(1000) + " ")
    with open(folder / "docs.jsonl", "w") as f:
        while f.tell() < megabytes * 250_000:
            f.write(json.dumps({"text": prose(rng.randint(50, 400))}) + "\n")
    return sum(path.stat().st_size for path in folder.iterdir())


def test_memory_grows_with_the_passages_kept_not_with_the_text(workdir):
    """Text is held a block and a batch of passages at a time; what grows is the repeats' index, a
    signature a kept passage (whose Rust part tracemalloc does not see: bench/RESULTS.md has the
    process's whole peak)."""
    config = load_config(overrides={"corpus": {"near_duplicate": {"processes": 1}}})

    def peak(megabytes):
        folder = workdir / f"text-{megabytes}"
        size = generated_corpus(folder, megabytes, seed=megabytes)
        tracemalloc.start()
        manifest = ingest([folder], workdir / f"corpus-{megabytes}", config, show_progress=False)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert manifest["files"]["read"] == 3
        return size, peak, manifest["passages"]["kept"]

    (small, small_peak, small_kept), (large, large_peak, large_kept) = peak(4), peak(16)
    assert large > 16_000_000 and large_kept > 18_000
    assert large_peak < large / 2, (large_peak, large)  # about 8 MB here
    # 12 MB more text: under 200 KB more memory a MB (under 200 bytes a kept passage of some 800).
    assert large_peak - small_peak < 0.2 * (large - small), (large_peak - small_peak, large - small)
    assert (large_peak - small_peak) / (large_kept - small_kept) < 200


def test_document_ids_depend_on_the_name_alone():
    assert document_id("notes.txt") == document_id("notes.txt") != document_id("notes.md")
    assert len(document_id("a")) == 16 and int(document_id("a"), 16) >= 0
