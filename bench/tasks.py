"""Task diversity: brainstorming 10,000 tasks on the loopback server, and the embedded model's yield.

    python bench/tasks.py [--quick] [--skip-local]

Loopback (bench/server.py, 100 ms a request): `synthgen brainstorm --n-tasks 10000` against a
server that never repeats itself, one that draws its tasks from a pool of 15,000 (so repeats grow
as the file fills), and one with a pool of 5,000 (less than asked: the floor must stop it).
Embedded model: a few rounds of the same prompt with the variation off (one topic, one persona, no
tasks shown) and on (the shipped settings), their yield, diversity and what they repeat.
"""

import argparse
import asyncio
import datetime
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from run import Server, machine, run, synthgen, table, write_sections  # noqa: E402

WANTED = 10_000
CONCURRENCY = 64
LATENCY = 0.1


def loopback(work: Path, wanted: int) -> list[list[str]]:
    rows = []
    for pool in (0, int(wanted * 1.5), wanted // 2):
        server = Server(LATENCY, task_pool=pool)
        try:
            out = work / f"tasks-{pool}.jsonl"
            result = run(synthgen("brainstorm", "--subtype", "short-long", "--n-tasks", wanted, "--out", out,
                                  "--concurrency", CONCURRENCY, "--base-url", server.url, "--model", "m", "-q"), work)
            requests = len(server.arrivals())
        finally:
            server.stop()
        assert result.status == 0, result.out
        kept = sum(1 for line in out.read_text().splitlines() if line.strip())
        ideal = -(-requests // CONCURRENCY) * LATENCY
        rows.append([
            "never" if not pool else f"{pool:,}",
            f"{kept:,}", f"{requests:,}", f"{kept / (20 * requests):.1%}", f"{result.wall:.1f}", f"{ideal:.1f}",
            "yes" if "stopped short" in result.out else "no",
        ])
        print(rows[-1], flush=True)
    return rows


def generate_run(work: Path, n: int) -> str:
    """generate --n n on a fresh folder: distinct tasks used, examples per task, repeated prompts."""
    server = Server(0.02)
    try:
        result = run(synthgen("generate", "--n", n, "--out", work / "raw", "--tasks", work / "tasks",
                              "--concurrency", 256, "--base-url", server.url, "--model", "m", "-q"), work)
    finally:
        server.stop()
    assert result.status == 0, result.out
    manifest = json.loads((work / "raw" / "manifest.json").read_text())
    prompts: set[str] = set()
    repeats = {"asymmetric": 0, "symmetric": 0}
    totals = {"asymmetric": 0, "symmetric": 0}
    with open(work / "raw" / "examples.jsonl") as f:
        for line in f:
            example = json.loads(line)
            family = "asymmetric" if example["kind"] in manifest["tasks"] else "symmetric"
            # A request's body is its template and placeholders: the same placeholders, the same prompt.
            prompt = json.dumps([example["kind"], example["placeholders"]], sort_keys=True)
            totals[family] += 1
            repeats[family] += prompt in prompts
            prompts.add(prompt)
    total = sum(totals.values())
    rows = []
    for kind, figures in manifest["tasks"].items():
        uses = figures["examples_per_task"]
        rows.append([kind, f"{manifest['per_kind'].get(kind, 0):,}", f"{figures['needed']:,}", f"{uses['used']:,}",
                     f"{uses['min']} / {uses['median']:g} / {uses['max']}", str(figures["jaccard_distance"])])
    brainstorm = manifest["brainstorm"]
    text = table(["kind", "examples", "tasks needed", "tasks used", "examples per task min / median / max",
                  "jaccard distance"], rows)
    return text + (f"\n\n`synthgen generate --n {n:,} --concurrency 256` on a fresh folder against bench/server.py "
                   f"(20 ms, never repeating a task): {len(prompts):,} distinct prompts of {total:,}. Repeats of "
                   f"an earlier prompt: {repeats['asymmetric']:,} of the {totals['asymmetric']:,} asymmetric "
                   f"examples, {repeats['symmetric']:,} of the {totals['symmetric']:,} sts and bitext ones (one fixed "
                   f"task and {{unit, scores, difficulty, languages}}: few distinct prompts, by the paper's design). "
                   f"Brainstorming took {brainstorm['http_requests']:,} requests; the whole run {result.wall:.0f} s.")


def near_pairs(tasks: list[str], threshold: float = 0.5, limit: int = 3) -> list[tuple[float, str, str]]:
    """The kept tasks most alike by word-Jaccard: what task_key does not catch."""
    from synthgen.store import task_key

    sets = [set(task_key(t).split()) for t in tasks]
    pairs = []
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            similarity = len(sets[i] & sets[j]) / (len(sets[i] | sets[j]) or 1)
            if similarity >= threshold:
                pairs.append((similarity, tasks[i], tasks[j]))
    return sorted(pairs, reverse=True)[:limit]


def local(work: Path, rounds: int) -> str:
    from synthgen.brainstorm import brainstorm_subtypes
    from synthgen.config import load_config
    from synthgen.tasks import diversity

    settings = {
        "variation off": {"shown_tasks": 0, "topics": {"any subject": 1}, "personas": ["anyone"]},
        "variation on (shipped)": {},
    }
    rows, notes = [], []
    for label, brainstorm in settings.items():
        config = load_config(overrides={"llm": {"backend": "local"}, "brainstorm": brainstorm,
                                        "generate": {"concurrency": 4}})
        out = work / f"local-{len(rows)}.jsonl"
        result = asyncio.run(brainstorm_subtypes(config, ["short-long"], rounds, out, show_progress=False))[0]
        tasks = [json.loads(line)["task"] for line in out.read_text().splitlines() if line.strip()]
        figures = diversity(tasks)
        rows.append([label, str(len(result.new_by_round)), str(result.asked), str(result.added),
                     f"{result.yield_:.1%}" if result.yield_ is not None else "-", str(result.repeated),
                     str(figures["jaccard_distance"]), str(figures["distinct_2"])])
        print(rows[-1], flush=True)
        repeats = "; ".join(f'"{t}"' for t in result.repeats[:3]) or "none"
        near = "; ".join(f'"{a}" / "{b}" ({s:.2f})' for s, a, b in near_pairs(tasks)) or "none"
        notes.append(f"- {label}: repeated word for word (after case and punctuation): {repeats}. "
                     f"Kept but alike (word-Jaccard >= 0.5, left to curate): {near}.")
    text = table(["prompt", "rounds", "tasks asked", "new distinct", "yield", "repeats dropped",
                  "jaccard distance", "distinct-2"], rows)
    return text + "\n\n" + "\n".join(notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 tasks and 4 local rounds, to check that it works")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the embedded model per setting")
    args = parser.parse_args()
    wanted = 1_000 if args.quick else WANTED
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        rows = loopback(work, wanted)
        text = table(["server repeats from a pool of", "tasks kept", "requests", "yield", "wall s",
                      f"ideal s ({CONCURRENCY} in flight)", "stopped at the floor"], rows)
        text += (f"\n\n`synthgen brainstorm --subtype short-long --n-tasks {wanted:,} --concurrency {CONCURRENCY}` "
                 f"against bench/server.py ({LATENCY * 1000:.0f} ms a request, 20 tasks an answer); requests as the "
                 "server counted them; yield = tasks kept / tasks asked for; ideal = requests in waves of "
                 f"{CONCURRENCY} x the latency. `python bench/tasks.py`.")
        text += "\n\n" + generate_run(work, 20_000 if args.quick else 200_000)
        sections = {"Task diversity": f"{stamp}\n\n{text}"}
        print(text, flush=True)
        if not args.skip_local:
            rounds = 4 if args.quick else args.rounds
            text = (f"Qwen2.5-Coder-1.5B Q4_K_M on the CPU, short-long, {rounds} rounds of 20 tasks each "
                    "(`python bench/tasks.py --rounds N`):\n\n" + local(work, rounds))
            sections["Task diversity, embedded model"] = f"{stamp}\n\n{text}"
            print(text)
    write_sections(sections)


if __name__ == "__main__":
    main()
