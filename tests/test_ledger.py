"""The ledger on its own: totals from the files, grown by each record, and a manifest round trip."""

from synthgen.ledger import Ledger, ManifestWriter
from synthgen.llm import Usage as ClientUsage
from synthgen.store import Example, Manifest, Reject, RunFolder, Usage


def test_a_manifest_round_trips_with_totals_from_the_records(tmp_path):
    run = RunFolder(tmp_path)
    with run.example_writer() as w:
        w.write(Example(id="r-0", index=0, kind="sts", task="t", language="English", query="a", positive="b",
                        negative="c", placeholders={}, raw={}, model="m", seed=1, usage=Usage(2, 1, 10, 20)))
    run.write_manifest(Manifest(wall_seconds=5.0, sessions=1, cooldown_seconds=1.0))
    header = Manifest(fingerprint="abc", n=3, request_cap=20, seed=1, config={"x": 1})
    ledger = Ledger(run.read_state(), header)
    ledger.add_example(Example(id="r-1", index=1, kind="sts", task="t", language="English", query="d",
                               positive="e", negative="f", placeholders={}, raw={}, model="m", seed=1,
                               usage=Usage(1, 0, 10, 20)))
    ledger.add_reject(Reject(index=2, kind="bitext", reason="schema", detail="", model="m", seed=1,
                             usage=Usage(1, 0, 3, 4)))
    client = ClientUsage(cooldown_seconds=0.5, structured_output={"sts": "json_object"})
    manifest = ledger.manifest("complete", None, client)
    writer = ManifestWriter(run)
    writer.write(manifest)
    writer.write(ledger.manifest("running", None, client))  # a late periodic write loses to the final one
    back = run.read_manifest()
    assert back == manifest and back.status == "complete"
    assert (back.valid, back.rejected_total, back.requests) == (2, 1, 3)
    assert back.per_kind == {"sts": 2} and back.rejected == {"schema": 1}
    assert (back.http_requests, back.retries, back.prompt_tokens, back.completion_tokens) == (4, 1, 23, 44)
    assert back.sessions == 2 and back.cooldown_seconds == 1.5 and back.wall_seconds >= 5.0
    assert back.fingerprint == "abc" and back.structured_output == {"sts": "json_object"}
