"""Examples grounded in a passage of the user's corpus (generate --corpus), as FRet and InPars do:
the LLM reads the passage and writes the task and the other side of the pair; the passage itself is
written by nobody.

- short-long: a task and a query the passage answers (query -> passage);
- long-short: a classification task and the passage's label (passage -> label);
- short-short: a short query and the passage's sentence that answers it, copied (query -> sentence;
  a sentence not found in the passage is rejected);
- long-long: a passage-length text the passage matches (text -> passage).

With a task set (generate --corpus --tasks), the task is given and the LLM writes the rest under it.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from synthgen.answers import Verdict
from synthgen.kinds import LANGUAGE
from synthgen.schemas import (
    Answer,
    GroundedLabelAnswer,
    GroundedLabelWithTask,
    GroundedQueryAnswer,
    GroundedQueryWithTask,
    GroundedSentenceAnswer,
    GroundedSentenceWithTask,
    GroundedTextAnswer,
    GroundedTextWithTask,
)

PASSAGE = "passage"  # the template placeholder the passage's text fills
NOT_IN_PASSAGE = "not-in-passage"


@dataclass(frozen=True)
class GroundedKind:
    name: str
    answer: type[Answer]  # the LLM writes the task too
    given_task_answer: type[Answer]  # the task is given (generate --corpus --tasks)
    # The template's placeholders besides the passage, in the order they are sampled (a subset of
    # the kind's own, so the same [placeholders.<kind>] value sets serve).
    placeholders: tuple[str, ...]
    # (query, positive) of a validated answer and the passage's text.
    sides: Callable[[dict[str, str], str], tuple[str, str]]

    def check(self, answer: dict[str, str], passage: str) -> Optional[Verdict]:
        """A reason to reject an answer that is valid JSON of the right shape, or None."""
        if "sentence" in answer and _squeeze(answer["sentence"]) not in _squeeze(passage):
            return Verdict(reason=NOT_IN_PASSAGE, detail="the sentence is not copied from the passage")
        return None


def _squeeze(text: str) -> str:
    """White space folded: a copied sentence may break lines differently."""
    return " ".join(text.split())



GROUNDED: dict[str, GroundedKind] = {
    kind.name: kind
    for kind in (
        GroundedKind("short-long", GroundedQueryWithTask, GroundedQueryAnswer,
                     ("query_type", "query_length", "clarity", "difficulty", LANGUAGE),
                     lambda answer, passage: (answer["user_query"], passage)),
        GroundedKind("long-short", GroundedLabelWithTask, GroundedLabelAnswer, ("difficulty", "clarity", LANGUAGE),
                     lambda answer, passage: (passage, answer["label"])),
        GroundedKind("short-short", GroundedSentenceWithTask, GroundedSentenceAnswer, (LANGUAGE,),
                     lambda answer, passage: (answer["user_query"], _squeeze(answer["sentence"]))),
        GroundedKind("long-long", GroundedTextWithTask, GroundedTextAnswer, (LANGUAGE,),
                     lambda answer, passage: (answer["matching_text"], passage)),
    )
}

