"""The Batch API path at scale: `synthgen generate --batch` of 20,000 requests against the loopback
Batch API of the tests (tests/fake_batch.py), against a live run of the same N on bench/server.py.

    python bench/batch.py            # N 20,000 (a few minutes on 2 cores)
    python bench/batch.py --quick    # N 2,000

What is measured is the client: its wall time, CPU (user + sys) and peak memory, from the kernel's
accounting of the synthgen process (bench/run.py's run()). The batch run plans and renders every
request, writes and uploads the file, polls (every second here; the fake runs a batch between two
polls), downloads the output and records every answer through the live path's validation. A first
`generate --write-requests` run, not measured as part of the batch run, brainstorms the tasks the
plan needs (so that both measured runs send only generation requests) and times writing the
requests alone. Rewrites the "Batch API" section of bench/RESULTS.md.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import Server, machine, run, synthgen, table, write_sections  # noqa: E402

HERE = Path(__file__).resolve().parent
FAKE_BATCH = HERE.parent / "tests" / "fake_batch.py"
POLL_SECONDS = 0.5


class BatchServer:
    """tests/fake_batch.py in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(FAKE_BATCH)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{int(line.split()[1])}/v1"

    def times(self) -> dict:
        """When each batch was made and when it ended (the fake's clock: this machine's)."""
        with urllib.request.urlopen(self.url.removesuffix("/v1") + "/stats") as response:
            return json.load(response)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N 2,000, to check that it works")
    args = parser.parse_args()
    n = 2000 if args.quick else 20000
    stamp = f"{datetime.date.today().isoformat()}, {machine()}" + (" (--quick)" if args.quick else "")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "batch.toml").write_text(f"[batch]\npoll_seconds = {POLL_SECONDS}\n")
        common = ["--n", n, "--model", "bench-model", "--config", "batch.toml", "-q"]
        server = BatchServer()
        try:
            written = run(synthgen("generate", *common, "--base-url", server.url, "--out", "out-files",
                                   "--write-requests", "requests.jsonl"), work)
            assert written.status == 0, written.out
            write_only = run(synthgen("generate", *common, "--out", "out-files2", "--write-requests", "again.jsonl"),
                             work)
            assert write_only.status == 0, write_only.out
            load = os.getloadavg()[0]
            began = time.time()
            batch = run(synthgen("generate", *common, "--batch", "--base-url", server.url, "--out", "out-batch"), work)
            ended = time.time()
            assert batch.status == 0, batch.out
            (times,) = server.times().values()
            load = max(load, os.getloadavg()[0])
        finally:
            server.stop()
        sending, collecting = times["created"] - began, ended - times["finished"]
        manifest = json.loads((work / "out-batch" / "manifest.json").read_text())
        assert manifest["valid"] == n and manifest["via"]["batch"]["http_requests"] == manifest["requests"]
        file_mb = (work / "again.jsonl").stat().st_size / 1e6
        live_server = Server(0.1)
        try:
            live = run(synthgen("generate", *common, "--concurrency", 256, "--base-url", live_server.url,
                                "--out", "out-live"), work)
            assert live.status == 0, live.out
        finally:
            live_server.stop()

    rows = [
        ["generate --write-requests (tasks there)", f"{write_only.wall:.1f}", f"{write_only.cpu:.1f}",
         f"{write_only.cpu / n * 1000:.2f}", f"{write_only.peak_mb:.0f}"],
        [f"generate --batch (polls every {POLL_SECONDS:g} s)", f"{batch.wall:.1f}", f"{batch.cpu:.1f}",
         f"{batch.cpu / n * 1000:.2f}", f"{batch.peak_mb:.0f}"],
        ["generate live, concurrency 256, 100 ms server", f"{live.wall:.1f}", f"{live.cpu:.1f}",
         f"{live.cpu / n * 1000:.2f}", f"{live.peak_mb:.0f}"],
    ]
    text = table(["N = " + f"{n:,}", "client wall s", "client CPU s", "CPU ms / request", "peak MB"], rows)
    text += (f"\n\nThe batch run sent {manifest['requests']:,} requests ({file_mb:.1f} MB) in "
             f"{len(manifest['batch']['jobs'])} batch file(s), one round (the fake answers every request validly), and "
             f"recorded {manifest['valid']:,} examples. Of its wall time, {sending:.1f} s went from the start (Python, "
             f"plan, {n:,} requests rendered and written, the upload) to the batch's creation, and {collecting:.1f} s "
             f"from the batch's end to the run's (the last poll's wait of up to {POLL_SECONDS:g} s, the download, "
             f"every answer validated and written); the rest is the fake running the {n:,} requests between polls "
             "on the same cores, which a real batch (minutes to 24 h) dwarfs. The live run is the same plan against "
             f"bench/server.py. Load average during the batch run: {load:.1f} (the machine is shared). Made by "
             "`python bench/batch.py`" + (" --quick" if args.quick else "") + ".")
    print(text)
    write_sections({"Batch API": f"{stamp}\n\n{text}"})


if __name__ == "__main__":
    main()
