"""synthgen split: deterministic, disjoint by task, lines kept as they were."""

import json

from conftest import read_jsonl


def examples():
    records = []
    for t in range(10):
        for i in range(5):
            records.append({"id": f"t{t}-{i}", "index": len(records), "kind": "short-long", "task": f"task number {t}",
                            "language": "English", "query": f"q {t} {i}", "positive": f"p {t} {i}",
                            "negative": f"n {t} {i}", "placeholders": {}, "raw": {}, "model": "m", "seed": 0})
    for i in range(20):  # one fixed instruction: split example by example
        records.append({"id": f"s{i}", "index": len(records), "kind": "sts", "task": "Retrieve semantically similar text.",
                        "language": "English", "query": f"s1 {i}", "positive": f"s2 {i}", "negative": f"s3 {i}",
                        "placeholders": {}, "raw": {}, "model": "m", "seed": 0})
    return records


def test_split_is_disjoint_by_task_and_deterministic(cli, workdir):
    (workdir / "in").mkdir()
    (workdir / "in" / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in examples()) + "not json\n")
    result = cli("split", "in", "--out", "s1", "--test-share", "0.3", "--seed", "4")
    assert result.status == 0, result.err
    train, test = read_jsonl(workdir / "s1" / "train.jsonl"), read_jsonl(workdir / "s1" / "test.jsonl")
    assert len(train) + len(test) == 70
    assert 0.25 <= len(test) / 70 <= 0.4
    tasks = lambda rows: {r["task"] for r in rows if r["kind"] == "short-long"}  # noqa: E731
    assert tasks(train) and tasks(test) and not tasks(train) & tasks(test)
    sts_test = [r for r in test if r["kind"] == "sts"]
    assert 0 < len(sts_test) < 20, "sts is split example by example"
    assert {r["id"] for r in train}.isdisjoint({r["id"] for r in test})
    summary = json.loads((workdir / "s1" / "split.json").read_text())
    assert sorted(summary["test_tasks"]) == sorted(tasks(test)) and summary["seed"] == 4
    # Same input and seed: the same bytes; another seed: another split. Files of an earlier split in
    # the output folder are not read as input.
    assert cli("split", "in", "--out", "s2", "--test-share", "0.3", "--seed", "4").status == 0
    assert (workdir / "s1" / "test.jsonl").read_bytes() == (workdir / "s2" / "test.jsonl").read_bytes()
    assert cli("split", "in", "--out", "in/split", "--test-share", "0.3", "--seed", "4").status == 0
    assert cli("split", "in", "--out", "in/split", "--test-share", "0.3", "--seed", "4").status == 0
    assert len(read_jsonl(workdir / "in" / "split" / "train.jsonl")) == len(train)
    assert cli("split", "in", "--out", "s3", "--test-share", "0.3", "--seed", "5").status == 0
    assert (workdir / "s1" / "test.jsonl").read_bytes() != (workdir / "s3" / "test.jsonl").read_bytes()


def test_split_bad_input(cli, workdir):
    (workdir / "one.jsonl").write_text(json.dumps(examples()[0]) + "\n")
    for args, message in ((["one.jsonl", "--test-share", "1.5"], "--test-share"),
                          (["one.jsonl"], "at least two tasks"),
                          (["missing.jsonl"], "no such file")):
        result = cli("split", *args, "--out", "s")
        assert result.status == 2 and message in result.err, result.err
