"""generate --batch: a run's rounds through the OpenAI Batch API (half the price of live requests,
answers within the completion window), with the openai package's own files and batches API; and
`synthgen batch status|cancel DIR`.

A round's requests are written to files split at the API's limits ([batch] max_file_requests and
max_file_bytes), each uploaded (purpose "batch") and made a batch. The manifest records a file's id
as soon as it is uploaded and a batch's id as soon as it exists, so a rerun after a crash or Ctrl+C
polls the batches already out instead of paying for their requests again; a batch whose creation
was cut off before its id came back is found among the account's batches by its input file rather
than created twice (batch creation is never retried blindly). The batches are polled every
[batch] poll_seconds; when one ends (completed, expired, cancelled or failed) its output and error
files are downloaded and every result recorded as a live answer is. Then the next round asks for
what is still missing, until N examples are valid or the request cap is reached. Ctrl+C stops
polling and leaves the batches running: the same command collects them.
"""

import asyncio
import signal
from pathlib import Path
from typing import Any, Callable, Optional, Union

import openai

from synthgen.config import Config
from synthgen.console import say
from synthgen.errors import BadInput
from synthgen.llm import StopRun
from synthgen.progress import Progress
from synthgen.prompts import Templates
from synthgen.rounds import IndexRuns, ResultCounts, RoundSession, next_round, write_parts
from synthgen.sampling import GroundedPlanner, Planner
from synthgen.store import (
    BATCH_API,
    CHAT_COMPLETIONS_URL,
    BatchJob,
    BatchRecord,
    Manifest,
    PassageIndex,
    RunFolder,
    RunState,
)

OPENAI_API = "openai"
TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})
CREATE_ATTEMPTS = 5
POLL_FAILURES = 10  # polls in a row that cannot reach the API before the run stops (the batches go on)
FIND_AMONG = 2000  # the account's most recent batches searched for one whose creation was cut off
TRANSFER_SECONDS = 1800.0  # an upload or download of up to 200 MB: far longer than [llm] timeout's answer


def batch_endpoint(config: Config) -> tuple[str, str]:
    """The base URL ("" for the provider's default) and key of the run's one Batch API endpoint."""
    llm = config.llm
    if len(llm.endpoints) > 1:
        raise BadInput("--batch sends a run's batches to one endpoint: give one --base-url")
    base_url = llm.endpoints[0].base_url if llm.endpoints else llm.base_url
    key = llm.api_key.get_secret_value() if llm.api_key else ""
    if not (base_url or key):
        raise BadInput("--batch needs the Batch API of an endpoint: set OPENAI_API_KEY (or --base-url of a server "
                       "that serves /v1/files and /v1/batches)")
    return base_url, key


def batch_client(config: Config) -> openai.AsyncOpenAI:
    """The openai package's client for the files and batches API of the run's one endpoint."""
    base_url, key = batch_endpoint(config)
    # The package's own retries for files and polls (idempotent); batch creation passes them by.
    return openai.AsyncOpenAI(base_url=base_url or None, api_key=key or "sk-no-key", timeout=config.llm.timeout,
                              max_retries=3)


def _transient(exc: openai.APIError) -> bool:
    if isinstance(exc, openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code in (408, 409, 429) or exc.status_code >= 500)


def _describe(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc or type(exc).__name__).split())[:300]


async def find_batch(client: openai.AsyncOpenAI, input_file_id: str) -> Any:
    """The account's batch made of this input file, if there is one among the most recent."""
    seen = 0
    async for batch in client.batches.list(limit=100):
        if batch.input_file_id == input_file_id:
            return batch
        seen += 1
        if seen >= FIND_AMONG:
            break
    return None


class BatchApiSession(RoundSession):
    def __init__(self, config: Config, templates: Templates, planner: Union[Planner, GroundedPlanner],
                 folder: RunFolder, state: RunState, header: Manifest, show_progress: bool = True,
                 passages: Optional[PassageIndex] = None):
        super().__init__(config, templates, planner, folder, state, header, passages)
        self.settings = config.batch
        self.client = batch_client(config)
        self.progress = Progress("generate", self.n, "ex", show_progress, initial=min(self.ledger.valid, self.n),
                                 usage=self.client_usage, per_request=False)
        self.interrupted = False
        self._wake = asyncio.Event()
        self._poll_failures = 0
        self._collected: dict[int, list[BatchJob]] = {}  # rounds whose batches were collected this session

    async def run(self) -> str:
        """complete, capped, stopped or interrupted (the batches keep running)."""
        restore = self._catch_interrupts()
        self.save()
        outcome = "stopped"
        try:
            with self.recorder.open(self.folder):
                async with self.progress:
                    outcome = await self._rounds()
        except StopRun as exc:
            self.stop_reason = str(exc)
        except asyncio.CancelledError:  # a second Ctrl+C
            outcome = "interrupted"
        finally:
            restore()
            await self.client.close()
            self.save("stopped" if outcome == "capped" else outcome)
        if outcome == "interrupted" and self.record.at_provider():
            say(f"the batches keep running at the Batch API (none was cancelled): the command below collects their "
                f"answers; `synthgen batch status {self.folder.path}` shows them, `synthgen batch cancel "
                f"{self.folder.path}` stops them")
        return outcome

    async def _rounds(self) -> str:
        self._forget_unsent()
        while not self.interrupted:
            out = self.record.at_provider()
            if out:
                await self._advance(out)
                if self.record.at_provider() and not self.interrupted:
                    await self._sleep(self.settings.poll_seconds)
                continue
            if self.ledger.valid >= self.n:
                return "complete"
            self.stop_reason = self._why_stop()
            if self.stop_reason:
                return "stopped"
            size = self.round_size()
            if size == 0:
                return "capped"
            await self._send_round(size)
        return "interrupted"

    def _why_stop(self) -> Optional[str]:
        """Why not to send another round after the last one collected in this session, if any."""
        if not self._collected:
            return None
        round_ = max(self._collected)
        jobs = self._collected[round_]
        if any(job.cancel_requested for job in jobs):
            return (f"the batches of round {round_} were cancelled (synthgen batch cancel); their finished answers are "
                    "in, and running the command again sends the rest")
        if not any(job.completed or job.failed for job in jobs):
            why = "; ".join(sorted({error for job in jobs for error in job.errors})) or ", ".join(
                sorted({job.status for job in jobs}))
            return f"the batches of round {round_} ran no request ({why}); running the command again sends them again"
        return None

    # -- sending a round ---------------------------------------------------------------------------

    def _forget_unsent(self) -> None:
        """Parts written but never uploaded (a stop in between): their indices are planned again."""
        unsent = [job for job in self.record.jobs if job.api == OPENAI_API and job.input_file_id is None]
        for job in unsent:
            self.record.jobs.remove(job)
        self.folder.remove_batch_files(Path(job.file) for job in unsent)

    async def _send_round(self, size: int) -> None:
        round_ = self.record.rounds
        indices = next_round(self.finished, set(), size)
        parts = write_parts(self.lines(indices, round_), lambda part: self.folder.round_part(round_, part),
                            self.settings.max_file_requests, self.settings.max_file_bytes)
        jobs = self.add_round(OPENAI_API, parts)
        self.save()
        say(f"round {round_}: {size:,} requests in {len(jobs)} batch{'es' if len(jobs) > 1 else ''}")
        for job in jobs:
            if self.interrupted:
                return  # the parts not uploaded are forgotten, and planned again, by the next run
            await self._upload(job)
            await self._create(job, maybe_created=False)

    async def _upload(self, job: BatchJob) -> None:
        path = Path(job.file)
        try:
            with open(path, "rb") as f:
                uploaded = await self.client.files.create(file=(path.name, f, "application/jsonl"), purpose="batch",
                                                          timeout=TRANSFER_SECONDS)
        except openai.APIError as exc:
            raise StopRun(f"uploading {path.name} failed: {_describe(exc)}") from None
        job.input_file_id, job.status = uploaded.id, "uploaded"
        self.save()  # at once: from here on the file's batch may exist

    async def _create(self, job: BatchJob, maybe_created: bool) -> None:
        """Make the part's batch, or find the one made before its id could be noted."""
        assert job.input_file_id is not None
        no_retries = self.client.with_options(max_retries=0)
        for attempt in range(CREATE_ATTEMPTS):
            if maybe_created or attempt:
                found = await self._find(job.input_file_id)
                if found is not None:
                    self._note(job, found)
                    return
            try:
                batch = await no_retries.batches.create(
                    input_file_id=job.input_file_id, endpoint=CHAT_COMPLETIONS_URL,  # type: ignore[arg-type]
                    completion_window=self.settings.completion_window,  # type: ignore[arg-type]
                    metadata={"synthgen_run": self.run_id, "round": str(job.round), "part": str(job.part)})
            except openai.APIError as exc:
                if not _transient(exc):
                    raise StopRun(f"the Batch API refused a batch: {_describe(exc)}") from None
                await asyncio.sleep(min(30.0, 0.5 * 2 ** attempt))
                continue
            self._note(job, batch)
            return
        raise StopRun(f"could not create the batch of {Path(job.file).name} after {CREATE_ATTEMPTS} attempts")

    async def _find(self, input_file_id: str) -> Any:
        try:
            return await find_batch(self.client, input_file_id)
        except openai.APIError as exc:
            if not _transient(exc):
                raise StopRun(f"the Batch API refused to list batches: {_describe(exc)}") from None
        return None

    # -- polling and collecting ---------------------------------------------------------------------

    async def _advance(self, out: list[BatchJob]) -> None:
        for job in out:
            if self.interrupted:
                return
            if job.batch_id is None:
                await self._create(job, maybe_created=True)
                continue
            batch = await self._retrieve(job.batch_id)
            if batch is None:
                continue
            if self._note(job, batch) and batch.status in TERMINAL:
                await self._collect(job)
        running = self.record.at_provider()
        self.progress.sent_count = sum(job.requests for job in running)
        self.progress.in_flight = sum(max(0, job.requests - job.completed - job.failed) for job in running)
        self.progress.rejected = self.ledger.rejected_total

    async def _retrieve(self, batch_id: str) -> Any:
        try:
            batch = await self.client.batches.retrieve(batch_id)
        except openai.APIError as exc:
            if not _transient(exc):
                raise StopRun(f"polling batch {batch_id}: {_describe(exc)}") from None
            self._poll_failures += 1
            if self._poll_failures >= POLL_FAILURES:
                raise StopRun(f"the Batch API could not be reached {POLL_FAILURES} times in a row ({_describe(exc)}); "
                              "the batches keep running there: run the command again to collect them") from None
            say(f"polling batch {batch_id} failed ({_describe(exc)}); trying again")
            return None
        self._poll_failures = 0
        return batch

    def _note(self, job: BatchJob, batch: Any) -> bool:
        """Take in what the API says of a job's batch; True when its id is noted (it is the job's)."""
        if job.batch_id not in (None, batch.id):
            return False
        before = (job.batch_id, job.status, job.completed, job.failed)
        job.batch_id, job.status = batch.id, batch.status
        counts = batch.request_counts
        if counts is not None:
            job.completed, job.failed = counts.completed, counts.failed
        job.output_file_id, job.error_file_id = batch.output_file_id, batch.error_file_id
        errors = batch.errors.data if batch.errors is not None and batch.errors.data else []
        job.errors = [f"{error.code}: {error.message}" if error.code else str(error.message) for error in errors]
        if job.status != before[1]:
            say(f"batch {batch.id} (round {job.round}, part {job.part}, {job.requests:,} requests): {job.status}")
        if (job.batch_id, job.status, job.completed, job.failed) != before:
            self.save()
        return True

    async def _collect(self, job: BatchJob) -> None:
        """Record the results of a batch that ended; requests it never ran stay open."""
        assert job.batch_id is not None
        asked = IndexRuns(job.indices)
        counts = ResultCounts()
        downloads = []
        for which, file_id in (("output", job.output_file_id), ("errors", job.error_file_id)):
            if file_id is None:
                continue
            path = self.folder.downloaded(job.batch_id, which)
            await self._download(file_id, path)
            downloads.append(path)
            counts.add(self.read(path, BATCH_API, asked, on_result=self._advance_bar, stop=lambda: self.interrupted))
            if self.interrupted:
                return  # not collected: the next run reads the files again, passing over what is in
        job.collected = True
        self._collected.setdefault(job.round, []).append(job)
        self.save()
        self.folder.remove_batch_files([*downloads, Path(job.file)])
        say(f"batch {job.batch_id}: {counts.valid:,} valid, {counts.rejected:,} rejected ({counts.failed:,} failed "
            f"requests), {counts.not_run:,} never ran; {self.ledger.valid:,} of {self.n:,} valid")

    def _advance_bar(self, ok: bool) -> None:
        if ok:
            self.progress.advance(1)
        self.client_usage.prompt_tokens = self.ledger.usage.prompt_tokens
        self.client_usage.completion_tokens = self.ledger.usage.completion_tokens

    async def _download(self, file_id: str, path: Path) -> None:
        sink = self.folder.download_file(path)
        try:
            async with self.client.files.with_streaming_response.content(file_id, timeout=TRANSFER_SECONDS) as response:
                async for chunk in response.iter_bytes(1 << 20):
                    sink.file.write(chunk)
        except openai.APIError as exc:
            sink.abort()
            raise StopRun(f"downloading file {file_id} failed: {_describe(exc)}; run the command again to "
                          "collect it") from None
        except BaseException:
            sink.abort()
            raise
        sink.commit()

    # -- waiting and Ctrl+C ------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    def _interrupt(self, main: "Optional[asyncio.Task[Any]]") -> None:
        """The first Ctrl+C stops sending and polling after the step under way; a second one at once."""
        if self.interrupted:
            if main is not None:
                main.cancel()
            return
        self.interrupted = True
        self._wake.set()
        say("\ninterrupted: stopping after the step under way (interrupt again to stop at once)")

    def _catch_interrupts(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        caught = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._interrupt, main)
                caught.append(signum)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass

        def restore() -> None:
            for signum in caught:
                loop.remove_signal_handler(signum)

        return restore


# -- synthgen batch status | cancel ------------------------------------------------------------------


def _batch_record(folder: RunFolder) -> tuple[Manifest, BatchRecord]:
    manifest = folder.read_manifest()
    if manifest is None:
        raise BadInput(f"{folder.path} holds no run (no manifest)")
    if manifest.batch is None or not manifest.batch.jobs:
        raise BadInput(f"{folder.path} sent no batch: its run went live")
    return manifest, manifest.batch


async def batch_status(config: Config, out: Path) -> tuple[Manifest, list[BatchJob]]:
    """The run's manifest and its jobs, those at the Batch API as it says they are now."""
    manifest, record = _batch_record(RunFolder(out))
    out_jobs = record.at_provider()
    if out_jobs:
        client = batch_client(config)
        try:
            for job in out_jobs:
                if job.batch_id is None:
                    continue
                try:
                    batch = await client.batches.retrieve(job.batch_id)
                except openai.APIError as exc:
                    raise BadInput(f"cannot ask the Batch API about {job.batch_id}: {_describe(exc)}") from None
                job.status = batch.status
                if batch.request_counts is not None:
                    job.completed, job.failed = batch.request_counts.completed, batch.request_counts.failed
        finally:
            await client.close()
    return manifest, record.jobs


async def batch_cancel(config: Config, out: Path) -> list[BatchJob]:
    """Cancel the run's batches at the Batch API; what they already ran stays to be collected."""
    with RunFolder(out).open("batch cancel") as folder:
        manifest, record = _batch_record(folder)
        cancelled = []
        client = batch_client(config)
        try:
            for job in record.at_provider():
                if job.status in TERMINAL:
                    continue
                try:
                    if job.batch_id is None:  # its creation was cut off: made, or not
                        made = await find_batch(client, job.input_file_id or "")
                        if made is None:  # never made: its requests are asked again by the next run
                            job.status, job.collected = "never made", True
                            folder.write_manifest(manifest)
                            continue
                        job.batch_id = made.id
                    batch = await client.batches.cancel(job.batch_id)
                except openai.APIError as exc:
                    raise BadInput(f"cannot cancel {job.batch_id or job.file}: {_describe(exc)}") from None
                job.status, job.cancel_requested = batch.status, True
                cancelled.append(job)
                folder.write_manifest(manifest)  # after each: a failure later keeps what was done
        finally:
            await client.close()
    return cancelled
