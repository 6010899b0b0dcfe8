"""Issue 10: values that were accepted, or ended in a traceback, now end with one line and exit 2.

Every case runs the real command line (the `cli` fixture) or the real config loader; a run that
must not start is pointed at the fake server, so that a missing check shows as a wrong status
rather than as a run against a real endpoint.
"""

import shutil

import pytest

from synthgen.config import load_config
from synthgen.errors import BadInput
from synthgen.prompts import PromptError, Templates
from synthgen.resources import resource_dir


def one_line(result, *fragments: str) -> str:
    """The result is bad input: status 2, one line on stderr holding every fragment."""
    assert result.status == 2, (result.status, result.out, result.err)
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


# -- 5: nan and inf ------------------------------------------------------------------------------

NON_FINITE_FLAGS = [
    (["--kinds", "short-long=nan"], "short-long"),
    (["--kinds", "short-long=inf,sts=1"], "short-long"),
    (["--kinds", "sts=1e999"], "sts"),
    (["--languages", "English=nan"], "English"),
    (["--kinds", "sts=1", "--languages", "English=inf,German=1"], "English"),
    (["--rpm", "nan"], "--rpm"),
    (["--tpm", "inf"], "--tpm"),
    (["--rpm", "-1"], "--rpm"),
]


@pytest.mark.parametrize("flags,name", NON_FINITE_FLAGS, ids=[" ".join(f) for f, _ in NON_FINITE_FLAGS])
def test_non_finite_flags_are_refused_before_anything_is_written(cli, endpoint, workdir, flags, name):
    result = cli("generate", "--n", 2, *flags, *endpoint)
    one_line(result, name, "finite")
    assert not (workdir / "data").exists()


NON_FINITE_TOML = [
    ("[kinds]\nshort-long = nan\n", "kinds"),
    ("[kinds]\nsts = inf\nbitext = 1\n", "kinds"),
    ("[languages]\nEnglish = nan\nGerman = 1\n", "languages"),
    ("[llm]\ntemperature = nan\n", "llm.temperature"),
    ("[llm]\ntop_p = nan\n", "llm.top_p"),
    ("[llm]\ntimeout = inf\n", "llm.timeout"),
    ("[llm]\nretry_budget = inf\n", "llm.retry_budget"),
    ("[llm]\nrpm = inf\n", "llm.rpm"),
    ("[local]\nmin_p = nan\n", "local.min_p"),
    ("[local]\ndry_multiplier = inf\n", "local.dry_multiplier"),
    ("[local]\ndry_base = nan\n", "local.dry_base"),
    ("[generate]\nrequest_cap_factor = inf\n", "generate.request_cap_factor"),
    ("[placeholders.sts]\nhigh_score = [4, nan]\n", "placeholders"),
    ("[placeholders.short-long]\nnum_words = [inf]\n", "placeholders"),
]


@pytest.mark.parametrize("text,where", NON_FINITE_TOML, ids=[t.replace("\n", " ") for t, _ in NON_FINITE_TOML])
def test_non_finite_numbers_in_a_config_file_are_refused(workdir, text, where):
    with pytest.raises(BadInput) as caught:
        load_config(write(workdir / "mine.toml", text))
    message = str(caught.value)
    assert message.startswith(f"config: {where}"), message
    assert "finite" in message, message


def test_a_non_finite_config_file_is_one_line_from_the_cli(cli, endpoint, workdir):
    write(workdir / "mine.toml", "[kinds]\nsts = nan\nbitext = 1\n")
    one_line(cli("generate", "--n", 2, "--config", "mine.toml", *endpoint), "config: kinds", "finite")
    assert not (workdir / "data").exists()


# -- 6: files that are not UTF-8 -----------------------------------------------------------------

def test_a_config_file_that_is_not_utf8_is_named(cli, endpoint, workdir):
    (workdir / "latin1.toml").write_bytes('[llm]\nmodel = "caf\xe9"\n'.encode("latin-1"))
    one_line(cli("generate", "--n", 2, "--config", "latin1.toml", *endpoint), "latin1.toml", "UTF-8")
    (workdir / "utf16.toml").write_bytes('[llm]\nmodel = "x"\n'.encode("utf-16"))
    one_line(cli("brainstorm", "--config", "utf16.toml", *endpoint), "utf16.toml", "UTF-8")


@pytest.fixture
def latin1_prompts(workdir):
    """A copy of the shipped prompts/ whose sts template is saved in Latin-1, and a config using it."""
    folder = workdir / "myprompts"
    shutil.copytree(resource_dir("prompts"), folder)
    for stage, kind in (("generate", "sts"), ("brainstorm", "short-long")):
        path = folder / stage / f"{kind}.txt"
        path.write_bytes((path.read_text(encoding="utf-8") + "\nRéponds en JSON.\n").encode("latin-1"))
    write(workdir / "mine.toml", 'prompts = "myprompts"\n')
    return folder


def test_a_template_that_is_not_utf8_is_named(latin1_prompts):
    with pytest.raises(PromptError, match=r"myprompts/(generate/sts|brainstorm/short-long)\.txt.*UTF-8"):
        Templates(latin1_prompts)


def test_a_users_prompts_folder_that_is_not_utf8_is_one_line(cli, endpoint, workdir, latin1_prompts):
    one_line(cli("generate", "--n", 2, "--kinds", "sts=1", "--config", "mine.toml", *endpoint), "myprompts", "UTF-8")
    one_line(cli("brainstorm", "--subtype", "short-long", "--config", "mine.toml", *endpoint), "myprompts", "UTF-8")
