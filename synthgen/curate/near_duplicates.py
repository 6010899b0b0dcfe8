"""Near duplicates by MinHash LSH (rensa): the first of a group is kept, the rest name it.

Texts are compared as sets of shingles: runs of `word_shingle` words, or of `char_shingle`
characters for languages written without spaces between words, with case, punctuation and
spacing ignored. LSH bands find the candidates; each is then held
to the threshold by the signatures' estimate (memory grows with the number of texts kept, one
signature each, not with their length) or, with `exact`, by the shingle sets themselves (for short
texts such as tasks, where the estimate's noise of a few hundredths decides too many pairs).

Shingling and signing are most of the time and need nothing but the text, so a large batch is
signed in worker processes, a chunk at a time; this process keeps the index and asks it about
each signature in input order, so the answers are those of one text at a time, whatever the
number of processes.
"""

import multiprocessing
import os
import string
from itertools import chain
from multiprocessing.pool import Pool
from typing import Iterable, Optional, Sequence, Union

from rensa import RMinHash, RMinHashLSH

# Languages of the XLM-R list written without spaces between words: shingled by characters.
UNSPACED = frozenset({"Chinese Simplified", "Chinese Traditional", "Japanese", "Thai", "Lao", "Khmer", "Burmese",
                      "Burmese Zawgyi"})
SEED = 42  # fixed: the same input gives the same signatures, so the same output
# Below this many texts in a batch, worker processes cost more than they save (a text of 100 words
# takes some 30 µs to sign; starting the pool, and each chunk's round trip, take milliseconds).
PARALLEL_FROM = 1_000
# Texts a worker signs at a time. This process answers for one chunk while the workers sign the
# next; smaller chunks cost more in handing texts and signatures between processes (2 shared cores,
# batches of 4,096: 24,000 texts/s in chunks of 256, 28,000 in chunks of 1,024).
CHUNK = 1024


# Punctuation read as a space: ASCII's and the common CJK and typographic marks. str.translate runs
# in C; a Unicode-wide regular expression (task_key's) costs ten times as much, and shingling is
# most of this check's time.
_SPACES = str.maketrans({mark: " " for mark in string.punctuation + "，。、！？：；「」『』（）【】《》〈〉・…—–“”‘’«»¿¡"})

Signed = tuple[RMinHash, Optional[frozenset[str]]]  # a text's signature, and its shingles if they are kept


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


def sign(texts: Sequence[str], languages: Sequence[str], num_perm: int, word_shingle: int, char_shingle: int,
         exact: bool) -> list[Signed]:
    """Each text's MinHash signature, with its shingle set where `exact` verification needs it."""
    signed = []
    for text, language in zip(texts, languages):
        pieces = shingles(text, language, word_shingle, char_shingle)
        sketch = RMinHash(num_perm=num_perm, seed=SEED)
        sketch.update(pieces)
        signed.append((sketch, frozenset(pieces) if exact else None))
    return signed


def _sign_chunk(job: tuple[Sequence[str], Sequence[str], int, int, int, bool]
                ) -> list[tuple[bytes, Optional[frozenset[str]]]]:
    """sign() in a worker; each signature goes back as its pickle state (bytes), which costs a third
    of pickling the object here and half of unpickling it in the process that rebuilds it."""
    return [(sketch.__getstate__(), pieces) for sketch, pieces in sign(*job)]


def _rebuild(state: bytes, num_perm: int) -> RMinHash:
    sketch = RMinHash.__new__(RMinHash, num_perm, SEED)
    sketch.__setstate__(state)
    return sketch


class NearDuplicates:
    """Remembers the texts kept so far; says which kept one a new text nearly repeats.

    Batches of PARALLEL_FROM texts or more are signed by a pool of `processes` workers (all the
    cores by default), started at the first such batch and ended by close() (or a with block)."""

    def __init__(self, threshold: float, num_perm: int = 128, bands: int = 16, word_shingle: int = 3,
                 char_shingle: int = 5, exact: bool = False, processes: Optional[int] = None):
        self.threshold = threshold
        self.num_perm = num_perm
        self.word_shingle = word_shingle
        self.char_shingle = char_shingle
        self.exact = exact
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        # Bands set explicitly: rensa's default banding found 16 of 30 planted pairs at 0.94.
        self._index = RMinHashLSH(threshold=threshold, num_perm=num_perm, num_bands=bands)
        self._kept: list[Union[RMinHash, frozenset[str]]] = []
        self._pool: Optional[Pool] = None

    def first_like(self, text: str, language: str) -> Optional[int]:
        """The number (0, 1, ...) of the earliest kept text this one nearly repeats; None, and this
        text is kept as the next number, when there is none."""
        return self.first_like_many([text], [language])[0]

    def first_like_many(self, texts: Sequence[str], languages: Sequence[str]) -> list[Optional[int]]:
        """first_like of each text in turn (a text may name one kept earlier in the same batch)."""
        if len(texts) != len(languages):
            raise ValueError(f"{len(texts)} texts but {len(languages)} languages")
        return [self._first_like_signed(sketch, pieces) for sketch, pieces in self._signed(texts, languages)]

    def close(self) -> None:
        """Ends the worker processes, if any were started; the index stays usable (in this process)."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> "NearDuplicates":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _signed(self, texts: Sequence[str], languages: Sequence[str]) -> Iterable[Signed]:
        settings = (self.num_perm, self.word_shingle, self.char_shingle, self.exact)
        if self.processes <= 1 or len(texts) < PARALLEL_FROM:
            return sign(texts, languages, *settings)
        if self._pool is None:
            self._pool = multiprocessing.Pool(self.processes)
        jobs = [(texts[start:start + CHUNK], languages[start:start + CHUNK], *settings)
                for start in range(0, len(texts), CHUNK)]
        chunks = self._pool.imap(_sign_chunk, jobs)  # in order, while the workers sign the next ones
        return ((_rebuild(state, self.num_perm), pieces) for state, pieces in chain.from_iterable(chunks))

    def _first_like_signed(self, sketch: RMinHash, pieces: Optional[frozenset[str]]) -> Optional[int]:
        for candidate in sorted(self._index.query(sketch)):
            if self._similarity(candidate, sketch, pieces) >= self.threshold:
                return candidate
        self._index.insert(len(self._kept), sketch)
        self._kept.append(pieces if pieces is not None else sketch)
        return None

    def _similarity(self, candidate: int, sketch: RMinHash, pieces: Optional[frozenset[str]]) -> float:
        kept = self._kept[candidate]
        if isinstance(kept, frozenset):
            assert pieces is not None
            return len(kept & pieces) / len(kept | pieces)
        return kept.jaccard(sketch)
