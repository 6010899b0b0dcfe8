"""generate --write-requests FILE and --read-results FILE: a run's rounds as files for an offline
batch runner, `vllm run-batch -i requests.jsonl -o results.jsonl --model M` (the OpenAI Batch API's
line shapes, so any runner of them serves).

--write-requests writes the next round: the plan indices still wanting an answer, lowest first.
--read-results records a results file (every answer validated, written or rejected as a live one
is), then writes the next round for what is still missing (the rejected answers' replacements, and
the indices whose lines are missing or never ran) to the file the last round went to, or to
--write-requests FILE. Either can be run again without harm: answered indices are passed over, and
a round written again asks for the same indices.
"""

from pathlib import Path
from typing import Optional, Union

from synthgen.config import Config
from synthgen.errors import BadInput
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.rounds import BatchOptions, ResultCounts, RoundSession, next_round, write_parts
from synthgen.sampling import GroundedPlanner, Planner
from synthgen.store import RESULTS_FILE, Manifest, PassageIndex, RunFolder, RunState

FILES_API = "files"
UNLIMITED = 1 << 62


class ResultsFileSession(RoundSession):
    def __init__(self, config: Config, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 folder: RunFolder, state: RunState, header: Manifest, options: BatchOptions,
                 show_progress: bool = True, passages: Optional[PassageIndex] = None):
        super().__init__(config, templates, planner, folder, state, header, passages)
        self.options = options
        self.show_progress = show_progress
        self.counts: Optional[ResultCounts] = None  # what --read-results read
        self.written: Optional[Path] = None  # where the next round went
        self.written_requests = 0

    async def run(self) -> str:
        """complete, waiting (a round of requests is written for the runner) or capped."""
        results = self.options.read_results
        if results is not None:
            self.counts = self._read(results)
        if self.ledger.valid >= self.n:
            self.save("complete")
            return "complete"
        size = self.round_size()
        if size == 0:
            self.save("stopped")  # the request cap, short of N: as a live run that reaches it
            return "capped"
        target = self.options.write_requests or self._last_file() or self.folder.requests
        round_ = self.record.rounds
        indices = next_round(self.finished, set(), size)
        parts = write_parts(self.lines(indices, round_), lambda _: target, UNLIMITED, UNLIMITED)
        self.add_round(FILES_API, parts)
        self.written, self.written_requests = target, size
        self.save("waiting")  # for the runner's results
        return "waiting"

    def _read(self, path: Path) -> ResultCounts:
        if not self.record.jobs:
            raise BadInput(f"{self.folder.path} has written no requests to read results of: "
                           "write them first with --write-requests FILE")
        progress = Progress("read", self.n, "ex", self.show_progress, initial=min(self.ledger.valid, self.n),
                            per_request=False)

        def advance(ok: bool) -> None:
            if ok:
                progress.advance(1)

        with progress.bar, self.recorder.open(self.folder):
            counts = self.read(path, RESULTS_FILE, self.asked(), on_result=advance)
        if not counts.answered and not counts.not_run and not counts.already:
            raise BadInput(f"{path} holds no result of a request this run wrote ({counts.lines} lines: "
                           f"{counts.foreign} of other requests, {counts.unreadable} unreadable); is --out the run "
                           "that wrote the requests, with the same settings?")
        return counts

    def _last_file(self) -> Optional[Path]:
        files = [job.file for job in self.record.jobs if job.api == FILES_API]
        return Path(files[-1]) if files else None

    def report(self) -> list[str]:
        """What was read and written, for the user."""
        lines = []
        if self.counts is not None:
            c = self.counts
            lines.append(f"read {c.lines} results from {self.options.read_results}: {c.valid} valid, {c.rejected} "
                         f"rejected ({c.failed} of them failed requests), {c.not_run} never ran, {c.already} answered "
                         f"before, {c.unreadable} unreadable, {c.foreign} not this run's")
        lines.append(f"{self.ledger.valid} of {self.n} valid examples in {self.folder.examples}")
        return lines
