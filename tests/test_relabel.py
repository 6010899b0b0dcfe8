"""Relabelling against the fake OpenAI-compatible server over real HTTP: the fake grades 3 a document
holding the word MARKER and 1 any other, so which document wins is known in advance."""

import asyncio
import json
import re
import threading
import time

import pytest

from fake_llm import chat_body, error_body
from synthgen.config import load_config
from synthgen.curate.relabel import (
    ALONE,
    CAPPED,
    DROPPED,
    KEPT,
    RELABELLED,
    UNJUDGED,
    Candidate,
    candidate_documents,
    judged_example,
    open_judge,
    relabel,
    relabel_candidates,
    shown_order,
)
from synthgen.errors import RunStopped
from synthgen.store import RELABEL_NAME, Example, read_judgements

SHOWN = re.compile(r"^\[(\d+)\] (.*)$", re.MULTILINE)


def shown_documents(body: dict) -> list[str]:
    return [text for _, text in SHOWN.findall(body["messages"][-1]["content"])]


def grade(body: dict) -> tuple[int, dict, dict]:
    return answer([3 if "MARKER" in text else 1 for text in shown_documents(body)])(body)


def answer(grades: list[int]):
    return lambda body: (200, {}, chat_body(json.dumps({"grades": grades})))


def config_for(llm, concurrency: int = 4, **relabel_settings):
    return load_config(None, {}, {
        "llm": {"base_url": llm.base_url, "model": "fake-model", "max_attempts": 1},
        "generate": {"concurrency": concurrency},
        "curate": {"relabel": relabel_settings},
    })


def candidate(row: int, positive: str, others: list[str]) -> Candidate:
    return Candidate(row=row, id=f"run-{row}", task="Find passages that answer a question.",
                     query=f"question {row}", positive=positive, documents=candidate_documents(positive, others, 4))


def run(candidates, config, ledger, show_progress=False):
    async def go():
        backend = open_judge(config)
        try:
            return await relabel(candidates, config, backend.client, ledger, show_progress)
        finally:
            await backend.client.aclose()

    return asyncio.run(go())


@pytest.fixture
def ledger(tmp_path):
    return tmp_path / "out" / RELABEL_NAME


def mixed() -> list[Candidate]:
    """Row 0: another document is better. Row 1: the positive is best. Row 2: a tie."""
    return [
        candidate(0, "plain positive 0", ["plain a0", "the MARKER answer 0", "plain b0", "plain c0"]),
        candidate(1, "the MARKER positive 1", ["plain a1", "plain b1", "plain c1", "plain d1"]),
        candidate(2, "the MARKER positive 2", ["the MARKER twin 2", "plain a2", "plain b2"]),
    ]


def test_candidate_documents_always_hold_the_positive():
    assert candidate_documents("p", ["a", "p", "b", "c", "d"], 4) == ["a", "p", "b", "c"]
    assert candidate_documents("p", ["a", "b", "c", "d", "p"], 4) == ["a", "b", "c", "p"]
    assert candidate_documents("p", ["a", "a", "b"], 4) == ["a", "b", "p"]
    assert candidate_documents("p", [], 4) == ["p"]


def test_an_example_alone_in_its_kind_is_kept_unjudged_without_a_request(ledger):
    # No endpoint configured: nothing to ask, so no backend is opened (no model loaded).
    alone = Candidate(row=0, id="run-0", task="t", query="q", positive="p", documents=["p"])
    result = relabel_candidates([alone], load_config(None, {}, {}), ledger, show_progress=False)
    assert result.judgements[0].verdict == UNJUDGED and result.judgements[0].reason == ALONE
    assert result.asked == 0 and not ledger.exists()


def test_a_better_document_relabels_the_positive_best_kept_tie_kept(llm, ledger):
    llm.default = grade
    result = run(mixed(), config_for(llm), ledger)
    judgements = result.judgements
    assert [judgements[row].verdict for row in range(3)] == [RELABELLED, KEPT, KEPT]
    first = judgements[0]
    # Indices are into the candidate's documents (retrieval order), whatever order the LLM saw.
    assert first.best == 1 and first.positive_index == 3 and first.grades == [1, 3, 1, 1]
    assert judgements[1].best == judgements[1].positive_index == 3
    assert judgements[2].grades == [3, 1, 1, 3] and judgements[2].best == 3  # the twin is no better: kept
    assert len(llm.requests) == result.asked == 3 and result.counts() == {KEPT: 2, RELABELLED: 1, DROPPED: 0,
                                                                        UNJUDGED: 0}
    assert result.usage["http_requests"] == 3 and result.model == "fake-model"
    body = llm.requests[0]
    assert body["temperature"] == 0 and body["max_tokens"] == 256
    assert body["response_format"]["json_schema"]["schema"]["properties"]["grades"]["maxItems"] == 4
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == ["run-0", "run-1", "run-2"]

    example = Example(id="run-0", kind="short-long", task="t", language="English", query="question 0",
                      positive="plain positive 0", negative="generated negative", placeholders={}, raw={},
                      model="m", seed=1)
    relabelled = judged_example(example, mixed()[0], first)
    assert relabelled.positive == "the MARKER answer 0" and relabelled.negative == "plain positive 0"
    assert relabelled.negatives == ["generated negative"]
    assert relabelled.curation is not None and relabelled.curation["relabel"]["grades"] == [1, 3, 1, 1]


def test_the_order_shown_does_not_give_the_positive_away(llm, ledger):
    llm.default = grade
    candidates = [candidate(row, f"positive {row}", [f"other {row} {i}" for i in range(3)]) for row in range(40)]
    run(candidates, config_for(llm), ledger)
    rows = [re.search(r"Query: question (\d+)", body["messages"][-1]["content"]).group(1) for body in llm.requests]
    places = [shown_documents(body).index(f"positive {row}") for body, row in zip(llm.requests, rows)]
    assert set(places) == {0, 1, 2, 3}  # the positive is last in every candidate's list, not in the prompt
    assert shown_order("run-7", 4) == shown_order("run-7", 4) != shown_order("run-7", 4, attempt=1)


def test_drop_action_and_a_rerun_asks_nothing_and_follows_todays_action(llm, ledger):
    llm.default = grade
    first = run(mixed(), config_for(llm, action="drop"), ledger)
    assert first.judgements[0].verdict == DROPPED
    sent = len(llm.requests)
    again = run(mixed(), config_for(llm, action="relabel"), ledger)
    assert len(llm.requests) == sent  # no request paid twice
    assert again.reused == 3 and again.asked == 0 and again.judgements[0].verdict == RELABELLED
    assert again.judgements[0].grades == first.judgements[0].grades

    # The sync entry point opens no backend when the ledger holds everything.
    assert relabel_candidates(mixed(), config_for(llm), ledger, show_progress=False).reused == 3
    assert len(llm.requests) == sent

    # A changed candidate is judged again, and only it.
    changed = mixed()
    changed[1].documents[1] = "plain b1, edited"
    third = run(changed, config_for(llm), ledger)
    assert len(llm.requests) == sent + 1 and third.reused == 2 and third.asked == 1


def test_a_torn_last_ledger_line_is_cut_and_its_example_asked_again(llm, ledger):
    llm.default = grade
    run(mixed(), config_for(llm, concurrency=1), ledger)
    data = ledger.read_bytes()
    ledger.write_bytes(data[:-25])  # a kill in the middle of the last line
    sent = len(llm.requests)
    result = run(mixed(), config_for(llm), ledger)
    assert len(llm.requests) == sent + 1 and result.reused == 2
    lines = ledger.read_bytes().splitlines()
    assert len(lines) == 3 and all(json.loads(line) for line in lines)
    assert len(read_judgements(ledger)) == 3


def test_a_bad_answer_is_asked_again_then_left_unjudged_and_kept(llm, ledger):
    # Row 0: not JSON, then a good answer. Row 1: three grades for four documents, then a grade out of
    # 0 to 3: unjudged after the two attempts. Concurrency 1 keeps the script in order.
    llm.then("bad_json", answer([1, 3, 1]), grade, answer([1, 5, 1, 1]))
    candidates = [candidate(0, "plain positive 0", ["the MARKER answer", "x", "y"]),
                  candidate(1, "plain positive 1", ["a", "b", "c"])]
    result = run(candidates, config_for(llm, concurrency=1), ledger)
    assert len(llm.requests) == result.asked == 4
    assert result.judgements[0].verdict == RELABELLED
    assert result.judgements[0].usage is not None and result.judgements[0].usage.http_requests == 2
    unjudged = result.judgements[1]
    assert unjudged.verdict == UNJUDGED and unjudged.reason == "schema" and unjudged.detail.startswith("grades.1: ")
    assert dict(result.rejected) == {"invalid_json": 1, "schema": 2}
    # A repeated question shows the documents in another order.
    assert shown_documents(llm.requests[1]) != shown_documents(llm.requests[3])
    assert list(read_judgements(ledger)) == [("run-0", result.judgements[0].digest)]  # unjudged: not in the ledger
    llm.default = grade
    again = run(candidates, config_for(llm), ledger)
    assert again.asked == 1 and again.judgements[1].verdict == KEPT


def test_the_request_cap_leaves_the_rest_unjudged(llm, ledger):
    llm.default = "wrong_schema"
    candidates = [candidate(row, f"p{row}", ["a", "b"]) for row in range(30)]
    result = run(candidates, config_for(llm, attempts=10), ledger)
    # request_cap(30, 1.5) = 55 answers, then every example is kept unjudged.
    assert result.asked == len(llm.requests) == 55
    assert result.counts()[UNJUDGED] == 30
    assert {j.reason for j in result.judgements.values()} <= {"schema", CAPPED}


def test_a_refused_key_stops_and_keeps_the_judgements_made(llm, ledger):
    llm.then(grade, grade, {"status": 401, "body": error_body("Incorrect API key provided")})
    with pytest.raises(RunStopped, match="refused the API key.*2 judgements so far are kept"):
        run(mixed(), config_for(llm, concurrency=1), ledger)
    assert len(read_judgements(ledger)) == 2
    llm.default = grade
    result = run(mixed(), config_for(llm), ledger)
    assert result.reused == 2 and result.asked == 1


def test_concurrency_is_honoured(llm, ledger):
    lock = threading.Lock()
    flight = {"now": 0, "most": 0}

    def slow(body):
        with lock:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])
        time.sleep(0.1)
        with lock:
            flight["now"] -= 1
        return grade(body)

    llm.default = slow
    candidates = [candidate(row, f"positive {row}", ["a MARKER", "b"]) for row in range(12)]
    started = time.monotonic()
    result = run(candidates, config_for(llm, concurrency=3), ledger)
    seconds = time.monotonic() - started
    assert flight["most"] == 3 and result.counts()[RELABELLED] == 12
    assert seconds >= 0.4  # 12 answers of 0.1 s, 3 at a time
