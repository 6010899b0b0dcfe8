"""The personalized passkey retrieval benchmark of the E5-mistral paper, written as BEIR folders.

Each document is the paper's filler ("The grass is green. The sky is blue. ...") repeated to a
target length, with one sentence naming a person and their passkey inserted at a random sentence
boundary. Each query asks for one person's passkey and has its own candidates: the document that
holds the answer and `candidates - 1` others (other people, other passkeys). Names are unique within
a length, and so are passkeys, so the gold document is the only candidate that mentions either.

Lengths are counted in tokens of a named tokenizer (without special tokens) when one loads, else in
words. Every sentence is counted once and documents are assembled from counted sentences, so a
document's length is known without tokenizing it whole; the first documents of each length are
tokenized whole as a check, and the metadata records both.
"""

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from tqdm import tqdm

from synthgen import __version__, beir
from synthgen.errors import BadInput

DEFAULT_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
FILLER_SENTENCES = ("The grass is green.", "The sky is blue.", "The sun is yellow.", "Here we go.", "There and back again.")
NEEDLE = "The passkey of {name} is {passkey}. Remember it."
QUERY = "What is the passkey of {name}?"
INSTRUCTION = "Given a person's name, retrieve the document that tells that person's passkey"
PASSKEY_RANGE = (10000, 99999)  # five digits
CHECKED_PER_LENGTH = 3  # documents per length tokenized whole to check the sentence-sum count
TOLERANCE = 0.05

# No first name ends another (case aside) and no last name begins another, so one full name is
# never part of another.
FIRST_NAMES = (
    "Aaron", "Abigail", "Adrian", "Agnes", "Albert", "Alice", "Amara", "Ambrose", "Anselm", "Arthur",
    "Astrid", "Beatrice", "Benedict", "Bianca", "Boris", "Bridget", "Caleb", "Camille", "Cedric", "Clara",
    "Cornelius", "Dalia", "Damian", "Dorothy", "Edgar", "Edith", "Elias", "Elodie", "Emil", "Esther",
    "Felix", "Fiona", "Florian", "Freya", "Gideon", "Greta", "Gustav", "Hazel", "Hector", "Helga",
    "Hugo", "Ingrid", "Isaac", "Ivy", "Jasper", "Josephine", "Julian", "Juniper", "Kasimir", "Keira",
    "Laszlo", "Leopold", "Lorelei", "Lucian", "Magnus", "Mabel", "Marisol", "Matilda", "Maximilian", "Mirela",
    "Nadia", "Nikolai", "Noemi", "Octavia", "Olaf", "Ophelia", "Oswald", "Penelope", "Percival", "Priya",
    "Quentin", "Quincy", "Rafael", "Rosalind", "Rufus", "Sabine", "Silas", "Soren", "Svetlana", "Tabitha",
    "Thaddeus", "Theodora", "Tobias", "Ulrich", "Ursula", "Valentin", "Vera", "Wilhelmina", "Winston", "Xavier",
    "Yasmin", "Yusuf", "Zara", "Zebulon", "Bartholomew", "Cosima", "Desmond", "Eugenia", "Fabian", "Genevieve",
)
LAST_NAMES = (
    "Abernathy", "Achterberg", "Albescu", "Almeida", "Arkwright", "Ashdown", "Bakshi", "Balogun", "Barrowclough", "Bergstrom",
    "Blackwood", "Bramhall", "Castellanos", "Chakraborty", "Cho", "Crabtree", "Dalgleish", "Delacroix", "Dimitriou", "Drummond",
    "Eastwick", "Ekwueme", "Falconer", "Fairweather", "Fitzgerald", "Gallagher", "Grimaldi", "Gudmundsson", "Halvorsen", "Hargreaves",
    "Hollingsworth", "Ibarra", "Iwasaki", "Jablonski", "Jovanovic", "Kaczmarek", "Kowalczyk", "Kuznetsova", "Lachance", "Lindqvist",
    "Llewellyn", "Lockhart", "Mbeki", "Montgomery", "Moreau", "Nakamura", "Nwachukwu", "Oyelaran", "Ostrowski", "Pemberton",
    "Petrakis", "Quaresma", "Quigley", "Ravensworth", "Rosenthal", "Saarinen", "Santangelo", "Sheffield", "Szabo", "Tanaka",
    "Thistlewood", "Trevelyan", "Underhill", "Urquhart", "Valdivia", "Vasquez", "Wainwright", "Whitcombe", "Wojcik", "Yamaguchi",
    "Yilmaz", "Zamora", "Zielinski", "Abramowitz", "Bellamy", "Carmichael", "Devereux", "Esposito", "Fontaine", "Goldberg",
    "Haverford", "Ingleby", "Jankowski", "Kensington", "Larsson", "Mackenzie", "Novak", "Okonkwo", "Pakalniskis", "Quintero",
    "Rasmussen", "Stavropoulos", "Tremblay", "Umarov", "Varga", "Weatherby", "Xiong", "Ybarra", "Zhukov", "Oduya",
)
MAX_DOCUMENTS = len(FIRST_NAMES) * len(LAST_NAMES)


@dataclass(frozen=True)
class LengthCounter:
    """Counts text length in one unit: tokens of a tokenizer (no special tokens) or words."""

    unit: str  # "tokens" or "words"
    tokenizer: Optional[str]  # what was asked for: a name or a path; None for words
    count_many: Callable[[list[str]], list[int]]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def describe(self) -> str:
        if self.unit == "words":
            return "words (white-space separated)"
        return f"tokens of the {self.tokenizer} tokenizer, without special tokens"


def word_counter() -> LengthCounter:
    return LengthCounter("words", None, lambda texts: [len(t.split()) for t in texts])


def tokenizer_counter(name_or_path: str) -> LengthCounter:
    """A counter over a Hugging Face tokenizer, loaded from a folder or the local cache."""
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise BadInput("counting in tokens needs transformers: pip install torch==2.13.0 'synthgen[train]' "
                       "(or --tokenizer words)") from None
    hf_logging.set_verbosity_error()  # "sequence longer than the maximum" is expected here
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
    except Exception as exc:  # OSError, ValueError, and whatever a broken folder raises
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"cannot load tokenizer {name_or_path}: {first}") from None

    def count_many(texts: list[str]) -> list[int]:
        ids = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(i) for i in ids]

    return LengthCounter("tokens", str(name_or_path), count_many)


def default_counter() -> LengthCounter:
    """The offline all-MiniLM-L6-v2 tokenizer when the train extra is installed, else words."""
    try:
        import transformers  # noqa: F401

        from synthgen.models import default_embedding_model_path

        path = default_embedding_model_path()
    except (ImportError, BadInput, OSError):
        return word_counter()
    counter = tokenizer_counter(str(path))
    return LengthCounter("tokens", "all-MiniLM-L6-v2", counter.count_many)


def counter_for(tokenizer: Optional[str]) -> LengthCounter:
    if tokenizer is None:
        return default_counter()
    if tokenizer.strip().lower() == "words":
        return word_counter()
    return tokenizer_counter(tokenizer)


def parse_lengths(text: str) -> list[int]:
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"--lengths {text!r}: give numbers separated by commas, e.g. 256,512,1024") from None
    if not lengths:
        raise BadInput("--lengths is empty")
    if any(n < 64 for n in lengths):
        raise BadInput("--lengths: each length must be at least 64 (the passkey sentence must fit with filler around it)")
    return sorted(set(lengths))


@dataclass
class Document:
    id: str
    text: str
    name: str
    passkey: str
    length: int  # in the counter's unit, summed over sentences
    position: float  # where the passkey sentence starts, as a share of the sentences before it


def build_document(doc_id: str, name: str, passkey: str, target: int, needle_length: int,
                   filler_lengths: Sequence[int], rng: random.Random) -> Document:
    """Filler sentences in their cycle until the target is reached, the passkey sentence among them."""
    sentences: list[str] = []
    total = needle_length
    cycle = itertools.cycle(range(len(FILLER_SENTENCES)))
    while True:
        i = next(cycle)
        if total + filler_lengths[i] > target:
            break
        sentences.append(FILLER_SENTENCES[i])
        total += filler_lengths[i]
    at = rng.randint(0, len(sentences))
    sentences.insert(at, NEEDLE.format(name=name, passkey=passkey))
    position = at / max(1, len(sentences) - 1)
    return Document(doc_id, " ".join(sentences), name, passkey, total, round(position, 4))


@dataclass
class LengthSet:
    length: int
    queries: list[dict]
    documents: list[Document]
    gold: dict[str, str]  # query id -> document id


def generate_length(length: int, queries: int, candidates: int, seed: int, counter: LengthCounter) -> LengthSet:
    """One length's queries and documents; the same (seed, length) always gives the same set."""
    documents_needed = queries * candidates
    if documents_needed > MAX_DOCUMENTS:
        raise BadInput(f"--queries x --candidates is {documents_needed} documents per length; "
                       f"the name lists give {MAX_DOCUMENTS} unique names at most")
    rng = random.Random(f"synthgen-passkey/{seed}/{length}")
    people = rng.sample(range(MAX_DOCUMENTS), documents_needed)
    passkeys = rng.sample(range(PASSKEY_RANGE[0], PASSKEY_RANGE[1] + 1), documents_needed)
    names = [f"{FIRST_NAMES[p // len(LAST_NAMES)]} {LAST_NAMES[p % len(LAST_NAMES)]}" for p in people]
    needles = [NEEDLE.format(name=n, passkey=k) for n, k in zip(names, passkeys)]
    filler_lengths = counter.count_many(list(FILLER_SENTENCES))
    needle_lengths = counter.count_many(needles)
    if max(needle_lengths) + min(filler_lengths) > length:
        raise BadInput(f"length {length} is too short for the passkey sentence ({max(needle_lengths)} {counter.unit})")
    q_width, c_width = len(str(queries - 1)), len(str(candidates - 1))
    result = LengthSet(length, [], [], {})
    for q in range(queries):
        gold_slot = rng.randrange(candidates)
        query_id = f"q{q:0{q_width}d}"
        ids = []
        for c in range(candidates):
            k = q * candidates + c
            doc_id = f"{query_id}-c{c:0{c_width}d}"
            result.documents.append(build_document(doc_id, names[k], str(passkeys[k]), length,
                                                   needle_lengths[k], filler_lengths, rng))
            ids.append(doc_id)
        gold = result.documents[q * candidates + gold_slot]
        result.gold[query_id] = gold.id
        result.queries.append({"_id": query_id, "text": QUERY.format(name=gold.name), "instruction": INSTRUCTION,
                               "candidates": ids})
    return result


def write_length(folder: Path, data: LengthSet, meta: dict) -> dict:
    """corpus.jsonl, queries.jsonl, qrels/test.tsv and metadata.json; returns the metadata."""
    documents = ({"_id": doc.id, "title": "", "text": doc.text,
                  "metadata": {"name": doc.name, "passkey": doc.passkey, "length": doc.length,
                               "position": doc.position}} for doc in data.documents)
    judgments = (beir.Judgment(query_id, doc_id, 1) for query_id, doc_id in data.gold.items())
    beir.write_folder(folder, documents, data.queries, judgments)
    lengths = [d.length for d in data.documents]
    meta = {**meta, "length": data.length, "documents": len(data.documents),
            "document_length": {"min": min(lengths), "max": max(lengths),
                                "mean": round(sum(lengths) / len(lengths), 1)}}
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return meta


def check_lengths(data: LengthSet, counter: LengthCounter) -> list[dict]:
    """Tokenize the first documents whole and compare with the sentence-sum count."""
    checked = []
    docs = data.documents[:CHECKED_PER_LENGTH]
    for doc, whole in zip(docs, counter.count_many([d.text for d in docs])):
        if abs(whole - data.length) > TOLERANCE * data.length:
            raise BadInput(f"the {counter.describe()} do not add up over sentences: document {doc.id} "
                           f"is {whole} {counter.unit} long for a target of {data.length}; try --tokenizer words")
        checked.append({"id": doc.id, "summed": doc.length, "whole": whole})
    return checked


def length_folder(out: Path, length: int) -> Path:
    return out / str(length)


def generate_benchmark(out: Path, lengths: list[int], queries: int, candidates: int, seed: int,
                       counter: LengthCounter, show_progress: bool = True) -> dict:
    """Write one BEIR folder per length under OUT and OUT/passkey.json; returns that summary."""
    if queries < 1 or candidates < 2:
        raise BadInput("--queries must be at least 1 and --candidates at least 2")
    common = {
        "benchmark": "personalized passkey retrieval (Wang et al., 2024, arXiv 2401.00368)",
        "synthgen_version": __version__,
        "seed": seed,
        "lengths": lengths,
        "unit": counter.unit,
        "tokenizer": counter.tokenizer,
        "length_counted_as": counter.describe() + "; each document is at most the target and within one "
                             "filler sentence of it",
        "queries": queries,
        "candidates": candidates,
        "filler": FILLER,
        "needle": NEEDLE,
        "query": QUERY,
        "instruction": INSTRUCTION,
        "ranking": "each query ranks its own candidates (the 'candidates' list of its line in queries.jsonl), "
                   "as in the paper; the right one is in qrels/test.tsv. An evaluator that ranks each query "
                   "against the whole corpus solves a harder task.",
        "metric": "top-1 accuracy: the share of queries whose right document ranks first",
    }
    folders: dict[str, str] = {}
    summary = {**common, "folders": folders}
    bar = tqdm(lengths, desc="passkey", unit="length", disable=None if show_progress else True)
    for length in bar:
        bar.set_postfix_str(f"length={length}")
        data = generate_length(length, queries, candidates, seed, counter)
        checked = check_lengths(data, counter)
        folder = length_folder(out, length)
        write_length(folder, data, {**common, "checked_whole": checked})
        folders[str(length)] = str(folder.relative_to(out))
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "passkey.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
