"""Kill generate with SIGKILL at random moments, resume each time, and count what was paid twice.

    python bench/crash.py [--n 5000] [--kills 8] [--concurrency 64] [--seed 1]

Against bench/server.py with 50 ms latency. After the last resume it checks the output (exactly N
valid examples, no repeated index) and prints the requests the server saw beyond N + rejections,
against the bound of kills x concurrency (the requests in flight at each kill).
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, str(HERE / "server.py"), "--latency", "0.05"],
                              stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline().split()[1])  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/v1"
    rng = random.Random(args.seed)
    try:
        with tempfile.TemporaryDirectory() as work:
            command = [sys.executable, "-m", "synthgen", "generate", "--n", str(args.n), "--kinds", "sts=1,bitext=1",
                       "--concurrency", str(args.concurrency), "--base-url", url, "-q"]
            kills = 0
            for _ in range(args.kills):
                proc = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.5, 3.0))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
                proc.wait()
            final = subprocess.run(command, cwd=work, capture_output=True, text=True)
            assert final.returncode == 0, final.stderr
            examples = [json.loads(line) for line in open(os.path.join(work, "data/raw/examples.jsonl"))]
            rejects = sum(1 for _ in open(os.path.join(work, "data/raw/rejects.jsonl")))
            indices = {e["index"] for e in examples}
            assert len(examples) == args.n == len(indices), (len(examples), len(indices))
            sent = requests(port)
            extra = sent - args.n - rejects
            print(f"N {args.n}, concurrency {args.concurrency}, {kills} kills: the server saw {sent} requests for "
                  f"{args.n} valid + {rejects} rejected; {extra} sent again after kills "
                  f"(bound: {kills} x {args.concurrency} = {kills * args.concurrency}); "
                  f"{extra / max(kills, 1):.1f} per kill on average")
    finally:
        server.terminate()


def requests(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
        return json.load(response)["requests"]


if __name__ == "__main__":
    main()
