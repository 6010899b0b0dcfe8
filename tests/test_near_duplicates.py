"""NearDuplicates.first_like_many: the answers of first_like one text at a time, in order, whatever
the number of worker processes and the batches' sizes."""

import pytest
from planted import planted, udhr

from synthgen.curate import near_duplicates
from synthgen.curate.near_duplicates import NearDuplicates, shingles


@pytest.fixture
def small_chunks(monkeypatch):
    """Pool and chunks from a few texts on, so a small data set crosses many chunk boundaries."""
    monkeypatch.setattr(near_duplicates, "PARALLEL_FROM", 20)
    monkeypatch.setattr(near_duplicates, "CHUNK", 7)


def texts_of(records: list[dict]) -> tuple[list[str], list[str]]:
    return [r["query"] + "\n" + r["positive"] for r in records], [r["language"] for r in records]


def one_by_one(texts: list[str], languages: list[str], **settings) -> list:
    index = NearDuplicates(0.9, processes=1, **settings)
    return [index.first_like(text, language) for text, language in zip(texts, languages)]


def in_batches(texts: list[str], languages: list[str], sizes: list[int], processes: int, **settings) -> list:
    found: list = []
    with NearDuplicates(0.9, processes=processes, **settings) as index:
        start = 0
        for size in sizes + [len(texts)]:
            found += index.first_like_many(texts[start:start + size], languages[start:start + size])
            start += size
    return found


@pytest.mark.parametrize("processes", [1, 2])
def test_batches_answer_as_one_text_at_a_time_and_find_the_planted_copies(small_chunks, processes):
    data = planted(clean=400, near_duplicates=40)
    texts, languages = texts_of(data.records)
    expected = one_by_one(texts, languages)
    # Batches of one, of fewer than PARALLEL_FROM, and the rest in one.
    assert in_batches(texts, languages, [1, 15, 100], processes) == expected

    ids = [r["id"] for r in data.records]
    kept = [i for i, first in zip(ids, expected) if first is None]
    named = {i: kept[first] for i, first in zip(ids, expected) if first is not None}
    assert named == data.originals  # every near copy, each naming its original, and nothing else


def test_exact_verification_answers_alike_in_batches(small_chunks):
    tasks = [f"Given a {topic} question, retrieve {what} that answer it." for topic in ("legal", "medical", "tax")
             for what in ("passages", "documents", "the passages", "answers")]
    languages = ["English"] * len(tasks)
    settings = dict(bands=32, word_shingle=1, char_shingle=3, exact=True)
    expected = one_by_one(tasks * 2, languages * 2, **settings)
    assert in_batches(tasks * 2, languages * 2, [5], 2, **settings) == expected
    assert None in expected[:len(tasks)] and None not in expected[len(tasks):]


def test_unspaced_languages_are_shingled_by_characters(small_chunks):
    assert shingles("日本語です。 はい", "Japanese", char_shingle=5) == ["日本語です", "本語ですは", "語ですはい"]
    assert shingles("日本語", "Japanese", char_shingle=5) == ["日本語"]
    assert shingles("日本語です。 はい", "English") == ["日本語です はい"]  # as words: one shingle

    simplified, traditional = udhr()["Chinese Simplified"], udhr()["Chinese Traditional"]
    original = "".join(simplified)  # some 200 characters
    changed = original[:100] + ("人" if original[100] != "人" else "民") + original[101:]  # one character
    texts = [original, "".join(traditional), *simplified, changed + "。"]
    languages = ["Chinese Simplified"] * len(texts)
    expected = [None] * (len(texts) - 1) + [0]
    assert one_by_one(texts, languages) == expected
    assert in_batches(texts * 5, languages * 5, [], 2)[:len(texts)] == expected
    # Read as words (a few, between the snippets' spaces), the changed copy is another text.
    assert one_by_one(texts, ["English"] * len(texts))[-1] is None


def test_the_same_input_gives_the_same_answers_whatever_the_processes(small_chunks):
    data = planted(clean=200, near_duplicates=20, seed=3)
    texts, languages = texts_of(data.records)
    runs = [in_batches(texts, languages, [50], processes) for processes in (2, 2, 1)]
    assert runs[0] == runs[1] == runs[2]


def test_the_pool_starts_for_a_large_batch_only_and_close_ends_it(small_chunks):
    texts, languages = texts_of(planted(clean=30, near_duplicates=3).records)
    index = NearDuplicates(0.9, processes=2)
    index.first_like_many(texts[:5], languages[:5])
    assert index._pool is None
    index.first_like_many(texts[5:], languages[5:])
    assert index._pool is not None
    index.close()
    index.close()
    assert index._pool is None
    assert index.first_like(texts[0], languages[0]) == 0  # still answers, in this process


def test_texts_and_languages_must_pair():
    with pytest.raises(ValueError):
        NearDuplicates(0.9, processes=1).first_like_many(["a"], [])
