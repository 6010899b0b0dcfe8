"""The dry run's estimate against the tokens the run then used, on the loopback server.

    python bench/cost.py            # N 10,000 (about 5 minutes on 2 cores)
    python bench/cost.py --quick    # N 2,000

Run it in the environment synthgen is installed in, with the cost extra (tiktoken); the local
extra adds the row of a model whose tokenizer synthgen does not know. Each row: a fresh folder,
`synthgen generate --dry-run --json`, then the same command without --dry-run against
bench/server.py, whose usage counts prompt tokens as the model's real server would:

- gpt-4: the server counts as OpenAI bills gpt-4 (cl100k_base and the chat framing); the run
  brainstorms its tasks first, so the dry run counts stand-ins for them;
- gpt-4, resumed: after that run, a dry run and a run of twice the N on the same folder (what is
  left, with the completion tokens measured by the first run);
- Qwen2.5 through an endpoint (the tasks of the first row there already): the server counts with
  the embedded model's own vocabulary and chat template (as vLLM serving it would), and synthgen,
  which does not know the model's tokenizer, estimates with cl100k_base as a stand-in.

It also times the dry run of the paper's 500,000 examples. Figures: bench/RESULTS.md, "Dry run".
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Server, run, synthgen, table, write_sections  # noqa: E402

LATENCY = 0.02
STAMP = "2026-11-29, 2 cores (shared with other jobs)"


def llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def estimate_and_run(work: Path, server: Server, n: int, out: str, model: str, before: dict) -> dict:
    """The dry run's totals, and what the run used beyond `before` (an earlier run's manifest totals)."""
    args = ["generate", "--n", n, "--out", out, "--base-url", server.url, "--model", model, "--concurrency", 64]
    dry = run(synthgen(*args, "--dry-run", "--json"), work)
    assert dry.status == 0, dry.out
    report = json.loads(dry.out[dry.out.index("{"):])
    live = run(synthgen(*args, "-q"), work)
    assert live.status == 0, live.out
    manifest = json.loads((work / out / "manifest.json").read_text())
    brainstorm = manifest.get("brainstorm") or {}
    used = {
        "requests": manifest["requests"] + brainstorm.get("http_requests", 0) - before.get("requests", 0),
        "prompt_tokens": manifest["prompt_tokens"] + brainstorm.get("prompt_tokens", 0) - before.get("prompt_tokens", 0),
        "completion_tokens": (manifest["completion_tokens"] + brainstorm.get("completion_tokens", 0)
                              - before.get("completion_tokens", 0)),
    }
    return {"estimate": report, "used": used, "dry_seconds": dry.wall, "totals": {
        "requests": manifest["requests"] + brainstorm.get("http_requests", 0),
        "prompt_tokens": manifest["prompt_tokens"] + brainstorm.get("prompt_tokens", 0),
        "completion_tokens": manifest["completion_tokens"] + brainstorm.get("completion_tokens", 0)}}


def row(name: str, result: dict) -> list[str]:
    estimate, used = result["estimate"], result["used"]
    total = estimate["total"]
    basis = sorted({line["completion_from"] for line in estimate["lines"]})

    def error(guess: int, real: int) -> str:
        return f"{(guess - real) / real:+.1%}" if real else "-"

    return [name, estimate["tokens"]["tokenizer"], f"{total['requests']:,} / {used['requests']:,}",
            f"{total['prompt_tokens']:,}", f"{used['prompt_tokens']:,}", error(total["prompt_tokens"], used["prompt_tokens"]),
            f"{total['completion_tokens']:,} ({', '.join(basis)})", f"{used['completion_tokens']:,}",
            error(total["completion_tokens"], used["completion_tokens"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N 2,000 instead of 10,000")
    args = parser.parse_args()
    n = 2_000 if args.quick else 10_000
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        server = Server(LATENCY, count_prompt="cl100k")
        try:
            fresh = estimate_and_run(work, server, n, "gpt4", "gpt-4", {})
            rows.append(row(f"gpt-4, N {n:,}, tasks brainstormed first", fresh))
            resumed = estimate_and_run(work, server, 2 * n, "gpt4", "gpt-4", fresh["totals"])
            rows.append(row(f"gpt-4, the same folder resumed to N {2 * n:,}", resumed))
        finally:
            server.stop()
        if llama_cpp_installed():
            server = Server(LATENCY, count_prompt="gguf")
            try:
                qwen = estimate_and_run(work, server, n, "qwen", "Qwen/Qwen2.5-7B-Instruct", {})
                rows.append(row(f"Qwen2.5 (served), N {n:,}, tasks there", qwen))
            finally:
                server.stop()
        big = run(synthgen("generate", "--n", 500_000, "--dry-run", "--base-url", "http://127.0.0.1:9/v1",
                           "--out", "paper"), work)
        assert big.status == 0, big.out
    text = table(["run", "prompt tokens counted with", "requests: estimate / used", "prompt tokens: estimate",
                  "used", "error", "completion tokens: estimate (from)", "used", "error"], rows)
    text += (f"\n\nEach row: `synthgen generate --n N --dry-run --json` on a fresh folder, then the same command "
             "without --dry-run against bench/server.py (latency 20 ms, concurrency 64), whose usage counts prompt "
             "tokens as the model's real server would: gpt-4 as OpenAI bills it (cl100k_base and the chat framing), "
             "Qwen2.5 with the embedded model's own vocabulary and chat template (as vLLM serving it would). Used = "
             "the manifest's generation and brainstorm tokens (the resumed row: the second session's alone). The "
             "first dry run counts each task still to brainstorm as a typical task sentence, and completion tokens "
             "at each kind's cap (max_tokens), an upper bound; the resumed one counts the completion tokens at "
             "the first session's measured mean. The server's answers are about 4 tokens a word of filler, far "
             "under the caps, which is why a cap is only a bound. The stand-in row's shortfall is mostly the chat "
             "template: the stand-in adds OpenAI's framing (7 tokens) to each prompt, Qwen's template a system turn "
             "of about 25 tokens more.\n\n"
             f"The dry run of the paper's 500,000 examples (gpt-4o-mini, 505,834 requests with the brainstorm, "
             f"20,000 prompts counted one by one and the rest scaled kind by kind): {big.wall:.1f} s wall, "
             f"{big.cpu:.1f} s CPU, {big.peak_mb:,.0f} MB.\n\nCommand: `python bench/cost.py"
             + (" --quick`" if args.quick else "`"))
    print(text)
    write_sections({"Dry run": f"{STAMP}\n\n{text}"})


if __name__ == "__main__":
    main()
