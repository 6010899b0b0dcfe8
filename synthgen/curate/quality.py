"""The quality figures curate's checks make possible, measured on a dataset without changing it
(`synthgen stats --quality`): language agreement per language, the near-duplicate rate, and through
the embedder (its cache shared with curate) the positive's rank among the documents of its kind and
the margin cos(q, positive) - cos(q, negative), with the share where the negative wins.

A part that cannot run here (no language identifier, no embedder) is left out with the reason.
"""

import collections
from typing import Any, Optional

from synthgen.config import Config
from synthgen.errors import BadInput
from synthgen.store import Example, Spool
from synthgen.summary import summarise


class Quality:
    def __init__(self, config: Config, show_progress: bool = False):
        from synthgen.curate.retrieval import CONSISTENCY, FALSE_NEGATIVE, RetrievalStage, open_cache
        from synthgen.curate.run import LanguageCheck, NearDuplicateCheck

        self.skipped: dict[str, str] = {}
        self.language: Optional[LanguageCheck] = None
        try:
            self.language = LanguageCheck(config)
        except BadInput as exc:
            self.skipped["language"] = str(exc)
        self.near = NearDuplicateCheck(config)
        # Measured, never acted on: a negative that wins is counted, not dropped.
        settings = config.curate.model_copy(update={
            "false_negative": config.curate.false_negative.model_copy(update={"action": "keep"})})
        self.stage: Optional[RetrievalStage] = None
        try:
            cache = open_cache(settings.embed, show_progress)
        except BadInput as exc:
            self.skipped["embedding"] = str(exc)
        else:
            self.stage = RetrievalStage(config.model_copy(update={"curate": settings}), cache,
                                        [CONSISTENCY, FALSE_NEGATIVE], 0, Spool(), show_progress=show_progress)
        self.by_language: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.examples = 0
        self.near_duplicates = 0

    def add(self, example: Example) -> None:
        if self.language is not None:
            before = self.language.counts["texts checked"]
            verdict = self.language.judge(example)
            if self.language.counts["texts checked"] > before:
                counts = self.by_language[example.language]
                counts["judged"] += 1
                counts["agree"] += verdict is None
        self.near_duplicates += self.near.judge(example) is not None
        if self.stage is not None:
            self.stage.add(example)
        self.examples += 1

    def report(self) -> dict[str, Any]:
        for check in (self.language, self.near):
            if check is not None:
                check.close()
        result: dict[str, Any] = {
            "near_duplicates": {"examples": self.examples, "near_duplicates": self.near_duplicates,
                                "share": _share(self.near_duplicates, self.examples)},
            "skipped": self.skipped,
        }
        if self.language is not None:
            result["language_agreement"] = {
                language: {"judged": c["judged"], "agree": c["agree"], "share": _share(c["agree"], c["judged"])}
                for language, c in sorted(self.by_language.items(), key=lambda item: -item[1]["judged"])
            }
        if self.stage is not None:
            try:
                self.stage.run()
            finally:
                self.stage.spool.close()
            ranks = self.stage.ranks
            ranked = sum(ranks.values())
            k = self.stage.config.consistency.top_k
            margins = self.stage.margins
            result["retrieval"] = {
                "embedder": self.stage.cache.embedder.name,
                "examples": ranked,
                "passed_through": self.examples - ranked,
                "positive_rank": {"first": _share(ranks[1], ranked),
                                  f"top_{k}": _share(sum(n for r, n in ranks.items() if r <= k), ranked),
                                  **(summarise(ranks) or {})},
                "margin": {"examples": len(margins),
                           "negative_wins": _share(sum(m < 0 for m in margins), len(margins)),
                           **_quantiles(margins)},
            }
        return result


def _share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def _quantiles(values: list[float]) -> dict[str, Optional[float]]:
    """min, 5th, 25th, 50th, 75th percentile and max (nearest rank), to 4 places."""
    if not values:
        return {"min": None, "p5": None, "p25": None, "median": None, "p75": None, "max": None}
    ordered = sorted(values)
    at = lambda q: round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 4)  # noqa: E731
    return {"min": round(ordered[0], 4), "p5": at(0.05), "p25": at(0.25), "median": at(0.5), "p75": at(0.75),
            "max": round(ordered[-1], 4)}
