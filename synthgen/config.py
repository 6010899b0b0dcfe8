"""The run's settings: configs/default.toml < --config FILE < environment < flags."""

import copy
import difflib
import functools
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union
from urllib.parse import urlparse

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from synthgen.errors import BadInput
from synthgen.kinds import GROUNDED_KINDS, KINDS, SOURCE_LANGUAGE
from synthgen.names import MAX_CAP_FACTOR
from synthgen.resources import resource_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Tables that a user's config replaces whole instead of merging into: a weight table that kept
# the default's other entries would silently keep sampling them.
REPLACED_TABLES = ("kinds", "languages", "brainstorm.topics", "generate.corpus.kinds", "generate.corpus.languages")


# Environment variables and where they go.
ENVIRONMENT = {
    "OPENAI_API_KEY": ("llm", "api_key"),
    "OPENAI_BASE_URL": ("llm", "base_url"),
    "SYNTHGEN_MODEL": ("llm", "model"),
    "SYNTHGEN_BACKEND": ("llm", "backend"),
    "SYNTHGEN_CONCURRENCY": ("generate", "concurrency"),
}


class _Section(BaseModel):
    # No nan or inf in any float setting: pydantic takes them by default, and nan fails a bound
    # with a misleading message ("less than or equal to 2") or, like inf, passes it.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def check_url(value: str) -> str:
    """An endpoint's base URL, without a trailing slash; anything but an http(s) URL is refused."""
    parts = urlparse(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def repeated_url(urls: Sequence[str]) -> Optional[str]:
    """The first URL given twice (a trailing slash, the scheme's and the host's case aside), else None."""
    seen = set()
    for url in urls:
        parts = urlparse(url.rstrip("/"))
        key = parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()
        if key in seen:
            return url
        seen.add(key)
    return None


class EndpointConfig(_Section):
    """One of several endpoints ([[llm.endpoints]]): the same model behind each."""

    base_url: str
    # Requests in flight at this endpoint; unset: [generate] concurrency. --concurrency sets every one.
    concurrency: Optional[int] = Field(default=None, ge=1, le=4096)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)


class LLMConfig(_Section):
    backend: Literal["auto", "openai", "local"] = "auto"
    model: str = Field(min_length=1)
    base_url: str = ""
    # Several endpoints, in place of base_url: each request goes to the one with the fewest in flight.
    endpoints: list[EndpointConfig] = Field(default_factory=list)
    bench_after: int = Field(ge=1)
    bench_seconds: float = Field(gt=0)
    api_key: Optional[SecretStr] = None
    model_path: str = ""
    temperature: float = Field(ge=0, le=2)
    top_p: float = Field(gt=0, le=1)
    timeout: float = Field(gt=0)
    max_attempts: int = Field(ge=1)
    retry_budget: float = Field(gt=0)
    structured_output: Literal["json_schema", "json_object", "none"] = "json_schema"
    rpm: float = Field(default=0, ge=0)
    tpm: float = Field(default=0, ge=0)
    max_tokens: dict[str, int]

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value) if value else value

    @field_validator("endpoints")
    @classmethod
    def _distinct(cls, value: list[EndpointConfig]) -> list[EndpointConfig]:
        twice = repeated_url([endpoint.base_url for endpoint in value])
        if twice is not None:
            raise ValueError(f"{twice} is given twice")
        return value

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, value: dict[str, int]) -> dict[str, int]:
        missing = (set(KINDS) | {"brainstorm"}) - set(value)
        if missing:
            raise ValueError(f"no max_tokens for {', '.join(sorted(missing))}")
        if any(v < 1 for v in value.values()):
            raise ValueError("max_tokens must be positive")
        return value


class LocalConfig(_Section):
    """The embedded model (backend "local"); see [local] in configs/default.toml."""

    parallel: int = Field(default=4, ge=1, le=64)
    n_ctx: int = Field(default=2048, ge=256)
    n_batch: int = Field(default=512, ge=16)
    n_threads: int = Field(default=0, ge=0)
    flash_attn: bool = True
    share_prefix: bool = True
    top_k: int = Field(default=40, ge=0)
    min_p: float = Field(default=0.05, ge=0, le=1)
    dry_multiplier: float = Field(default=0.8, ge=0)
    dry_base: float = Field(default=1.75, gt=1)
    dry_allowed_length: int = Field(default=5, ge=1)
    max_tokens: dict[str, int] = Field(default_factory=dict)

    @field_validator("max_tokens")
    @classmethod
    def _max_tokens(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(KINDS) - {"brainstorm"}
        if unknown:
            raise ValueError(f"no kind {sorted(unknown)[0]!r} (known: brainstorm, {', '.join(KINDS)})")
        if any(v < 1 for v in value.values()):
            raise ValueError("max_tokens must be positive")
        return value


# The [local] settings that decide the embedded model's answers: the sampler chain, and n_ctx,
# which bounds the room an answer has (and DRY's look-back); the others (parallel, n_batch,
# n_threads, flash_attn, share_prefix) decide only how fast the same answers come.
LOCAL_SAMPLING = {"top_k", "min_p", "dry_multiplier", "dry_base", "dry_allowed_length", "n_ctx", "max_tokens"}


class CorpusGenerateConfig(_Section):
    """generate --corpus: which passages are drawn, which kinds are asked for, in which languages."""

    draw: Literal["document", "passage"]
    kinds: dict[str, float]
    languages: dict[str, float]
    negatives: int = Field(ge=0, le=100)
    relabel: bool

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(GROUNDED_KINDS)
        if unknown:
            raise ValueError(f"generate.corpus.kinds: a passage grounds {', '.join(GROUNDED_KINDS)}, "
                             f"not {sorted(unknown)[0]!r}")
        return _weights(value, "kind")


class GenerateConfig(_Section):
    concurrency: int = Field(ge=1, le=4096)
    seed: int
    out: str
    tasks: str
    request_cap_factor: float = Field(ge=1, le=MAX_CAP_FACTOR)
    corpus: CorpusGenerateConfig


def _weights(value: dict[str, float], what: str) -> dict[str, float]:
    if any(w < 0 for w in value.values()):
        raise ValueError(f"{what} weights must not be negative")
    if sum(value.values()) <= 0:
        raise ValueError(f"{what} weights sum to zero")
    return value


class BatchConfig(_Section):
    """generate --batch: the OpenAI Batch API's limits per file, and how often batches are polled."""

    poll_seconds: float = Field(gt=0)
    max_file_requests: int = Field(ge=1, le=50_000)
    max_file_bytes: int = Field(ge=1024, le=200 * 1024 * 1024)
    completion_window: str = Field(min_length=1)


class BrainstormConfig(_Section):
    rounds: int = Field(ge=1)
    num_tasks: int = Field(ge=1, le=200)
    max_task_chars: int = Field(ge=10)
    examples_per_task: float = Field(gt=0)
    shown_tasks: int = Field(ge=0, le=100)
    min_yield: float = Field(ge=0, le=1)
    yield_rounds: int = Field(ge=1)
    topics: dict[str, float]
    personas: list[str] = Field(min_length=1)

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: dict[str, float]) -> dict[str, float]:
        return _weights(value, "topic")

    @field_validator("personas")
    @classmethod
    def _personas(cls, value: list[str]) -> list[str]:
        if any(not persona.strip() for persona in value):
            raise ValueError("a persona must not be empty")
        return value


class NearDuplicateConfig(_Section):
    threshold: float = Field(gt=0, le=1)
    fields: list[Literal["query", "positive", "negative"]] = Field(default=["query", "positive"], min_length=1)
    num_perm: int = Field(ge=16, le=1024)
    bands: int = Field(ge=1)
    word_shingle: int = Field(ge=1, le=10)
    char_shingle: int = Field(ge=1, le=20)
    exact: bool = False
    processes: int = Field(default=0, ge=0)  # worker processes that sign texts (0: one a core)

    @model_validator(mode="after")
    def _bands_divide(self) -> "NearDuplicateConfig":
        if self.num_perm % self.bands:
            raise ValueError(f"bands ({self.bands}) must divide num_perm ({self.num_perm})")
        return self


class LanguageCheckConfig(_Section):
    min_chars: int = Field(ge=1)


class EmbedConfig(_Section):
    model: str = ""
    base_url: str = ""
    query_template: str
    batch_size: int = Field(ge=1)
    max_seq_length: int = Field(ge=0)
    languages: Literal["auto", "english", "all"]
    cache: str = ""

    @field_validator("query_template")
    @classmethod
    def _template(cls, value: str) -> str:
        from synthgen.instructions import check_template

        return check_template(value)


class ConsistencyConfig(_Section):
    top_k: int = Field(ge=1)


class FalseNegativeConfig(_Section):
    action: Literal["drop", "swap", "keep"]


class MineConfig(_Section):
    negatives: int = Field(ge=0)
    relative_margin: float = Field(ge=0, lt=1)


class RelabelConfig(_Section):
    top_m: int = Field(ge=2, le=20)
    action: Literal["relabel", "drop"]
    temperature: float = Field(ge=0, le=2)
    attempts: int = Field(ge=1, le=10)
    max_tokens: int = Field(ge=16)
    max_document_chars: int = Field(ge=0)


class CostConfig(_Section):
    """What a run's tokens cost and how much it may spend (generate --dry-run, --budget)."""

    # US dollars per million prompt and completion tokens; unset: synthgen's table (configs/prices.toml).
    price_in: Optional[float] = Field(default=None, ge=0)
    price_out: Optional[float] = Field(default=None, ge=0)
    # The most a run may spend, all its sessions together; unset: no limit.
    budget: Optional[float] = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _both_prices(self) -> "CostConfig":
        if (self.price_in is None) != (self.price_out is None):
            raise ValueError("give both price_in and price_out (--price-in and --price-out), or neither")
        return self


class CurateConfig(_Section):
    checks: list[str]
    language: LanguageCheckConfig
    near_duplicate: NearDuplicateConfig
    tasks: NearDuplicateConfig
    embed: EmbedConfig
    consistency: ConsistencyConfig
    false_negative: FalseNegativeConfig
    mine: MineConfig
    relabel: RelabelConfig


class CorpusConfig(_Section):
    """corpus ingest: how documents become passages, and which near duplicates are left out."""

    passage_words: int = Field(ge=10, le=10_000)
    overlap_words: int = Field(ge=0)
    min_words: int = Field(ge=1)
    text_field: str = Field(min_length=1)
    near_duplicates: bool = True
    # Its `fields` is curate's (an example's); a passage has one text, compared whole.
    near_duplicate: NearDuplicateConfig

    @model_validator(mode="after")
    def _sizes(self) -> "CorpusConfig":
        # A split paragraph's windows must move forward, and a passage of full size must not be too short.
        if self.overlap_words >= self.passage_words:
            raise ValueError(f"overlap_words ({self.overlap_words}) must be less than passage_words ({self.passage_words})")
        if self.min_words > self.passage_words:
            raise ValueError(f"min_words ({self.min_words}) must not exceed passage_words ({self.passage_words})")
        return self


PlaceholderValue = Union[str, int, float]


class Config(_Section):
    llm: LLMConfig
    generate: GenerateConfig
    brainstorm: BrainstormConfig
    curate: CurateConfig
    corpus: CorpusConfig
    batch: BatchConfig
    kinds: dict[str, float]
    placeholders: dict[str, dict[str, list[PlaceholderValue]]]
    # Language names a [languages] table may use besides the known ones (the names of the shipped
    # configs/default.toml [languages] table, the 100 XLM-R languages).
    extra_languages: list[str] = Field(default_factory=list)
    languages: dict[str, float]
    local: LocalConfig = Field(default_factory=LocalConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    # A folder of templates to use instead of the shipped prompts/ (same layout).
    prompts: str = ""

    @field_validator("placeholders", mode="before")
    @classmethod
    def _finite_values(cls, value: Any) -> Any:
        # Before the union's own checks, whose first error would read "should be a valid string".
        if isinstance(value, Mapping):
            for kind, table in value.items():
                for placeholder, values in table.items() if isinstance(table, Mapping) else ():
                    for item in values if isinstance(values, list) else ():
                        if isinstance(item, float) and not math.isfinite(item):
                            raise ValueError(f"{kind}.{placeholder} holds {item}: a value must be text or a finite number")
        return value

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind {sorted(unknown)[0]!r} (known: {', '.join(KINDS)})")
        return _weights(value, "kind")

    @field_validator("extra_languages")
    @classmethod
    def _extra_languages(cls, value: list[str]) -> list[str]:
        if any(not _fold(name) for name in value):
            raise ValueError("a language name must not be empty")
        return [" ".join(name.split()) for name in value]

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        # Checked before the weights and before the bitext rule, which a lone unknown name met first.
        return _canonical_languages(value, info.data.get("extra_languages", ()))

    @model_validator(mode="after")
    def _endpoint_concurrency(self) -> "Config":
        # Each endpoint's own concurrency, else [generate]'s; the run's is then their sum.
        endpoints = self.llm.endpoints
        for endpoint in endpoints:
            endpoint.concurrency = endpoint.concurrency or self.generate.concurrency
        if endpoints and self.llm.backend != "local":
            self.generate.concurrency = sum(endpoint.concurrency or 0 for endpoint in endpoints)
        return self

    @model_validator(mode="after")
    def _corpus_languages(self) -> "Config":
        corpus = self.generate.corpus
        corpus.languages = _canonical_languages(corpus.languages, self.extra_languages)
        return self

    @model_validator(mode="after")
    def _value_sets(self) -> "Config":
        for name, kind in KINDS.items():
            given = self.placeholders.get(name, {})
            for placeholder in kind.value_sets:
                if not given.get(placeholder):
                    raise ValueError(f"placeholders.{name}.{placeholder} needs at least one value")
            extra = set(given) - set(kind.value_sets)
            if extra:
                raise ValueError(f"placeholders.{name} has no placeholder {sorted(extra)[0]!r}")
        uses_two = [k for k, w in self.kinds.items() if w > 0 and SOURCE_LANGUAGE in KINDS[k].placeholders]
        if uses_two and sum(1 for w in self.languages.values() if w > 0) < 2:
            raise ValueError("bitext needs at least two languages with weight")
        return self

    def value_set(self, kind: str, placeholder: str) -> list[str]:
        return [_as_text(v) for v in self.placeholders[kind][placeholder]]

    def active_kinds(self) -> dict[str, float]:
        return {k: w for k, w in self.kinds.items() if w > 0}

    def fingerprint_data(self) -> dict[str, Any]:
        """What decides the prompts and the answers: a change here makes another run."""
        return {
            "model": self.llm.model,
            "model_path": self.llm.model_path,
            "temperature": self.llm.temperature,
            "top_p": self.llm.top_p,
            "max_tokens": self.llm.max_tokens,
            "seed": self.generate.seed,
            "kinds": self.kinds,
            "placeholders": self.placeholders,
            "languages": self.languages,
            # The embedded model's sampling and answer room, always, whatever the backend: "auto"
            # picks the backend from the environment when the run starts, and a setting that
            # cannot change the answers of another backend only costs a refused resume.
            "local": self.local.model_dump(include=LOCAL_SAMPLING),
        }


@functools.lru_cache(maxsize=1)
def _shipped_defaults() -> dict[str, Any]:
    return _read_toml(resource_dir("configs") / "default.toml")


def _canonical_languages(value: dict[str, float], extra: Sequence[str]) -> dict[str, float]:
    """A language table with each name as the known list spells it; an unknown or doubled name is an error."""
    known = {_fold(name): name for name in (*extra, *known_languages())}
    canonical: dict[str, float] = {}
    given: dict[str, str] = {}
    for name, weight in value.items():
        key = _fold(name)
        if key not in known:
            raise ValueError(_unknown_language(name, known))
        if key in given:
            raise ValueError(f"{known[key]!r} given twice ({given[key]!r} and {name!r})")
        given[key] = name
        canonical[known[key]] = weight
    return _weights(canonical, "language")


def known_languages() -> tuple[str, ...]:
    """The language names a config may weigh: those of the shipped [languages] table (the 100 XLM-R
    languages), whatever table a user's config puts in its place; extra_languages adds others."""
    return tuple(_shipped_defaults()["languages"])


def _fold(name: str) -> str:
    """A language name as compared: case and runs of blanks do not count."""
    return " ".join(name.split()).casefold()


def _unknown_language(name: str, known: Mapping[str, str]) -> str:
    folded = _fold(name)
    # "Chinese" is no name of its own but a word of two; "Englsh" is a letter away from one.
    close = [canonical for key, canonical in known.items() if folded in key.split()]
    close += [known[key] for key in difflib.get_close_matches(folded, list(known), n=3, cutoff=0.6)
              if known[key] not in close]
    if close:
        return f"unknown language {name!r} (closest known: {', '.join(close)})"
    return (f"unknown language {name!r}: not one of the {len(known)} known names (the [languages] table of "
            "configs/default.toml); a config file's extra_languages = [...] adds others")


def _as_text(value: PlaceholderValue) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def digest(data: Any) -> str:
    """A short, stable digest of JSON-able data."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_weights(text: str, what: str) -> dict[str, float]:
    """`a=0.4,b=0.6` -> {"a": 0.4, "b": 0.6}; a name given twice (whatever its case) is refused."""
    weights: dict[str, float] = {}
    seen: dict[str, str] = {}
    for item in text.split(","):
        name, sep, number = item.partition("=")
        name = name.strip()
        try:
            if not sep or not name:
                raise ValueError
            weights[name] = float(number)
        except ValueError:
            raise BadInput(f"--{what}: {item.strip()!r} is not NAME=WEIGHT") from None
        first = seen.get(_fold(name))
        if first is not None:
            also = f" (also as {first!r})" if first != name else ""
            raise BadInput(f"--{what}: {name!r} given twice{also}: which weight was meant?")
        seen[_fold(name)] = name
    return weights


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise BadInput(f"config file not found: {path}") from None
    except UnicodeDecodeError as exc:  # tomllib decodes the bytes as UTF-8 (a ValueError, not a TOMLDecodeError)
        raise BadInput(f"cannot read config {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                       f"at offset {exc.start}); save it as UTF-8") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"cannot read config {path}: {exc}") from None


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Lay update over base: tables merge key by key (REPLACED_TABLES, by dotted name, are replaced
    whole), a None (a flag left out) changes nothing, in a table new to base as well."""
    for key, value in update.items():
        if value is None:
            continue
        name = f"{where}.{key}" if where else key
        # Checked here, by the key's name: once the flags' table of Nones lands on `llm = 5`,
        # pydantic would blame the first field of that table, llm.backend.
        if isinstance(base.get(key), dict) and not isinstance(value, Mapping):
            raise BadInput(f"config: {name}: must be a table, not {_toml_type(value)}")
        if isinstance(value, Mapping) and isinstance(base.get(key), dict) and name not in REPLACED_TABLES:
            _merge(base[key], value, name)
        else:
            base[key] = _merge({}, value, name) if isinstance(value, Mapping) else value
    return base


def _toml_type(value: Any) -> str:
    for kind, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _flag_concurrency(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """--concurrency is every endpoint's, over the concurrency a config file gives each one."""
    concurrency = (overrides.get("generate") or {}).get("concurrency")
    endpoints = (data.get("llm") or {}).get("endpoints")
    if concurrency is not None and isinstance(endpoints, list):
        for endpoint in endpoints:
            if isinstance(endpoint, dict):
                endpoint["concurrency"] = concurrency


def load_config(
    config_file: Optional[Path] = None,
    environ: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> Config:
    data = copy.deepcopy(_shipped_defaults())
    if config_file is not None:
        _merge(data, _read_toml(config_file))
    from_env: dict[str, dict[str, str]] = {}
    for variable, (section, key) in ENVIRONMENT.items():
        value = (environ or {}).get(variable)
        if value:
            from_env.setdefault(section, {})[key] = value
    _merge(data, from_env)
    _merge(data, overrides or {})
    _flag_concurrency(data, overrides or {})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise BadInput(f"config: {where}: {message}" if where else f"config: {message}") from None
