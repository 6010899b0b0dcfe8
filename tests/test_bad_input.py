"""Issue 10: values that were accepted, or ended in a traceback, now end with one line and exit 2.

Every case runs the real command line (the `cli` fixture) or the real config loader; a run that
must not start is pointed at the fake server, so that a missing check shows as a wrong status
rather than as a run against a real endpoint.
"""

import re
import shutil

import pytest

from conftest import read_jsonl
from synthgen.config import load_config
from synthgen.names import MAX_EXAMPLES, MAX_REQUESTS
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


# -- 7: unknown languages ------------------------------------------------------------------------

def test_a_misspelt_language_is_refused_with_the_closest_names(cli, endpoint, workdir):
    line = one_line(cli("generate", "--n", 2, "--languages", "Englsh=0.5,german=0.5", *endpoint), "'Englsh'")
    assert "English" in line.split("'Englsh'", 1)[1]  # the suggestion
    assert not (workdir / "data").exists()


def test_an_unknown_language_is_named_before_the_bitext_rule(cli, endpoint, workdir):
    one_line(cli("generate", "--n", 2, "--kinds", "sts=1", "--languages", "Klingon=1", *endpoint),
             "unknown language 'Klingon'")
    # With bitext in the mix a single language used to be reported as "bitext needs two languages".
    line = one_line(cli("generate", "--n", 2, "--languages", "Klingon=1", *endpoint), "unknown language 'Klingon'")
    assert "bitext" not in line


def test_a_word_of_two_known_names_suggests_both(cli, endpoint):
    one_line(cli("generate", "--n", 2, "--languages", "Chinese=0.6,English=0.4", *endpoint),
             "unknown language 'Chinese'", "Chinese Simplified", "Chinese Traditional")


def test_languages_are_matched_case_insensitively_and_written_canonically(cli, endpoint, workdir):
    config = load_config(overrides={"languages": {"german": 1, "CHINESE SIMPLIFIED": 1, " english ": 2}})
    assert config.languages == {"German": 1, "Chinese Simplified": 1, "English": 2}
    result = cli("generate", "--n", 4, "--kinds", "sts=1", "--languages", "german=1", *endpoint)
    assert result.status == 0, result.err
    assert {e["language"] for e in read_jsonl(workdir / "data" / "raw" / "examples.jsonl")} == {"German"}


def test_unknown_and_twice_named_languages_in_a_config_file(workdir):
    with pytest.raises(BadInput, match="config: languages: unknown language 'Deutsch'"):
        load_config(write(workdir / "a.toml", "[languages]\nDeutsch = 1\nEnglish = 1\n"))
    with pytest.raises(BadInput, match="config: languages: .*English.*twice"):
        load_config(write(workdir / "b.toml", "[languages]\nEnglish = 1\nenglish = 1\nGerman = 1\n"))


def test_a_config_file_can_add_languages_outside_the_default_list(workdir):
    path = write(workdir / "mine.toml", 'extra_languages = ["Cantonese"]\n[languages]\ncantonese = 1\nEnglish = 1\n')
    assert load_config(path).languages == {"Cantonese": 1, "English": 1}


def test_the_known_languages_are_the_default_tables_names_whatever_a_user_table_holds(workdir):
    default = load_config().languages
    assert len(default) == 100
    # A user's [languages] table replaces the default one, but every default name stays known.
    path = write(workdir / "mine.toml", "[languages]\nWelsh = 1\nBreton = 1\n")
    config = load_config(path, overrides={"languages": {"yiddish": 1, "afrikaans": 1}})
    assert config.languages == {"Yiddish": 1, "Afrikaans": 1}


# -- 9: bounds on N and on the request cap -------------------------------------------------------

# "--config missing.toml" ends the command body at once: should the option's own bound ever be
# missing, the test fails on the message instead of starting a run of 1e23 examples.
STOP = ["--config", "missing.toml"]


@pytest.mark.parametrize("value", ["99999999999999999999999", str(MAX_EXAMPLES + 1)])
def test_n_is_bounded_and_the_message_says_the_maximum(cli, endpoint, value):
    one_line(cli("generate", "--n", value, *STOP, *endpoint), "--n", str(MAX_EXAMPLES))


@pytest.mark.parametrize("value", ["1" + "0" * 22, str(MAX_REQUESTS + 1)])
def test_max_requests_is_bounded_and_the_message_says_the_maximum(cli, endpoint, value):
    one_line(cli("generate", "--n", 5, "--max-requests", value, *STOP, *endpoint), "--max-requests", str(MAX_REQUESTS))


def test_the_maxima_themselves_are_accepted(cli, endpoint):
    result = cli("generate", "--n", MAX_EXAMPLES, "--max-requests", MAX_REQUESTS, *STOP, *endpoint)
    one_line(result, "config file not found")  # past the options: the command body ran


def test_the_request_cap_factor_is_bounded(workdir):
    with pytest.raises(BadInput, match="config: generate.request_cap_factor"):
        load_config(write(workdir / "mine.toml", "[generate]\nrequest_cap_factor = 1e20\n"))


# -- 13: config keys, --base-url, repeated weights, help defaults, the resume fingerprint ---------

@pytest.mark.parametrize("text,where", [
    ("llm = 5\n", "config: llm: must be a table"),
    ('generate = "fast"\n', "config: generate: must be a table"),
    ("[llm]\nmax_tokens = 5\n", "config: llm.max_tokens: must be a table"),
    ("kinds = 1\n", "config: kinds: must be a table"),
    ("[placeholders]\nsts = [1]\n", "config: placeholders.sts: must be a table"),
])
def test_a_scalar_where_a_table_belongs_names_that_key(cli, endpoint, workdir, text, where):
    write(workdir / "mine.toml", text)
    with pytest.raises(BadInput, match=re.escape(where)):
        load_config(workdir / "mine.toml")
    # The flags (all None here but --base-url and --model) must not turn the scalar into a table.
    line = one_line(cli("generate", "--n", 2, "--config", "mine.toml", *endpoint), where)
    assert "backend" not in line


def test_an_empty_base_url_flag_is_refused(cli, workdir):
    one_line(cli("generate", "--n", 2, "--base-url", "", "--model", "m"), "--base-url")
    one_line(cli("brainstorm", "--base-url", " "), "--base-url")
    one_line(cli("eval", "retrieval", "held-out.jsonl", "--base-url", ""), "--base-url")
    assert not (workdir / "data").exists()
    # An empty OPENAI_BASE_URL still means unset.
    assert load_config(environ={"OPENAI_BASE_URL": ""}).llm.base_url == ""


@pytest.mark.parametrize("flags,name", [
    (["--kinds", "sts=0.5,sts=0.2"], "'sts'"),
    (["--kinds", "sts=1", "--languages", "English=0.5,German=0.5,english=0.2"], "'english'"),
])
def test_a_weight_given_twice_is_refused(cli, endpoint, workdir, flags, name):
    one_line(cli("generate", "--n", 2, *flags, *endpoint), name, "twice")
    assert not (workdir / "data").exists()


def _option_help(help_text: str, option: str) -> str:
    """One option's entry in a --help page, whitespace folded (and a line broken after a hyphen joined)."""
    text = re.sub(r"-\s+", "-", " ".join(help_text.split()))
    match = re.search(rf"(?:^| ){re.escape(option)} (.*?)(?= --[a-z]|$)", text)
    assert match, f"{option} not in the help"
    return match.group(1)


def test_help_shows_the_default_configs_values(cli):
    config = load_config()
    expected = {
        "--seed": str(config.generate.seed),
        "--concurrency": str(config.generate.concurrency),
        "--model": config.llm.model,
        "--backend": config.llm.backend,
        "--rpm": f"{config.llm.rpm:g}",
        "--tpm": f"{config.llm.tpm:g}",
        "--kinds": ",".join(f"{k}={w:g}" for k, w in config.kinds.items()),
    }
    generate_help = cli("generate", "--help").out
    brainstorm_help = cli("brainstorm", "--help").out
    for option, value in expected.items():
        assert f"[default from config: {value}]" in _option_help(generate_help, option), option
        if option not in ("--seed", "--kinds"):
            assert f"[default from config: {value}]" in _option_help(brainstorm_help, option), option
    assert f"[default from config: {config.brainstorm.rounds}]" in _option_help(brainstorm_help, "--rounds")
    languages = _option_help(generate_help, "--languages")
    assert f"[default from config: {len(config.languages)} languages" in languages
    assert f"English={config.languages['English']:g}" in languages


def test_the_resume_fingerprint_holds_the_local_sampling_settings(workdir):
    base = load_config().fingerprint_data()
    for key, value in [("top_k", 1), ("min_p", 0.2), ("dry_multiplier", 0), ("dry_base", 3.0),
                       ("dry_allowed_length", 2), ("n_ctx", 4096), ("max_tokens", {"sts": 100})]:
        other = load_config(overrides={"local": {key: value}}).fingerprint_data()
        assert other != base, key


def test_a_resume_with_other_dry_settings_is_refused(cli, endpoint, workdir):
    assert cli("generate", "--n", 2, "--kinds", "sts=1", *endpoint).status == 0
    write(workdir / "dry.toml", "[local]\ndry_multiplier = 0\n")
    line = one_line(cli("generate", "--n", 4, "--kinds", "sts=1", "--config", "dry.toml", *endpoint), "other settings")
    assert "local" in line
    assert cli("generate", "--n", 4, "--kinds", "sts=1", *endpoint).status == 0  # the same settings resume
