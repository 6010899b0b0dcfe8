"""What a run's tokens cost: the price the user gives, or the list price of synthgen's table.

The table (configs/prices.toml) holds the list prices of common OpenAI models with the date they
were read; a model matches its own name or a dated snapshot of it. A price given by flag or config
wins over the table; the embedded model has none unless one is given.
"""

import functools
import sys
from dataclasses import dataclass
from typing import Any, Optional

from synthgen.errors import BadInput
from synthgen.resources import resource_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PER = 1_000_000  # prices are per million tokens


def dollars(value: float) -> str:
    """A sum: $1,234.57, and one under a cent with its first figures ($0.0042)."""
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.2g}"


def _rate(value: float) -> str:
    """A price per million tokens: $0.60, $0.075."""
    return f"${value:.2f}" if round(value, 2) == value else f"${value:g}"


@dataclass(frozen=True)
class Price:
    input: float  # US dollars per million prompt tokens
    output: float  # per million completion tokens
    source: str  # where the price comes from, for the user
    batch_share: float = 0.5  # what the Batch API charges, as a share of this price

    def of(self, prompt_tokens: float, completion_tokens: float) -> float:
        """US dollars for these tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER

    def of_run(self, prompt_tokens: int, completion_tokens: int, batch: Optional[Any] = None) -> float:
        """US dollars for a run's tokens, of which `batch` (a store.Usage, or None) went through the
        Batch API, billed at its share of this price."""
        spent = self.of(prompt_tokens, completion_tokens)
        if batch is not None:
            spent -= (1 - self.batch_share) * self.of(batch.prompt_tokens, batch.completion_tokens)
        return spent

    def describe(self) -> str:
        return f"{_rate(self.input)} / {_rate(self.output)} per million prompt / completion tokens ({self.source})"

    def record(self) -> dict[str, Any]:
        """What the manifest and --json keep of it."""
        return {"input_per_million": self.input, "output_per_million": self.output, "source": self.source,
                "batch_share": self.batch_share}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Price":
        return cls(record["input_per_million"], record["output_per_million"], record["source"],
                   record.get("batch_share", 0.5))


@dataclass(frozen=True)
class PriceTable:
    date: str
    source: str
    batch_share: float
    models: dict[str, tuple[float, float]]

    def lookup(self, model: str) -> Optional[Price]:
        """The price of `model` or of the longest name it is a snapshot of ("gpt-4o-mini-2024-07-18")."""
        names = [name for name in self.models if model == name or model.startswith(name + "-")]
        if not names:
            return None
        name = max(names, key=len)
        prompt, completion = self.models[name]
        return Price(prompt, completion, f"{self.source} for {name}, {self.date}", self.batch_share)


@functools.lru_cache(maxsize=1)
def price_table() -> PriceTable:
    path = resource_dir("configs") / "prices.toml"
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        models = {name: (float(entry["input"]), float(entry["output"])) for name, entry in data["models"].items()}
        return PriceTable(str(data["date"]), str(data["source"]), float(data["batch_share"]), models)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"cannot read the price table {path}: {exc}") from None


def price_for(model: str, price_in: Optional[float], price_out: Optional[float], local: bool = False) -> Optional[Price]:
    """The price given ([cost] price_in and price_out, or their flags), else the table's for an
    endpoint's model; None when neither knows one (the embedded model has no list price)."""
    table = price_table()
    if price_in is not None and price_out is not None:
        return Price(price_in, price_out, "--price-in/--price-out", table.batch_share)
    return None if local else table.lookup(model)
