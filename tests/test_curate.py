"""synthgen curate on a planted-defect dataset: each check finds its defects, nothing is lost."""

import json

import pytest
from conftest import read_jsonl
from planted import planted, planted_languages
from stored import write_jsonl


def precision_recall(dropped: list[dict], reason: str, planted_ids: set[str]) -> tuple[float, float]:
    found = {d["id"] for d in dropped if d["reason"] == reason}
    hits = len(found & planted_ids)
    return (hits / len(found) if found else 1.0), hits / len(planted_ids)


def test_near_duplicates_are_dropped_naming_the_kept_one_and_nothing_is_lost(cli, workdir):
    data = planted()
    write_jsonl(workdir / "data/raw/examples.jsonl", data.records)
    result = cli("curate", "data/raw", "--out", "data/curated", "--checks", "near-duplicate", "-q")
    assert result.status == 0, result.err
    kept = read_jsonl(workdir / "data/curated/examples.jsonl")
    dropped = read_jsonl(workdir / "data/curated/dropped.jsonl")
    ids = [r["id"] for r in data.records]
    assert sorted(r["id"] for r in kept + dropped) == sorted(ids)  # each example in exactly one file
    assert [r["id"] for r in kept] == [i for i in ids if i in {r["id"] for r in kept}]  # input order kept
    precision, recall = precision_recall(dropped, "near-duplicate", data.defects["near-duplicate"])
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    for record in dropped:
        assert record["evidence"]["duplicate_of"] == data.originals[record["id"]]
        original = next(r for r in data.records if r["id"] == record["id"])
        assert {k: record[k] for k in original} == original  # the example whole, as it was
    # A kept example is stored exactly as it was read.
    assert kept[0] == data.records[0]
    report = json.loads((workdir / "data/curated/report.json").read_text())
    assert report["examples"] == len(ids) and report["kept"] == len(kept)
    assert report["dropped"] == {"near-duplicate": len(dropped)}
    assert sum(c["in"] for c in report["by_kind"].values()) == len(ids)
    assert report["settings"]["near_duplicate"]["threshold"] == 0.9
    assert f"{len(ids)} examples: kept {len(kept)}, dropped {len(dropped)}" in result.out
    # Same input and settings, same output, byte for byte.
    first = {name: (workdir / "data/curated" / name).read_bytes() for name in ("examples.jsonl", "dropped.jsonl")}
    assert cli("curate", "data/raw", "--out", "data/again", "--checks", "near-duplicate", "-q").status == 0
    assert first == {name: (workdir / "data/again" / name).read_bytes() for name in first}
    # Readers of the folder see the kept examples only: dropped.jsonl is an audit trail.
    result = cli("stats", "data/curated", "--json")
    assert json.loads(result.out)["examples"] == len(kept)


def test_texts_without_spaces_are_compared_by_characters(cli, workdir):
    from stored import stored

    base = ("東京の天気は明日晴れる予報で、気温は二十度まで上がる見込みです。午後からは風が強くなり、"
            "夕方には北の地域で雨が降るかもしれません。週末は全国的に穏やかな天気が続き、行楽日和となるでしょう。"
            "山沿いでは朝晩の冷え込みが厳しくなるため、服装には十分に気をつけてください。")
    records = [stored(0, query="天気", positive=base, language="Japanese"),
               stored(1, query="天気", positive=base.replace("二十", "二十一"), language="Japanese"),
               stored(2, query="料理", positive="大阪の料理店は週末に新しいメニューを出して、多くの客が訪れました。" * 3,
                      language="Japanese")]
    write_jsonl(workdir / "in.jsonl", records)
    assert cli("curate", "in.jsonl", "--out", "cur", "--checks", "near-duplicate", "-q").status == 0
    assert [d["id"] for d in read_jsonl(workdir / "cur/dropped.jsonl")] == ["run-1"]


@pytest.mark.parametrize("args,message", [
    (["in.jsonl", "--checks", "spelling"], "no check 'spelling' (known: language, near-duplicate, consistency, false-negative)"),
    (["missing.jsonl"], "no such file or folder: missing.jsonl"),
    (["empty.jsonl"], "no stored example in empty.jsonl"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, workdir, args, message):
    from stored import stored

    write_jsonl(workdir / "in.jsonl", [stored(0)])
    (workdir / "empty.jsonl").write_text("{}\n")
    result = cli("curate", *args, "--out", "cur", "-q")
    assert result.status == 2 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert not (workdir / "cur").exists()


def test_near_duplicate_tasks_are_dropped_from_a_copy_of_the_task_files(cli, workdir):
    from synthgen.store import Task, TaskFile

    tasks = ["Identify the most popular restaurants in the city.",
             "Identify the most popular restaurants in a city",  # one word swapped: 7 of 8 words shared
             "Given the name of a rare disease, locate patient guides that explain its symptoms.",
             "Sort a customer support email into billing, shipping or returns.",
             "Given the name of a rare disease locate the patient guides that explain its symptoms"]
    source = TaskFile(workdir / "data/tasks/short-long.jsonl", "short-long")
    with source.writer() as writer:
        for text in tasks:
            writer.write(Task(kind="short-long", task=text, model="m", topic="food"))
    result = cli("curate", "--tasks", "data/tasks", "--out", "data/tasks-curated")
    assert result.status == 0, result.err
    assert "short-long: 5 tasks, kept 3, near duplicates 2" in result.out
    kept = TaskFile(workdir / "data/tasks-curated/short-long.jsonl", "short-long")
    assert kept.read() == [tasks[0], tasks[2], tasks[3]]
    assert kept.records()[0].topic == "food"  # records are kept whole
    dropped = read_jsonl(workdir / "data/tasks-curated/dropped.jsonl")
    assert [(d["task"], d["duplicate_of"]) for d in dropped] == [(tasks[1], tasks[0]), (tasks[4], tasks[2])]
    assert source.read() == tasks  # the source is read, never rewritten
    result = cli("curate", "--tasks", "data/tasks", "--out", "data/tasks")
    assert result.status == 2 and "--out must be another folder than --tasks" in result.err


def test_texts_in_another_language_than_asked_are_dropped_with_what_was_detected(cli, workdir):
    data = planted_languages()
    write_jsonl(workdir / "in.jsonl", data.records)
    result = cli("curate", "in.jsonl", "--out", "cur", "--checks", "language,near-duplicate", "-q")
    assert result.status == 0, result.err
    dropped = read_jsonl(workdir / "cur/dropped.jsonl")
    precision, recall = precision_recall(dropped, "language", data.defects["language"])
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, [d["evidence"] for d in dropped])
    found = {d["id"]: d for d in dropped}
    for planted_id in data.defects["language"] & set(found):
        evidence = found[planted_id]["evidence"]
        assert evidence["field"] in ("positive", "negative") and evidence["detected"] != evidence["expected"]
    report = json.loads((workdir / "cur/report.json").read_text())
    assert report["check_counts"]["language"]["texts checked"] > 2 * len(data.records)
    assert report["dropped"]["language"] == len(found) and report["by_kind"]["bitext"]["in"] > 0


def test_languages_the_identifier_confuses_agree_and_unknown_ones_pass(cli, workdir):
    from planted import udhr
    from stored import stored

    texts = udhr()
    records = [stored(0, query=texts["Croatian"][0], positive=texts["Croatian"][2], language="Serbian"),
               stored(1, query=texts["Malay"][0], positive=texts["Malay"][2], language="Indonesian"),
               stored(2, query="an imported query without a language", positive=texts["German"][2], language="unknown"),
               stored(3, query="Mera naam Ravi hai aur main Dilli mein rehta hoon", positive="Aaj mausam bahut accha "
                      "hai, chalo bahar ghoomne chalte hain aur chai peete hain", language="Hindi Romanized"),
               stored(4, query="मेरा नाम रवि है और मैं दिल्ली में रहता हूँ", positive="आज मौसम बहुत अच्छा है, चलो बाहर घूमने चलते हैं",
                      language="Hindi Romanized")]
    write_jsonl(workdir / "in.jsonl", records)
    result = cli("curate", "in.jsonl", "--out", "cur", "--checks", "language", "-q")
    assert result.status == 0, result.err
    assert [d["id"] for d in read_jsonl(workdir / "cur/dropped.jsonl")] == ["run-4"]  # Devanagari is not Romanized
    counts = json.loads((workdir / "cur/report.json").read_text())["check_counts"]["language"]
    assert counts["texts in no known language"] == 2


def test_the_language_check_gives_the_same_verdicts_in_worker_processes():
    import msgspec

    from synthgen.config import load_config
    from synthgen.curate.run import LANGUAGE_PARALLEL_FROM, LanguageCheck
    from synthgen.store import Example

    data = planted_languages(wrong=40)
    records = (data.records * (LANGUAGE_PARALLEL_FROM // len(data.records) + 1))[:LANGUAGE_PARALLEL_FROM + 7]
    examples = [msgspec.convert(r, Example) for r in records]
    config = load_config(None, {})
    alone, workers = LanguageCheck(config, processes=1), LanguageCheck(config, processes=2)
    try:
        assert workers.judge_many(examples) == alone.judge_many(examples)
        assert workers._pool is not None  # the batch did go to the workers
        assert workers.summary() == alone.summary()
        flagged = {r["id"] for r, verdict in zip(records, alone.judge_many(examples[:len(data.records)])) if verdict}
        assert flagged == data.defects["language"]
    finally:
        workers.close()
