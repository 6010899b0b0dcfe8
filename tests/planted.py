"""A planted-defect dataset for the curate tests: clean examples on many topics, plus known
defects whose ids say what they are, so each check's precision and recall can be measured."""

import random
from dataclasses import dataclass, field

from stored import stored

WORDS = [f"{stem}{suffix}" for stem in ("alp", "bor", "cem", "dun", "eft", "fam", "gil", "hov", "ist", "jur", "kel",
                                        "lom", "mar", "nob", "opi", "pex", "quo", "ras", "sul", "tev", "urn", "vok",
                                        "wes", "xan", "yor", "zib")
         for suffix in ("a", "en", "ik", "or", "um", "ys", "et", "ol")]
KINDS = ("short-long", "long-short", "short-short", "long-long", "sts", "bitext")


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def restyle(value: str) -> str:
    """The same words written otherwise: the first letter's case and the final stop changed."""
    return value[0].swapcase() + value[1:].rstrip(".") + "!"


def edit(rng: random.Random, value: str) -> str:
    """A small edit: one word replaced, and restyled."""
    words = value.split()
    words[rng.randrange(1, len(words))] = rng.choice(WORDS)
    return restyle(" ".join(words))


@dataclass
class Planted:
    records: list[dict] = field(default_factory=list)
    defects: dict[str, set[str]] = field(default_factory=dict)  # reason -> ids of the planted defects
    originals: dict[str, str] = field(default_factory=dict)  # planted id -> the id it copies


def planted(clean: int = 300, near_duplicates: int = 30, seed: int = 0) -> Planted:
    rng = random.Random(seed)
    data = Planted(defects={"near-duplicate": set()})
    for i in range(clean):
        kind = KINDS[i % len(KINDS)]
        data.records.append(stored(i, kind, query=text(rng, rng.randint(6, 20)), positive=text(rng, rng.randint(80, 150))))
    for j in range(near_duplicates):
        original = data.records[rng.randrange(clean)]
        # The query restyled and one word of the positive changed: Jaccard about 0.94 on word 3-grams.
        copy = dict(original, id=f"near-{j}", index=clean + j, query=restyle(original["query"]),
                    positive=edit(rng, original["positive"]))
        data.records.insert(rng.randrange(clean, len(data.records) + 1), copy)  # after every original
        data.defects["near-duplicate"].add(copy["id"])
        data.originals[copy["id"]] = original["id"]
    return data


def udhr() -> dict[str, list[str]]:
    """Four snippets (two of about 15 words, two of about 50) per language: tests/fixtures/udhr.jsonl."""
    import json
    from pathlib import Path

    texts: dict[str, list[str]] = {}
    for line in (Path(__file__).parent / "fixtures" / "udhr.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        texts.setdefault(record["language"], []).append(record["text"])
    return texts


# Languages far enough apart that the identifier never takes one for another.
FOREIGN = ("English", "Russian", "Japanese", "Arabic", "Hindi", "Turkish")


def planted_languages(wrong: int = 40, seed: int = 0) -> Planted:
    """One clean example per language (and a bitext pair per language), plus `wrong` examples whose
    positive, or whose bitext S2, is in another language than asked."""
    rng = random.Random(seed)
    texts = udhr()
    languages = sorted(texts)
    data = Planted(defects={"language": set()})
    for i, language in enumerate(languages):
        data.records.append(stored(i, "short-long", query=texts[language][0], positive=texts[language][2],
                                   language=language))
        target = languages[(i + 7) % len(languages)]
        data.records.append(stored(1000 + i, "bitext", query=texts[language][1], positive=texts[target][1],
                                   negative=texts[target][3], language=language,
                                   placeholders={"src_lang": language, "tgt_lang": target}))
    for j in range(wrong):
        language = rng.choice([name for name in languages if name not in FOREIGN])
        other = rng.choice(FOREIGN)
        if j % 2:  # a positive in another language
            record = stored(2000 + j, "short-long", query=texts[language][1], positive=texts[other][2],
                            language=language)
        else:  # a bitext "translation" still in the source language, or in a third one
            record = stored(2000 + j, "bitext", query=texts[language][0], positive=texts[other][0],
                            negative=texts[language][2], language=language,
                            placeholders={"src_lang": language, "tgt_lang": rng.choice(
                                [name for name in languages if name not in FOREIGN and name != language])})
        record["id"] = f"wrong-language-{j}"
        data.records.insert(rng.randrange(len(data.records) + 1), record)
        data.defects["language"].add(record["id"])
    return data


def pydocs() -> list[dict]:
    """The retrieval examples made from Python's own documentation (tests/fixtures/pydocs.jsonl, made by
    bench/make_pydocs.py): {kind, task, query, positive, negative, source, negative_source}."""
    import json
    from pathlib import Path

    path = Path(__file__).parent / "fixtures" / "pydocs.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def planted_retrieval(clean: int, swapped: int, better_negatives: int, seed: int = 0) -> Planted:
    """`clean` examples of tests/fixtures/pydocs.jsonl as they are, plus `swapped` whose positive is
    another example's positive (same kind, another package, few words in common): defect
    "inconsistent"; and `better_negatives` whose positive and negative change places, so the negative
    answers better: defect "false-negative". Every example comes from its own fixture record (the
    records drawn for defects are not also clean); a swapped positive comes from a record not drawn
    at all while one of the kind is left, so it is seldom another example's positive too. Planted
    ids say their defect: swapped-3, better-negative-7."""
    import re

    rng = random.Random(seed)
    records = pydocs()
    need = clean + swapped + better_negatives
    if need > len(records):
        raise ValueError(f"{need} examples asked for, the fixture has {len(records)}")
    order = rng.sample(range(len(records)), len(records))
    drawn, spare = order[:need], order[need:]
    data = Planted(defects={"inconsistent": set(), "false-negative": set()})

    def example(i: int, record: dict, **texts) -> dict:
        texts = {"query": record["query"], "positive": record["positive"], "negative": record["negative"], **texts}
        return stored(i, record["kind"], task=record["task"], language="English", **texts)

    def package(record: dict) -> str:
        return record["source"].split(".")[0]

    def vocabulary(text: str) -> set[str]:
        return set(re.findall(r"[a-z]{4,}", text.lower()))

    def unrelated(record: dict, donor: dict) -> float:
        """Word overlap (Jaccard, words of four letters or more): the donor with the least is taken."""
        mine, theirs = vocabulary(record["query"] + " " + record["positive"]), vocabulary(donor["positive"])
        return len(mine & theirs) / max(1, len(mine | theirs))

    for i, n in enumerate(drawn[:clean]):
        data.records.append(example(i, records[n]))
    planted_records = []
    donors = spare + drawn[:clean]
    given: set[int] = set()
    for j, n in enumerate(drawn[clean:clean + swapped]):
        record = records[n]
        # Of the first 20 of the kind from another package, the one sharing the fewest words.
        eligible = [d for d in donors if d not in given and records[d]["kind"] == record["kind"]
                    and package(records[d]) != package(record)][:20]
        donor = min(eligible, key=lambda d: (unrelated(record, records[d]), eligible.index(d)))
        given.add(donor)
        copy = example(clean + j, record, positive=records[donor]["positive"])
        copy["id"] = f"swapped-{j}"
        planted_records.append(copy)
        data.defects["inconsistent"].add(copy["id"])
    for j, n in enumerate(drawn[clean + swapped:]):
        record = records[n]
        copy = example(clean + swapped + j, record, positive=record["negative"], negative=record["positive"])
        copy["id"] = f"better-negative-{j}"
        planted_records.append(copy)
        data.defects["false-negative"].add(copy["id"])
    for copy in planted_records:
        data.records.insert(rng.randrange(len(data.records) + 1), copy)
    return data
