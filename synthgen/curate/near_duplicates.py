"""Near duplicates by MinHash LSH (rensa): the first of a group is kept, the rest name it.

Texts are compared as sets of shingles: runs of `word_shingle` words, or of `char_shingle`
characters for languages written without spaces between words, with case, punctuation and
spacing ignored. LSH bands find the candidates; each is then held
to the threshold by the signatures' estimate (memory grows with the number of texts kept, one
signature each, not with their length) or, with `exact`, by the shingle sets themselves (for short
texts such as tasks, where the estimate's noise of a few hundredths decides too many pairs).
"""

import string
from typing import Optional, Union

from rensa import RMinHash, RMinHashLSH

# Languages of the XLM-R list written without spaces between words: shingled by characters.
UNSPACED = frozenset({"Chinese Simplified", "Chinese Traditional", "Japanese", "Thai", "Lao", "Khmer", "Burmese",
                      "Burmese Zawgyi"})
SEED = 42  # fixed: the same input gives the same signatures, so the same output


# Punctuation read as a space: ASCII's and the common CJK and typographic marks. str.translate runs
# in C; a Unicode-wide regular expression (task_key's) costs ten times as much, and shingling is
# most of this check's time.
_SPACES = str.maketrans({mark: " " for mark in string.punctuation + "，。、！？：；「」『』（）【】《》〈〉・…—–“”‘’«»¿¡"})


def shingles(text: str, language: str, word_shingle: int = 3, char_shingle: int = 5) -> list[str]:
    """The text's shingles; a text shorter than one shingle is one shingle of itself."""
    words = text.casefold().translate(_SPACES).split()
    if language in UNSPACED:
        squeezed = "".join(words)
        if len(squeezed) <= char_shingle:
            return [squeezed]
        return [squeezed[i:i + char_shingle] for i in range(len(squeezed) - char_shingle + 1)]
    if len(words) <= word_shingle:
        return [" ".join(words)]
    # The words split once, and shifted lists rather than a generator: 60% of the time it took.
    return list(map(" ".join, zip(*[words[i:] for i in range(word_shingle)])))


class NearDuplicates:
    """Remembers the texts kept so far; says which kept one a new text nearly repeats."""

    def __init__(self, threshold: float, num_perm: int = 128, bands: int = 16, word_shingle: int = 3,
                 char_shingle: int = 5, exact: bool = False):
        self.threshold = threshold
        self.num_perm = num_perm
        self.word_shingle = word_shingle
        self.char_shingle = char_shingle
        self.exact = exact
        # Bands set explicitly: rensa's default banding found 16 of 30 planted pairs at 0.94.
        self._index = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)
        self._kept: list[Union[RMinHash, frozenset[str]]] = []

    def first_like(self, text: str, language: str) -> Optional[int]:
        """The number (0, 1, ...) of the earliest kept text this one nearly repeats; None, and this
        text is kept as the next number, when there is none."""
        pieces = shingles(text, language, self.word_shingle, self.char_shingle)
        sketch = RMinHash(num_perm=self.num_perm, seed=SEED)
        sketch.update(pieces)
        for candidate in sorted(self._index.query(sketch)):
            if self._similarity(candidate, sketch, pieces) >= self.threshold:
                return candidate
        self._index.insert(len(self._kept), sketch)
        self._kept.append(frozenset(pieces) if self.exact else sketch)
        return None

    def _similarity(self, candidate: int, sketch: RMinHash, pieces: list[str]) -> float:
        kept = self._kept[candidate]
        if isinstance(kept, frozenset):
            mine = set(pieces)
            return len(kept & mine) / len(kept | mine)
        return kept.jaccard(sketch)
