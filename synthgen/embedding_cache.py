"""Embeddings computed once: every text's vector kept on disk, keyed by the embedder and the text.

One folder per embedder identity (its model, and for a local folder its files' sizes and times)
under $XDG_CACHE_HOME/synthgen/embeddings, or the folder given:
- keys.bin: the 16-byte BLAKE2b digest of each text, one after another;
- vectors.f32: its unit vector (float32, `dim` of them) at the same position;
- meta.json: the embedder's identity and `dim`.
Vectors are appended before their keys, so a crash leaves at most a tail nobody can look up, cut
before the next append. Appends hold a file lock: processes sharing a cache (curate and stats at
once) wait for each other instead of interleaving. Readers look up rows through the keys alone,
and the vectors file is memory-mapped, so a lookup costs the rows asked for, not the whole cache.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from synthgen.embedders import Embedder
from synthgen.errors import BadInput
from synthgen.files import write_atomic
from synthgen.resources import user_cache

DIGEST_SIZE = 16
# Texts embedded per call: few enough that the progress bar moves and memory stays bounded, many
# enough that sentence-transformers' own length-sorting within a call keeps padding low.
CHUNK = 4096


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_SIZE).digest()


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise BadInput("embedding checks need numpy: pip install numpy (it comes with the train extra)") from None
    return numpy


class EmbeddingCache:
    def __init__(self, embedder: Embedder, root: Optional[Path] = None):
        self.embedder = embedder
        identity = json.dumps(embedder.identity(), sort_keys=True, ensure_ascii=False)
        key = hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in embedder.name)[-60:].strip("-.")
        self.folder = (root or user_cache("embeddings")) / f"{slug or 'model'}-{key}"
        self.keys = self.folder / "keys.bin"
        self.vectors_file = self.folder / "vectors.f32"
        self.meta = self.folder / "meta.json"
        self._identity = identity
        self._rows: dict[bytes, int] = {}
        self._keys_read = 0  # bytes of keys.bin read into _rows
        self.dim: Optional[int] = None
        self.computed = 0  # texts this process embedded
        self.reused = 0  # texts found in the cache

    def vectors(self, texts: Sequence[str], show_progress: bool = True, desc: str = "embedding") -> Any:
        """A float32 matrix, one unit vector per text in order; texts not cached are embedded first."""
        digests = [text_digest(text) for text in texts]
        missing = self.missing(digests)
        if missing:
            self.embed(((d, t) for d, t in zip(digests, texts) if d in missing), len(missing), show_progress, desc)
        return self.vectors_of(digests)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        """The digests with no vector in the cache (the others are counted reused)."""
        self._refresh()
        distinct = set(digests)
        missing = {d for d in distinct if d not in self._rows}
        self.reused += len(distinct) - len(missing)
        return missing

    def vectors_of(self, digests: Sequence[bytes]) -> Any:
        """The vectors of texts in the cache, by their digests: a float32 matrix in order."""
        np = _numpy()
        if not digests:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        self._refresh()
        rows = np.fromiter((self._rows[d] for d in digests), dtype=np.int64, count=len(digests))
        return np.asarray(self._matrix()[rows], dtype=np.float32)

    def embed(self, texts: Iterable[tuple[bytes, str]], total: int, show_progress: bool = True,
              desc: str = "embedding") -> None:
        """Embed and keep each (digest, text) not cached yet, CHUNK at a time as they come: the
        texts are never all in memory at once. total: how many will come, for the progress bar."""
        from filelock import FileLock
        from tqdm import tqdm

        _numpy()  # a missing numpy fails before the lock is taken
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / ".lock")), \
                tqdm(total=total, desc=desc, unit="text", disable=None if show_progress else True) as bar:
            self._refresh()  # another process may have added some meanwhile
            self._cut_torn_tail()
            chunk: dict[bytes, str] = {}
            for digest, text in texts:
                if digest not in self._rows:
                    chunk[digest] = text
                if len(chunk) == CHUNK:
                    self._embed_chunk(chunk, bar)
                    chunk = {}
            if chunk:
                self._embed_chunk(chunk, bar)

    def _embed_chunk(self, chunk: dict[bytes, str], bar: Any) -> None:
        matrix = _numpy().ascontiguousarray(self.embedder.embed(list(chunk.values())), dtype="float32")
        self._append(list(chunk), matrix)
        self.computed += len(chunk)
        bar.update(len(chunk))

    # -- the files -------------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Read keys appended (by this or another process) since the last look."""
        if self.dim is None and self.meta.is_file():
            meta = json.loads(self.meta.read_text())
            self.dim = int(meta["dim"])
        if self.dim is None or not self.keys.is_file():
            return
        complete = min(self.keys.stat().st_size // DIGEST_SIZE, self._vector_count())
        if complete * DIGEST_SIZE <= self._keys_read:
            return
        with open(self.keys, "rb") as f:
            f.seek(self._keys_read)
            data = f.read(complete * DIGEST_SIZE - self._keys_read)
        first = self._keys_read // DIGEST_SIZE
        for n in range(len(data) // DIGEST_SIZE):
            self._rows.setdefault(data[n * DIGEST_SIZE:(n + 1) * DIGEST_SIZE], first + n)
        self._keys_read += len(data)

    def _vector_count(self) -> int:
        size = self.vectors_file.stat().st_size if self.vectors_file.is_file() else 0
        return size // (4 * self.dim) if self.dim else 0

    def _matrix(self) -> Any:
        np = _numpy()
        return np.memmap(self.vectors_file, dtype=np.float32, mode="r", shape=(self._keys_read // DIGEST_SIZE, self.dim))

    def _cut_torn_tail(self) -> None:
        """Cut keys or vectors beyond the last complete pair: the leftovers of a crash."""
        if self.dim is None:
            return
        rows = self._keys_read // DIGEST_SIZE
        for path, size in ((self.keys, rows * DIGEST_SIZE), (self.vectors_file, rows * 4 * self.dim)):
            if path.is_file() and path.stat().st_size > size:
                os.truncate(path, size)

    def _append(self, digests: list[bytes], matrix: Any) -> None:
        if self.dim is None:
            self.dim = int(matrix.shape[1])
            write_atomic(self.meta, (json.dumps({"embedder": json.loads(self._identity), "dim": self.dim},
                                                indent=2, ensure_ascii=False) + "\n").encode())
        if matrix.shape != (len(digests), self.dim):
            raise BadInput(f"the embedder returned vectors of shape {matrix.shape}, expected ({len(digests)}, {self.dim})")
        for path, data in ((self.vectors_file, matrix.tobytes()), (self.keys, b"".join(digests))):
            with open(path, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        first = self._keys_read // DIGEST_SIZE
        for n, digest in enumerate(digests):
            self._rows[digest] = first + n
        self._keys_read += len(digests) * DIGEST_SIZE
