"""Near duplicates by MinHash LSH (rensa): the first of a group is kept, the rest name it.

Texts are compared as sets of shingles: runs of `word_shingle` words, or of `char_shingle`
characters for languages written without spaces between words, after the same normalisation as
task_key (case, punctuation and spacing ignored). Memory grows with the number of texts kept (one
signature of num_perm 32-bit slots each), not with their length.
"""

from typing import Optional

from rensa import RMinHash, RMinHashDeduplicator

from synthgen.store import task_key

# Languages of the XLM-R list written without spaces between words: shingled by characters.
UNSPACED = frozenset({"Chinese Simplified", "Chinese Traditional", "Japanese", "Thai", "Lao", "Khmer", "Burmese",
                      "Burmese Zawgyi"})
SEED = 42  # fixed: the same input gives the same signatures, so the same output


def shingles(text: str, language: str, word_shingle: int = 3, char_shingle: int = 5) -> list[str]:
    """The text's shingles; a text shorter than one shingle is one shingle of itself."""
    normal = task_key(text)
    if language in UNSPACED:
        squeezed = normal.replace(" ", "")
        n = char_shingle
        return [squeezed[i:i + n] for i in range(max(1, len(squeezed) - n + 1))]
    words = normal.split()
    n = word_shingle
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


class NearDuplicates:
    """Remembers the texts kept so far; says which kept one a new text nearly repeats."""

    def __init__(self, threshold: float, num_perm: int = 128, bands: int = 16, word_shingle: int = 3,
                 char_shingle: int = 5):
        self.threshold = threshold
        self.num_perm = num_perm
        self.word_shingle = word_shingle
        self.char_shingle = char_shingle
        # LSH finds the candidates, each then checked against the threshold by its estimated
        # similarity. rensa's default banding missed half of the pairs at 0.94 with threshold 0.9.
        self._index = RMinHashDeduplicator(threshold=threshold, num_perm=num_perm, use_lsh=True, num_bands=bands,
                                           seed=SEED)
        self._order: dict[str, int] = {}  # kept key -> when it was kept

    def signature(self, text: str, language: str) -> RMinHash:
        sketch = RMinHash(num_perm=self.num_perm, seed=SEED)
        sketch.update(shingles(text, language, self.word_shingle, self.char_shingle))
        return sketch

    def first_like(self, key: str, text: str, language: str) -> Optional[str]:
        """The key of the earliest kept text this one nearly repeats (estimated Jaccard similarity at
        least the threshold); None, and this text is kept, when there is none."""
        sketch = self.signature(text, language)
        matches = self._index.get_duplicates(sketch)
        if matches:
            return min(matches, key=self._order.__getitem__)
        self._index.add(key, sketch)
        self._order[key] = len(self._order)
        return None
