"""The sentence-transformers export trains: all-MiniLM-L6-v2, MultipleNegativesRankingLoss, CPU, offline.

The batches are built by sentence-transformers' own data collator, which takes the columns in
their order (anchor, positive, negative), as its trainer does. The scale of 50 is the paper's
temperature of 0.02.
"""

import contextlib
import math

import pytest

from stored import stored, write_jsonl

FACTS = [
    ("what is the capital of France", "Paris is the capital and largest city of France.",
     "Lyon is a large city in the east of France."),
    ("how many legs does a spider have", "Spiders have eight legs attached to the cephalothorax.",
     "Insects such as ants have six legs."),
    ("who painted the Mona Lisa", "Leonardo da Vinci painted the Mona Lisa in the early 1500s.",
     "Michelangelo painted the ceiling of the Sistine Chapel."),
    ("boiling point of water at sea level", "At sea level water boils at 100 degrees Celsius.",
     "Water freezes at 0 degrees Celsius."),
    ("largest planet in the solar system", "Jupiter is the largest planet orbiting the Sun.",
     "Saturn is known for its bright rings."),
    ("what do bees make", "Honey bees make honey from the nectar of flowers.",
     "Wasps build paper nests from chewed wood."),
    ("speed of light in vacuum", "Light travels at about 299,792 kilometres per second in a vacuum.",
     "Sound travels at about 343 metres per second in air."),
    ("who wrote Hamlet", "William Shakespeare wrote the tragedy Hamlet around 1600.",
     "Christopher Marlowe wrote Doctor Faustus."),
    ("chemical symbol for gold", "The chemical symbol for gold is Au, from the Latin aurum.",
     "Silver has the chemical symbol Ag."),
    ("tallest mountain on Earth", "Mount Everest is the highest mountain above sea level.",
     "K2 is the second highest mountain in the world."),
    ("what is photosynthesis", "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants.",
     "Respiration releases energy from sugar in cells."),
    ("longest river in Africa", "The Nile is the longest river in Africa.",
     "The Congo is the deepest river in Africa."),
    ("how many continents are there", "There are seven continents on Earth.",
     "There are five oceans on Earth."),
    ("what gas do humans exhale", "Humans breathe out carbon dioxide.",
     "Plants release oxygen during the day."),
    ("smallest prime number", "Two is the smallest prime number and the only even one.",
     "One is neither prime nor composite."),
    ("freezing point of water in Fahrenheit", "Water freezes at 32 degrees Fahrenheit.",
     "Water boils at 212 degrees Fahrenheit."),
]
TASK = "Given a question, retrieve a passage that answers it."


@contextlib.contextmanager
def one_thread(torch):
    """On a busy two-core machine, spinning OpenMP threads cost more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_sentence_transformers_export_trains_with_mnrl(cli, workdir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    torch = pytest.importorskip("torch")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    try:  # sentence-transformers 6 and later
        from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    except ImportError:  # 3 to 5
        from sentence_transformers.data_collator import SentenceTransformerDataCollator
        from sentence_transformers.losses import MultipleNegativesRankingLoss

    from synthgen.models import default_embedding_model_path

    records = [stored(i, query=q, positive=p, negative=n, task=TASK) for i, (q, p, n) in enumerate(FACTS)]
    records += [stored(100 + i, "short-short") for i in range(4)]  # no negative: they go to the pairs file
    write_jsonl(workdir / "data" / "raw" / "examples.jsonl", records)
    result = cli("export", "data/raw", "-f", "sentence-transformers", "--out", "st.jsonl", "-q")
    assert result.status == 0, result.err
    assert "wrote 16 (sentence-transformers)" in result.out

    data = datasets.load_dataset("json", data_files=str(workdir / "st.jsonl"), split="train",
                                 cache_dir=str(workdir / "hf"))
    columns = data.column_names
    assert columns == ["anchor", "positive", "negative"]

    torch.manual_seed(0)
    model = sentence_transformers.SentenceTransformer(str(default_embedding_model_path()), device="cpu")
    model.max_seq_length = 64  # the texts are short
    loss = MultipleNegativesRankingLoss(model, scale=50.0)  # temperature 0.02
    if hasattr(model, "preprocess"):
        collate = SentenceTransformerDataCollator(preprocess_fn=model.preprocess)
    else:
        collate = SentenceTransformerDataCollator(tokenize_fn=model.tokenize)

    def features(batch):
        """One dict of model inputs per column, in the dataset's column order (as the trainer does)."""
        return [{key[len(c) + 1:]: value for key, value in batch.items() if key.startswith(c + "_")} for c in columns]

    def batches(shuffle):
        return torch.utils.data.DataLoader(data, batch_size=8, shuffle=shuffle, collate_fn=collate)

    def loss_over_the_export():
        model.eval()  # no dropout: the same model gives the same number
        with torch.no_grad():
            return sum(loss(features(batch), None).item() for batch in batches(False))

    with one_thread(torch):
        before = loss_over_the_export()
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
        steps = []
        for _ in range(2):  # two epochs of two batches of 8
            model.train()
            for batch in batches(True):
                value = loss(features(batch), None)
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                steps.append(value.item())
        after = loss_over_the_export()
    assert len(steps) == 4 and all(math.isfinite(v) for v in steps + [before, after])
    assert after < before * 0.5, (before, after, steps)
    assert steps[-1] < steps[0], steps
