"""Time of `synthgen eval passkey`, before and after documents are cut to the model's window and
embedded once, and its embedding step against a bare SentenceTransformer.encode.

One run, on one passkey benchmark (all-MiniLM-L6-v2, offline):
- whole processes `synthgen eval passkey DIR` of a baseline revision (extracted with `git archive`,
  as bench/startup.py does) and of this checkout, wall and CPU time, and their accuracies (the same);
- in one process holding the model once and every document's text read once, the embedding step of
  this checkout (cut each document to the window, embed each distinct input: evaluate.DistinctInputs)
  and a bare `model.encode` over the distinct inputs that step embeds, taking turns (best of
  --repeats, by CPU time), and a bare `model.encode` over every document whole, as a naive loop pays it.
It prints a table and rewrites the "Passkey eval speed" section of bench/RESULTS.md.

    HF_HUB_OFFLINE=1 python bench/passkey_speed.py --baseline 0e31ff8
    HF_HUB_OFFLINE=1 python bench/passkey_speed.py --baseline 0e31ff8 --queries 20   # 12,000 documents
"""

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from run import machine, run, table, write_sections  # bench/run.py: the machine line, processes, RESULTS.md
from startup import extract, git  # bench/startup.py: a revision's synthgen package

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SECTION = "Passkey eval speed"
LENGTHS = "256,512,1024,2048,4096,8192"

EMBEDDING_STEP = r'''
import json, sys, time
from pathlib import Path
from synthgen import beir
from synthgen.embedders import SentenceTransformerEmbedder
from synthgen.evaluate import CHUNK, DistinctInputs, passkey_folders

folder, repeats = Path(sys.argv[1]), int(sys.argv[2])
embedder = SentenceTransformerEmbedder(None)
model = embedder.model

def timed(fn):
    started = time.monotonic(); cpu = time.process_time()
    value = fn()
    return [time.monotonic() - started, time.process_time() - cpu], value

# Every document's text, read once: the bare encode and the step get the very same texts.
read, texts = timed(lambda: [doc.text for _, sub in passkey_folders(folder) for doc in beir.corpus(sub)])

def ours():  # what eval passkey does with them: cut, each distinct input embedded once
    inputs = DistinctInputs(embedder)
    for start in range(0, len(texts), CHUNK):
        inputs.add(texts[start:start + CHUNK])
    return inputs.matrix()

ours()  # warm-up
distinct = list(dict.fromkeys(embedder.model_inputs(texts)))
runs = {"ours": [], "bare_distinct": []}
for _ in range(repeats):
    runs["ours"].append(timed(ours)[0])
    runs["bare_distinct"].append(timed(lambda: model.encode(distinct, batch_size=32))[0])
bare_all = timed(lambda: model.encode(texts, batch_size=32))[0]
print(json.dumps({"documents": len(texts), "distinct": len(distinct), "read": read, "runs": runs,
                  "bare_all": bare_all, "max_seq_length": model.max_seq_length}))
'''


def synthgen_run(source: Path, args: list, work: Path) -> tuple[float, float, dict]:
    env = {**os.environ, "PYTHONPATH": str(source), "HF_HUB_OFFLINE": "1"}
    done = run([sys.executable, "-m", "synthgen", *map(str, args)], work, env=env, timeout=4 * 3600)
    if done.status != 0:
        sys.exit(f"synthgen {' '.join(map(str, args))} failed:\n{done.out[-3000:]}")
    lines = done.out.splitlines()  # stderr's lines come first: the report is what follows its "{"
    return done.wall, done.cpu, json.loads("\n".join(lines[lines.index("{"):]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, metavar="REV", help="the revision to compare with")
    parser.add_argument("--lengths", default=LENGTHS)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="turns of the embedding step and its bare encode")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    rev = git("rev-parse", "--short", args.baseline)
    head = git("rev-parse", "--short", "HEAD")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        before_source = extract(rev, work / "baseline")
        bench = work / "passkey"
        made = run([sys.executable, "-m", "synthgen", "passkey", "--lengths", args.lengths, "--queries",
                    str(args.queries), "--candidates", str(args.candidates), "--seed", "0", "--out", str(bench), "-q"],
                   work, env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})
        assert made.status == 0, made.out
        evaluate = ["eval", "passkey", bench, "--json", "--no-plot", "-q"]
        load_before = os.getloadavg()[0]
        before = synthgen_run(before_source, evaluate, work)
        print(f"before ({rev}): {before[0]:.0f} s wall, {before[1]:.0f} s CPU", flush=True)
        after = synthgen_run(ROOT, evaluate, work)
        print(f"after ({head}): {after[0]:.0f} s wall, {after[1]:.0f} s CPU", flush=True)
        step = run([sys.executable, "-c", EMBEDDING_STEP, str(bench), str(args.repeats)], work,
                   env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}, timeout=4 * 3600)
        assert step.status == 0, step.out
        figures = json.loads(step.out.strip().splitlines()[-1])
        load_after = os.getloadavg()[0]
    accuracy = lambda result: {r["length"]: r["accuracy"] for r in result["lengths"]}  # noqa: E731
    same = accuracy(before[2]) == accuracy(after[2])
    # Best of the turns, by CPU (steadier than wall time on shared cores); wall time of the same turn.
    ours = min(figures["runs"]["ours"], key=lambda t: t[1])
    bare = min(figures["runs"]["bare_distinct"], key=lambda t: t[1])
    documents = figures["documents"]
    rows = [
        [f"synthgen eval passkey, before ({rev})", "whole process", f"{before[0]:,.0f}", f"{before[1]:,.0f}", "1.00"],
        [f"synthgen eval passkey, after ({head})", "whole process", f"{after[0]:,.0f}", f"{after[1]:,.0f}",
         f"{after[0] / before[0]:.2f}"],
        ["read every document (both below start from these texts)", "once", f"{figures['read'][0]:,.1f}",
         f"{figures['read'][1]:,.1f}", ""],
        ["embedding step, after: cut, embed each distinct input once", "best of turns", f"{ours[0]:,.1f}",
         f"{ours[1]:,.1f}", ""],
        [f"bare model.encode over the {figures['distinct']:,} distinct inputs it embeds", "best of turns",
         f"{bare[0]:,.1f}", f"{bare[1]:,.1f}", ""],
        [f"bare model.encode over all {documents:,} documents whole", "once", f"{figures['bare_all'][0]:,.0f}",
         f"{figures['bare_all'][1]:,.0f}", ""],
    ]
    text = table(["what", "runs", "wall s", "CPU s", "vs before"], rows)
    text += (
        f"\n\nThe embedding step takes **{ours[1] / bare[1]:.2f}x** the CPU time of a bare encode of the same "
        f"inputs ({ours[0] / bare[0]:.2f}x the wall time), and **{ours[1] / figures['bare_all'][1]:.2f}x** the CPU of a "
        f"bare encode of every document whole ({ours[0] / figures['bare_all'][0]:.2f}x the wall time); turns taken "
        f"one after the other in one process, best of {args.repeats} by CPU. All-MiniLM-L6-v2 (max_seq_length {figures['max_seq_length']}); "
        f"`synthgen passkey --lengths {args.lengths} --queries {args.queries} --candidates {args.candidates} "
        f"--seed 0`: {documents:,} documents, {figures['distinct']:,} distinct inputs once each is cut to the "
        f"model's window (a document whose passkey sentence lies past the window reads as the filler every such "
        f"document shares). Accuracy per length {'the same' if same else 'DIFFERENT'} before and after: "
        f"{json.dumps(accuracy(after[2]))}. Before, each document was tokenised whole and embedded on its own; "
        f"the issue's figure was 1,355 s for 12,000 documents (--queries 20). Load average "
        f"{load_before:.1f} before and {load_after:.1f} after: other jobs share the 2 cores, so compare ratios "
        f"within this run. `HF_HUB_OFFLINE=1 python bench/passkey_speed.py {' '.join(sys.argv[1:])}`."
    )
    print(text)
    if not args.no_write:
        write_sections({SECTION: f"{datetime.date.today().isoformat()}, {machine()}\n\n{text}"})


if __name__ == "__main__":
    main()
