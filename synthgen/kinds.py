"""The six kinds of the E5-mistral recipe: their answers, placeholders and normalisation."""

from dataclasses import dataclass
from typing import Optional

from synthgen.schemas import (
    Answer,
    LongShortAnswer,
    PairAnswer,
    ShortLongAnswer,
    TripletAnswer,
)

# Placeholders filled from somewhere other than the config's value sets.
TASK = "task"
LANGUAGE = "language"
SOURCE_LANGUAGE = "src_lang"
TARGET_LANGUAGE = "tgt_lang"
SAMPLED_ELSEWHERE = frozenset({TASK, LANGUAGE, SOURCE_LANGUAGE, TARGET_LANGUAGE})


@dataclass(frozen=True)
class Kind:
    name: str
    answer: type[Answer]
    query_key: str
    positive_key: str
    negative_key: Optional[str]
    # The generation template's placeholders, in the order they are sampled.
    placeholders: tuple[str, ...]
    # Symmetric kinds have a fixed instruction and no brainstorm.
    instruction: Optional[str] = None

    @property
    def brainstormed(self) -> bool:
        return self.instruction is None

    @property
    def value_sets(self) -> tuple[str, ...]:
        """Placeholders whose values come from the config's [placeholders.<kind>] table."""
        return tuple(p for p in self.placeholders if p not in SAMPLED_ELSEWHERE)

    def normalise(self, answer: dict[str, str]) -> tuple[str, str, Optional[str]]:
        """(query, positive, negative) of a validated answer."""
        negative = answer[self.negative_key] if self.negative_key else None
        return answer[self.query_key], answer[self.positive_key], negative


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "short-long",
            ShortLongAnswer,
            "user_query",
            "positive_document",
            "hard_negative_document",
            (TASK, "query_type", "query_length", "clarity", "num_words", "difficulty", LANGUAGE),
        ),
        Kind(
            "long-short",
            LongShortAnswer,
            "input_text",
            "label",
            "misleading_label",
            (TASK, "num_words", "difficulty", "clarity", LANGUAGE),
        ),
        Kind("short-short", PairAnswer, "input", "positive_document", None, (TASK, LANGUAGE)),
        Kind("long-long", PairAnswer, "input", "positive_document", None, (TASK, LANGUAGE)),
        Kind(
            "sts",
            TripletAnswer,
            "S1",
            "S2",
            "S3",
            ("unit", "high_score", "low_score", "difficulty", LANGUAGE),
            instruction="Retrieve semantically similar text.",
        ),
        Kind(
            "bitext",
            TripletAnswer,
            "S1",
            "S2",
            "S3",
            (SOURCE_LANGUAGE, TARGET_LANGUAGE, "unit", "high_score", "low_score", "difficulty"),
            instruction="Retrieve parallel sentences.",
        ),
    )
}

SUBTYPES: tuple[str, ...] = tuple(name for name, kind in KINDS.items() if kind.brainstormed)

# The kinds a passage of a user's corpus can ground (generate --corpus): the asymmetric ones.
GROUNDED_KINDS: tuple[str, ...] = SUBTYPES
