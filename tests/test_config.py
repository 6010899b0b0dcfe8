import pytest

from synthgen.config import load_config
from synthgen.errors import BadInput


def test_default_holds_the_papers_settings():
    config = load_config()
    assert config.llm.temperature == 1.0 and config.llm.top_p == 1.0
    assert len(config.languages) == 100
    total = sum(config.languages.values())
    assert config.languages["English"] / total == pytest.approx(0.431, abs=1e-3)
    assert config.value_set("short-long", "num_words") == ["50", "100", "200", "300", "400", "500"]
    assert config.value_set("sts", "high_score") == ["4", "4.5", "5"]


def test_precedence_flag_over_environment_over_file_over_default(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[llm]\nmodel = "from-file"\ntemperature = 0.5\n[generate]\nconcurrency = 3\n')
    assert load_config().llm.model == "gpt-4o-mini"
    assert load_config(path).llm.model == "from-file"
    env = {"SYNTHGEN_MODEL": "from-env", "SYNTHGEN_CONCURRENCY": "5"}
    config = load_config(path, env)
    assert config.llm.model == "from-env" and config.generate.concurrency == 5
    assert config.llm.temperature == 0.5  # the file's value survives where nothing overrides it
    config = load_config(path, env, {"llm": {"model": "from-flag"}, "generate": {"concurrency": None}})
    assert config.llm.model == "from-flag" and config.generate.concurrency == 5


def test_a_weight_table_in_a_file_replaces_the_default_one(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[languages]\nWelsh = 1\nBreton = 1\n[kinds]\nsts = 1\n')
    config = load_config(path)
    assert config.languages == {"Welsh": 1, "Breton": 1}
    assert config.active_kinds() == {"sts": 1}


def test_a_topic_table_in_a_file_replaces_the_default_one(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[brainstorm]\nexamples_per_task = 5\n[brainstorm.topics]\n"beekeeping" = 1\n')
    config = load_config(path)
    assert config.brainstorm.topics == {"beekeeping": 1}
    assert config.brainstorm.examples_per_task == 5 and config.brainstorm.num_tasks == 20  # the rest merges


def test_value_sets_are_changed_in_config(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[placeholders.sts]\nunit = ["tweet"]\n')
    assert load_config(path).value_set("sts", "unit") == ["tweet"]


@pytest.mark.parametrize(
    "text,message",
    [
        ('[placeholders.sts]\nunit = []\n', "placeholders.sts.unit needs at least one value"),
        ('[placeholders.sts]\ncolour = ["red"]\n', "no placeholder 'colour'"),
        ('[languages]\nWelsh = 1\n[kinds]\nbitext = 1\n', "bitext needs at least two languages"),
        ('[generate]\nconcurrency = 0\n', "generate.concurrency"),
        ('[llm]\nbogus = 1\n', "llm.bogus"),
    ],
)
def test_bad_configs_are_bad_input(tmp_path, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message):
        load_config(path)
