"""The embedding cache: the vectors a bare encode gives, computed once per embedder and text, shared
between processes, and whole again after a crash cut a write short."""

import json

import numpy as np
import pytest

from fake_embeddings import FakeEmbeddings, bag_of_words
from synthgen.embedders import EndpointEmbedder, SentenceTransformerEmbedder
from synthgen.embedding_cache import DIGEST_SIZE, EmbeddingCache

TEXTS = ["How do I reset a router?", "Unplug the router for thirty seconds, then plug it back in.",
         "Bread rises because yeast makes carbon dioxide.", "How do I reset a router?", ""]


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEmbedder(None, batch_size=8)


def test_cached_vectors_are_the_bare_encode_and_are_computed_once(minilm, tmp_path):
    bare = minilm.model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True)
    cache = EmbeddingCache(minilm, tmp_path)
    first = cache.vectors(TEXTS, show_progress=False)
    assert first.shape == (5, 384) and first.dtype == np.float32
    assert np.allclose(first, bare, atol=1e-5)
    assert cache.computed == 4  # the repeated text is embedded once
    assert (cache.keys.stat().st_size, cache.vectors_file.stat().st_size) == (4 * DIGEST_SIZE, 4 * 384 * 4)
    assert json.loads(cache.meta.read_text())["embedder"]["model"] == "all-MiniLM-L6-v2"

    again = EmbeddingCache(minilm, tmp_path)  # another process, later
    second = again.vectors(list(reversed(TEXTS)) + ["A new text."], show_progress=False)
    assert np.array_equal(second[:5], first[::-1])
    assert (again.computed, again.reused) == (1, 4)


def test_a_torn_tail_is_ignored_and_cut_before_the_next_append(minilm, tmp_path):
    cache = EmbeddingCache(minilm, tmp_path)
    good = cache.vectors(TEXTS[:3], show_progress=False)
    # A crash between the vectors and their keys: one vector and half a key too many.
    with open(cache.vectors_file, "ab") as f:
        f.write(np.ones(384, dtype=np.float32).tobytes())
    with open(cache.keys, "ab") as f:
        f.write(b"\x01" * (DIGEST_SIZE // 2))

    after = EmbeddingCache(minilm, tmp_path)
    assert np.array_equal(after.vectors(TEXTS[:3], show_progress=False), good)
    assert after.computed == 0
    new = after.vectors(["Another text entirely."], show_progress=False)
    assert after.computed == 1
    assert cache.keys.stat().st_size == 4 * DIGEST_SIZE and cache.vectors_file.stat().st_size == 4 * 384 * 4
    assert np.allclose(EmbeddingCache(minilm, tmp_path).vectors(["Another text entirely."], show_progress=False), new)


def test_each_embedder_has_its_own_folder(minilm, tmp_path):
    short = SentenceTransformerEmbedder(None, max_seq_length=16)
    assert EmbeddingCache(minilm, tmp_path).folder != EmbeddingCache(short, tmp_path).folder


def test_an_endpoint_embedder_is_cached_too(tmp_path):
    server = FakeEmbeddings(bag_of_words(["router", "reset", "bread", "yeast"])).start()
    try:
        embedder = EndpointEmbedder(server.base_url, "fake-embed", batch_size=2)
        cache = EmbeddingCache(embedder, tmp_path)
        vectors = cache.vectors(TEXTS[:3], show_progress=False)
        assert np.allclose(vectors[0], [0.7071, 0.7071, 0, 0], atol=1e-4)
        sent = len(server.requests)
        assert np.array_equal(EmbeddingCache(embedder, tmp_path).vectors(TEXTS[:3], show_progress=False), vectors)
        assert len(server.requests) == sent  # nothing asked twice
    finally:
        server.stop()
