"""Make tests/fixtures/pydocs.jsonl: retrieval examples of the four asymmetric kinds, in English,
from Python's own documentation (stdlib docstrings and pydoc_data.topics, PSF licence).

    python bench/make_pydocs.py [--out tests/fixtures/pydocs.jsonl] [--cache FILE]
    python bench/make_pydocs.py --measure [--cache FILE]

Building needs the train extra (sentence-transformers and the bundled all-MiniLM-L6-v2): the hard
negatives are chosen, and the examples the model cannot tell apart left out, with that model (see
tests/fixtures/PYDOCS-NOTICE.md). --measure reads the fixture and prints the clean shares (the
positive in the top 3 of its kind; the positive above the negative) and the precision and recall
of the curate embedding checks, as specified, on tests/planted.py's planted_retrieval sets.
"""

import argparse
import contextlib
import importlib
import inspect
import io
import json
import pickle
import pkgutil
import re
import sys
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURE = ROOT / "tests" / "fixtures" / "pydocs.jsonl"

KINDS = ("short-long", "long-short", "short-short", "long-long")
TASKS = {
    "short-long": "Retrieve the Python documentation that answers this question",
    "long-short": "Retrieve the one-line summary of this Python documentation entry",
    "short-short": "Retrieve the signature of the Python function this question asks for",
    "long-long": "Retrieve the passage that continues this Python documentation",
}

# Modules never imported: they act on import (antigravity opens a browser, this prints, idlelib.idle
# starts IDLE), are test suites or demos rather than library, or exist only on Windows.
SKIP = {"antigravity", "this", "idle", "test", "tests", "idle_test", "turtledemo", "ensurepip", "venv",
        "pydoc_data", "msilib", "winreg", "winsound", "nt", "msvcrt", "__main__"}

SIGNATURE_LINE = re.compile(r"^[\w.\[\]]+\(.*\)\s*(->.*)?$")
ARROW_SUMMARY = re.compile(r"^[\w.]+\(.*\)\s*->\s*[^,]*,\s*(.+)$")
UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")
# Summaries that point elsewhere instead of saying what the object does.
POINTERS = re.compile(r"^(deprecated|\*\*deprecated|alias|see |same as|equivalent to|like |undocumented|"
                      r"internal|helper|private|for internal|backward|compat|this is a|xxx|todo)", re.I)

LONG_CAP = 150  # words: all-MiniLM-L6-v2 reads 256 word pieces, about 190 words of this prose
MIN_BODY = 20  # words of a docstring after its summary, for the long sides
MIN_NEGATIVE = 15  # words of a long kind's negative
MIN_LONG_LONG = 90  # words of a docstring body split into two passages
SHORT_SHARE = (1, 2)  # short-short candidates: this share of the short documentation entries
MARGIN = 0.02  # cos(query, positive) - cos(query, negative) kept by every example
TOP_K = 3  # the consistency check's k
MARGIN_MODES = ("instructed", "bare")  # the query forms the margin is kept under
RANK_MODES = ("instructed", "bare")  # the query forms under which positive and negative must be in the top 3
# Whether the other examples' negatives compete too (in a planted set a few are positives): True
# keeps about a fifth fewer examples, for about 0.01 of the consistency check's precision.
AGAINST_NEGATIVES = False


# ---------------------------------------------------------------------------------------------
# Harvest: docstrings of the standard library, and the sections of pydoc_data.topics
# ---------------------------------------------------------------------------------------------

@dataclass
class Doc:
    source: str  # module.qualname (or pydoc_data.topics.<key>#<n>)
    family: str  # what counts as related: the class for methods, the module otherwise
    package: str  # top-level package, or "pydoc_data.topics"
    type: str  # module, class, function, method, property, topic
    name: str
    header: Optional[str]  # the signature line a documentation page would start with
    summary: str
    body: list[str] = field(default_factory=list)  # paragraphs after the summary


def quiet_import(name: str):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except BaseException:  # noqa: B036 - a module may exit, or fail any way, on import
            return None


def public(name: str) -> bool:
    return not any(part.startswith("_") for part in name.split("."))


def stdlib_modules() -> list[str]:
    names = []
    for name in sorted(sys.stdlib_module_names):
        if not public(name) or name in SKIP or quiet_import(name) is None:
            continue
        names.append(name)
        module = sys.modules[name]
        if hasattr(module, "__path__"):
            subs = pkgutil.walk_packages(module.__path__, name + ".", onerror=lambda _: None)
            for info in sorted(subs, key=lambda i: i.name):
                if public(info.name) and not set(info.name.split(".")) & SKIP and quiet_import(info.name):
                    names.append(info.name)
    return names


def raw_doc(obj) -> Optional[str]:
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else obj.__doc__
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def signature(obj, name: str) -> str:
    target = obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj
    if isinstance(target, property):
        return name
    try:
        text = name + str(inspect.signature(target))
    except Exception:  # noqa: BLE001 - some C signatures do not evaluate; the bare name then
        return name
    text = portable(text)
    return text if len(text) <= 120 else text[:117].rsplit(",", 1)[0] + ", ...)"


def portable(text: str) -> str:
    """A signature as any machine prints it: no object addresses, no paths of this installation."""
    text = re.sub(r"<([^<>]*?) at 0x[0-9a-fA-F]+>", r"<\1>", text)
    for path, name in ((sys.executable, "<python>"), (sys.prefix, "<prefix>"), (sys.base_prefix, "<prefix>")):
        text = text.replace(path, name)
    return text


def paragraphs(doc: str) -> list[str]:
    """The prose paragraphs of a docstring or topic: signature lines, doctests, literal blocks,
    grammar and underlines left out; each paragraph's lines joined by single spaces."""
    lines = doc.replace("\r", "").split("\n")
    while lines and (SIGNATURE_LINE.match(lines[0].strip()) or lines[0].strip() == "--"):
        arrow = ARROW_SUMMARY.match(lines[0].strip())  # "D.pop(k[,d]) -> v, remove specified key ..."
        if arrow:
            lines[0] = arrow.group(1)[0].upper() + arrow.group(1)[1:]
            break
        lines.pop(0)
    blocks, current = [], []
    for line in lines + [""]:
        if line.strip() == "" or UNDERLINE.match(line.strip()):
            if current:
                blocks.append(current)
            current = []
        else:
            current.append(line)
    out = []
    previous_colon = False
    for block in blocks:
        text = " ".join(" ".join(block).split())
        code = (any(line.lstrip().startswith((">>>", "...", "$ ", "%")) for line in block)
                or "::=" in text or (previous_colon and all(line.startswith("      ") for line in block)))
        previous_colon = text.endswith(":")
        letters = sum(c.isalpha() for c in text)
        table = re.search(r"(-{4,}|={4,})", text)  # a table drawn with rules
        if code or table or letters < 0.7 * len(text.replace(" ", "")):
            continue
        out.append(text[:-1] if text.endswith("::") else text)
    return out


def words(text: str) -> int:
    return len(text.split())


def first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])\s+[A-Z(\"']", text)
    return match.group(1) if match else text


def make_doc(source: str, family: str, type_: str, name: str, header: Optional[str], doc: str) -> Optional[Doc]:
    parts = [p for p in paragraphs(doc) if words(p) >= 3]
    if not parts:
        return None
    summary, body = parts[0], parts[1:]
    if words(summary) > 35:  # a long first paragraph: its first sentence is the summary
        sentence = first_sentence(summary)
        summary, body = sentence, [summary[len(sentence):].strip()] + body
    summary = summary.rstrip()
    # A summary must say something itself, in one piece (not "Like foo()", not cut at a comma).
    if not 4 <= words(summary) <= 35 or POINTERS.match(summary) or summary.endswith((",", ";", ":", "(", "-")):
        return None
    package = source.split(".")[0] if type_ != "topic" else "pydoc_data.topics"
    return Doc(source, family, package, type_, name, header, summary, [p for p in body if p])


def harvest_docstrings() -> list[Doc]:
    docs: list[Doc] = []
    seen: set[int] = set()
    for module_name in stdlib_modules():
        module = sys.modules[module_name]
        doc = raw_doc(module)
        if doc:
            made = make_doc(module_name, module_name, "module", module_name, f"Module {module_name}", doc)
            docs.extend([made] if made else [])
        for attr in sorted(vars(module)):
            obj = vars(module)[attr]
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
                continue
            owner = getattr(obj, "__module__", None) or ""
            # Defined here, or in a private module (heapq's functions live in _heapq) and first seen here.
            if (owner != module_name and public(owner) and owner in sys.modules) or id(obj) in seen:
                continue
            seen.add(id(obj))
            qualified = f"{module_name}.{attr}"
            is_class = inspect.isclass(obj)
            doc = raw_doc(obj)
            if doc:
                header = ("class " if is_class else "") + signature(obj, qualified)
                made = make_doc(qualified, module_name, "class" if is_class else "function", attr, header, doc)
                docs.extend([made] if made else [])
            if not is_class:
                continue
            for member in sorted(vars(obj)):
                value = vars(obj)[member]
                if member.startswith("_") or id(value) in seen or not (
                        isinstance(value, (classmethod, staticmethod, property)) or inspect.isfunction(value)
                        or inspect.ismethoddescriptor(value) or inspect.isbuiltin(value)):
                    continue
                seen.add(id(value))
                doc = raw_doc(value)
                if doc:
                    type_ = "property" if isinstance(value, property) else "method"
                    made = make_doc(f"{qualified}.{member}", qualified, type_, member,
                                    signature(value, f"{qualified}.{member}"), doc)
                    docs.extend([made] if made else [])
    return docs


def harvest_topics() -> list[Doc]:
    """pydoc_data.topics (the language reference as help() shows it), one Doc per section: the
    heading as the header, the section's first paragraph as the summary, the rest as the body."""
    from pydoc_data.topics import topics

    docs = []
    for key in sorted(topics):
        sections: list[tuple[str, list[str]]] = []
        for paragraph in paragraphs(topics[key]):
            # a heading: short, no final stop; it opens a section
            if words(paragraph) <= 8 and not paragraph.endswith((".", ":", ")")):
                sections.append((paragraph, []))
            elif sections:
                sections[-1][1].append(paragraph)
        for n, (heading, section) in enumerate(sections):
            if len(section) >= 2:
                made = make_doc(f"pydoc_data.topics.{key}#{n}", f"pydoc_data.topics.{key}", "topic", key, heading,
                                "\n\n".join(section))
                docs.extend([made] if made else [])
    return docs


# ---------------------------------------------------------------------------------------------
# Duplicates: the same or nearly the same text under two names (aliases, _pyio and io, generic
# summaries such as "Return self==value.") is ambiguous, so every copy of a repeated summary goes,
# and of near-duplicate documents the first (by source) stays.
# ---------------------------------------------------------------------------------------------

def normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


def shingle_set(text: str, size: int = 3) -> frozenset:
    tokens = normal(text).split()
    if len(tokens) <= size:
        return frozenset([" ".join(tokens)])
    return frozenset(" ".join(tokens[i:i + size]) for i in range(len(tokens) - size + 1))


class NearIndex:
    """Exact Jaccard similarity on word 3-grams, candidates through an inverted index."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self.sets: list[frozenset] = []
        self.index: dict[str, list[int]] = defaultdict(list)

    def near(self, text: str) -> bool:
        mine = shingle_set(text)
        shared: Counter = Counter()
        for piece in mine:
            shared.update(self.index.get(piece, ()))
        return any(count / (len(mine) + len(self.sets[other]) - count) >= self.threshold
                   for other, count in shared.items())

    def add(self, text: str) -> None:
        mine = shingle_set(text)
        for piece in mine:
            self.index[piece].append(len(self.sets))
        self.sets.append(mine)


def deduplicated(docs: list[Doc]) -> list[Doc]:
    repeated = Counter(normal(d.summary) for d in docs)
    docs = [d for d in docs if repeated[normal(d.summary)] == 1]
    # Public sources first, then shorter names: of io.X and _pyio.X the public one stays.
    docs.sort(key=lambda d: (not public(d.source), d.source.count("."), d.source))
    summaries, texts, kept = NearIndex(0.6), NearIndex(0.5), []
    for doc in docs:
        full = " ".join([doc.summary] + doc.body)
        if summaries.near(doc.summary) or texts.near(full):
            continue
        summaries.add(doc.summary)
        texts.add(full)
        kept.append(doc)
    return sorted(kept, key=lambda d: d.source)


# ---------------------------------------------------------------------------------------------
# Texts of each kind
# ---------------------------------------------------------------------------------------------

def capped(parts: list[str], limit: int = LONG_CAP) -> str:
    """Whole paragraphs up to `limit` words (the first one cut at a sentence if it alone is longer)."""
    out, total = [], 0
    for part in parts:
        if total + words(part) > limit:
            if not out:
                sentences = re.split(r"(?<=[.!?])\s+", part)
                while sentences and total + words(sentences[0]) <= limit:
                    out.append(sentences.pop(0))
                    total += words(out[-1])
            break
        out.append(part)
        total += words(part)
    return "\n\n".join(out) if total else ""


IRREGULAR = {"do": "does", "go": "goes", "be": "is", "have": "has"}


def third_person(verb: str) -> str:
    verb = verb.lower()
    if verb in IRREGULAR:
        return IRREGULAR[verb]
    if re.search(r"(s|x|z|ch|sh)$", verb):
        return verb + "es"
    if re.search(r"[^aeiou]y$", verb):
        return verb[:-1] + "ies"
    return verb + "s"


# Imperative verbs that open a summary ("Return the ...", "Create a ...").
VERBS = {
    "return", "get", "set", "create", "read", "remove", "add", "parse", "convert", "send", "write", "run", "open",
    "close", "decode", "handle", "process", "format", "encode", "print", "wait", "make", "find", "log", "execute",
    "copy", "generate", "change", "produce", "check", "construct", "register", "call", "start", "delete", "raise",
    "receive", "determine", "perform", "retrieve", "configure", "compute", "append", "stop", "clear", "extract",
    "emit", "insert", "connect", "test", "build", "load", "save", "update", "apply", "compare", "split", "join",
    "search", "match", "replace", "reset", "flush", "release", "acquire", "schedule", "cancel", "install", "dump",
    "initialize", "initialise", "iterate", "yield", "try", "translate", "calculate", "evaluate", "invoke", "list",
    "move", "rename", "store", "fetch", "accept", "bind", "listen", "shut", "quit", "exit", "pack", "unpack",
    "validate", "verify", "indicate", "tell", "use", "put", "push", "pop", "map", "mark", "display", "show", "draw",
    "turn", "lock", "unlock", "fill", "resize", "select", "sort", "strip", "pad", "count", "walk", "visit", "enable",
    "disable", "define", "declare", "describe", "report", "attach", "detach", "wrap", "normalize", "escape",
    "unescape", "quote", "unquote", "compile", "import", "reload", "resolve", "expand", "collect", "merge", "filter",
    "skip", "assert", "fail", "sleep", "block", "notify", "signal", "kill", "terminate", "spawn", "fork",
}


def question(doc: Doc) -> str:
    """A question built from the summary, with its context (module or class) but not the object's name."""
    text = first_sentence(doc.summary).rstrip(".").rstrip()
    first, _, rest = text.partition(" ")
    where = {
        "function": f"Which function in {doc.family}",
        "method": f"Which method of {doc.family}",
        "property": f"Which attribute of {doc.family}",
        "class": f"Which class in {doc.family}",
        "module": "Which standard library module",
        "topic": "Which part of the Python language reference",
    }[doc.type]
    lower = first.lower()
    if lower in VERBS:
        return f"{where} {third_person(lower)} {rest}?"
    if lower.endswith("s") and lower[:-1] in VERBS or lower.endswith("es") and lower[:-2] in VERBS:
        return f"{where} {lower} {rest}?"
    if doc.type == "module" and lower == "this" and rest.startswith("module "):
        return f"{where} {rest[len('module '):]}?"
    if doc.type in ("class", "topic") and lower in ("a", "an", "the"):
        return f"{where} is {lower} {rest}?"
    return text + "."  # a statement that reads as a query (a noun phrase, "True if ...")


def qualname_free(text: str, doc: Doc) -> bool:
    """Whether the object's own name is absent from a query (as an identifier: name( or a_name)."""
    name = doc.name
    if "_" in name or any(c.isupper() for c in name[1:]):
        return not re.search(rf"\b{re.escape(name)}\b", text)
    return f"{name}(" not in text


@dataclass
class Candidate:
    kind: str
    doc: Doc
    query: str
    positive: str
    negative: Optional[str] = None
    negative_source: Optional[str] = None
    later: Optional[str] = None  # long-long: a later passage of the same entry, a negative too


def signed(doc: Doc) -> str:
    """The signature and the summary: the short form of a documentation entry."""
    return f"{doc.header}: {doc.summary}"


def with_header(doc: Doc, text: str) -> str:
    return "\n\n".join(filter(None, [doc.header, text]))


def candidates(docs: list[Doc]) -> dict[str, list[Candidate]]:
    """Every document's example of the one kind it is given to: each document is the query and
    positive of one example at most; any document may also be another example's negative."""
    out: dict[str, list[Candidate]] = {kind: [] for kind in KINDS}
    alternate = shorts = 0
    for doc in docs:
        body_words = sum(map(words, doc.body))
        if doc.type == "topic" or body_words >= MIN_LONG_LONG:
            parts = passages(doc)
            if parts:
                first, second, later = parts
                out["long-long"].append(Candidate("long-long", doc, with_header(doc, first), second, later=later))
                continue
        if body_words >= MIN_BODY:
            alternate += 1
            if alternate % 2:
                query = question(doc)
                if qualname_free(query, doc):
                    out["short-long"].append(Candidate("short-long", doc, query,
                                                       with_header(doc, capped([doc.summary] + doc.body))))
            else:
                out["long-short"].append(Candidate("long-short", doc, with_header(doc, capped(doc.body)),
                                                   doc.summary))
        elif doc.type in ("function", "method", "class") and "(" in (doc.header or ""):
            # A share of them (the rest stay free to be negatives in the first pass).
            shorts += 1
            candidate = short_short(doc)
            if shorts % SHORT_SHARE[1] < SHORT_SHARE[0] and candidate:
                out["short-short"].append(candidate)
    return out


def short_short(doc: Doc) -> Optional[Candidate]:
    query = question(doc)
    if doc.type in ("function", "method", "class") and "(" in (doc.header or "") and qualname_free(query, doc):
        return Candidate("short-short", doc, query, signed(doc))
    return None


def passages(doc: Doc) -> Optional[tuple[str, str, Optional[str]]]:
    """An entry's opening (summary and whole paragraphs, at least 35 words), the passage that
    continues it (at least 35 words), and what is left after that if it is 25 words or more."""
    parts = [doc.summary] + doc.body
    for cut in range(1, len(parts)):
        if sum(map(words, parts[:cut])) >= 35:
            break
    else:
        return None
    first = capped(parts[:cut], 100)
    rest = parts[cut:]
    for end in range(1, len(rest) + 1):
        if sum(map(words, rest[:end])) >= 35:
            break
    else:
        return None
    second = capped(rest[:end], 100)
    later = capped(rest[end:], 100)
    if not first or not second:
        return None
    return first, second, later if words(later) >= 25 else None


# The text a document gives as another example's negative: the form of the kind's positive (for
# the long kinds, shorter documentation too: a related object's entry may be brief).
def negative_text(kind: str, doc: Doc) -> Optional[str]:
    if kind == "short-long":
        text = with_header(doc, capped([doc.summary] + doc.body))
        return text if words(text) >= MIN_NEGATIVE else None
    if kind == "long-short":
        return doc.summary
    if kind == "short-short":
        return signed(doc) if doc.type in ("function", "method", "class") and "(" in (doc.header or "") else None
    text = capped(doc.body, 100)
    text = text if words(text) >= MIN_NEGATIVE else capped([doc.summary] + doc.body, 100)
    return text if words(text) >= MIN_NEGATIVE else None


# ---------------------------------------------------------------------------------------------
# The model: hard negatives, and the examples it can tell apart
# ---------------------------------------------------------------------------------------------

class Embedder:
    def __init__(self, cache: Optional[Path] = None):
        self.cache_path = cache
        self.cache: dict[str, "object"] = {}
        if cache and cache.exists():
            self.cache = pickle.loads(cache.read_bytes())
        self.model = None
        self.seconds = 0.0
        self.embedded = 0

    def __call__(self, texts: list[str]):
        import numpy as np

        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            if self.model is None:
                from sentence_transformers import SentenceTransformer

                from synthgen.models import default_embedding_model_path

                self.model = SentenceTransformer(str(default_embedding_model_path()), device="cpu")
            start = time.perf_counter()
            vectors = self.model.encode(todo, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
            self.seconds += time.perf_counter() - start
            self.embedded += len(todo)
            self.cache.update(zip(todo, vectors.astype(np.float32)))
            if self.cache_path:
                self.cache_path.write_bytes(pickle.dumps(self.cache))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)


def instructed(task: str, query: str) -> str:
    return f"Instruct: {task}\nQuery: {query}"


def choose(kind: str, found: list[Candidate], donors: list[Doc], taken: set[str], embed: Embedder, log,
           allowed: Optional[Callable[[str], bool]] = None) -> list[Candidate]:
    """Hard negatives for the kind's candidates, and the candidates the model tells apart.

    A negative is the same form of text from a related document among `donors` (same class, else
    same module, else same package; for long-long also the entry's own later passage), at least
    MARGIN below the positive for the instructed and for the bare query, and `allowed` (when given;
    it is told of each text taken): of those, the one the model scores highest for the instructed
    query. Each donor serves one example (`taken`, updated); the examples whose positive scores
    highest pick first.

    Then an example is kept when, among the positives of all the other examples of the kind, both
    its positive and its negative are in the top TOP_K for its query, instructed and bare: the first
    so that the clean example passes the consistency check, the second so that the example with its
    positive and negative swapped passes it too and is left to the false-negative check. Leaving an
    example out only removes a competitor, so examples are left out one at a time, the one with the
    most competitors above first, until every example left passes."""
    import numpy as np

    task = TASKS[kind]
    texts = {d.source: negative_text(kind, d) for d in donors}
    pool = sorted((d for d in donors if texts[d.source]), key=lambda d: d.source)
    by_family, by_package = defaultdict(list), defaultdict(list)
    for d in pool:
        by_family[d.family].append(d)
        by_package[d.package].append(d)
    row = {d.source: n for n, d in enumerate(pool)}
    pool_vectors = embed([texts[d.source] for d in pool])
    later_texts = [c.later or "" for c in found]
    later = embed(later_texts)
    positives = embed([c.positive for c in found])
    forms = {}
    for mode in ("instructed", "bare"):
        queries = embed([instructed(task, c.query) if mode == "instructed" else c.query for c in found])
        forms[mode] = (queries, (queries * positives).sum(1))
    chosen = []
    first = forms["instructed"][1]
    for i in sorted(range(len(found)), key=lambda i: (-first[i], found[i].doc.source)):
        c = found[i]
        related = sorted({d.source for d in by_family[c.doc.family] + by_package[c.doc.package]} - taken)
        options = [(pool_vectors[row[source]], source, texts[source]) for source in related]
        if c.later:
            options.append((later[i], c.doc.source + " (later)", c.later))
        scored = []
        for vector, source, text in options:
            margins = [own[i] - float(vector @ queries[i]) for queries, own in (forms[m] for m in MARGIN_MODES)]
            if min(margins) >= MARGIN:
                scored.append((float(vector @ forms["instructed"][0][i]), source, text))
        for _, source, text in sorted(scored, key=lambda o: (-o[0], o[1])):
            if allowed is None or allowed(text):
                taken.add(source)
                chosen.append(Candidate(kind, c.doc, c.query, c.positive, text, source))
                break
    log(f"{kind}: {len(found)} candidates, {len(chosen)} with a related negative {MARGIN} below the positive")
    alive = np.ones(len(chosen), dtype=bool)
    tables = []
    for mode in RANK_MODES:
        queries = embed([instructed(task, c.query) if mode == "instructed" else c.query for c in chosen])
        matrix = queries @ embed([c.positive for c in chosen]).T
        against_negatives = queries @ embed([c.negative for c in chosen]).T
        tables.append((matrix, against_negatives))
    while True:
        worst = np.zeros(len(chosen), dtype=int)
        for matrix, against_negatives in tables:
            pos, neg = np.diag(matrix), np.diag(against_negatives)
            # The others' positives (and negatives) as the example's competitors.
            competitors = [np.where(alive[None, :], matrix, -np.inf)]
            if AGAINST_NEGATIVES:
                competitors.append(np.where(alive[None, :], against_negatives, -np.inf))
            for table in competitors:
                np.fill_diagonal(table, -np.inf)
            above_pos = sum((table > pos[:, None]).sum(1) for table in competitors)
            above_neg = sum((table > neg[:, None]).sum(1) for table in competitors)
            worst = np.maximum(worst, np.maximum(above_pos, above_neg))
        worst[~alive] = -1
        failing = np.flatnonzero(worst >= TOP_K)
        if not len(failing):
            break
        # The worst goes first: leaving out one crowded example may let its neighbours pass.
        alive[min(failing, key=lambda i: (-worst[i], chosen[i].doc.source))] = False
    chosen = [c for c, a in zip(chosen, alive) if a]
    log(f"{kind}: {len(chosen)} kept whose positive and negative are both in the top {TOP_K}")
    return chosen


def build(cache: Optional[Path], log) -> list[dict]:
    docs = harvest_docstrings() + harvest_topics()
    log(f"{len(docs)} documents with a usable summary")
    docs = deduplicated(docs)
    log(f"{len(docs)} after repeated summaries and near-duplicate documents are left out")
    found = candidates(docs)
    embed = Embedder(cache)
    # First pass: any document that is no candidate of the kind may give a negative.
    kept: dict[str, list[Candidate]] = {}
    for kind in KINDS:
        mine = {c.doc.source for c in found[kind]}
        kept[kind] = choose(kind, found[kind], [d for d in docs if d.source not in mine], set(), embed, log)
    # Second pass: the negatives again, now only texts that nearly repeat no query or positive of any
    # example, nor a negative already taken (a document in one kind may still give another kind a
    # negative of another form: a method's signature line, say, when its long documentation is an
    # example); the candidates left out above are free to give theirs now.
    examples = NearIndex(0.6)
    for chosen in kept.values():
        for c in chosen:
            examples.add(c.query)
            examples.add(c.positive)
    negatives = NearIndex(0.6)

    def allowed(text: str) -> bool:
        if examples.near(text) or negatives.near(text):
            return False
        negatives.add(text)
        return True

    records = []
    for kind in KINDS:
        mine = {c.doc.source for c in kept[kind]}
        chosen = choose(kind, kept[kind], [d for d in docs if d.source not in mine], set(), embed, log, allowed)
        for c in chosen:
            records.append({"kind": kind, "task": TASKS[kind], "query": c.query, "positive": c.positive,
                            "negative": c.negative, "source": c.doc.source, "negative_source": c.negative_source})
    records = distinct(records)
    log(f"{len(records)} left when no text nearly repeats another example's (word 3-gram Jaccard >= 0.6)")
    log(f"embedded {embed.embedded} texts in {embed.seconds:.0f} s")
    records.sort(key=lambda r: (KINDS.index(r["kind"]), r["source"]))
    return records


def distinct(records: list[dict]) -> list[dict]:
    """The records none of whose texts nearly repeats a text of an earlier record (kind order, source)."""
    index = NearIndex(0.6)
    out = []
    for record in sorted(records, key=lambda r: (KINDS.index(r["kind"]), r["source"])):
        texts = [record["query"], record["positive"], record["negative"]]
        if any(index.near(text) for text in texts):
            continue
        for text in texts:
            index.add(text)
        out.append(record)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURE)
    parser.add_argument("--cache", type=Path, help="a pickle of embeddings kept between runs (any path)")
    parser.add_argument("--measure", action="store_true", help="measure the fixture instead of making it")
    parser.add_argument("--seeds", type=int, default=1, help="--measure: planted sets of seeds 0..N-1 (lowest shown)")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.measure:
        measure(args.out, args.cache, log, args.seeds)
        return
    records = build(args.cache, log)
    with open(args.out, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    counts = Counter(r["kind"] for r in records)
    log(f"wrote {len(records)} records to {args.out}: {dict(counts)}, {args.out.stat().st_size / 1e6:.1f} MB")


# ---------------------------------------------------------------------------------------------
# --measure: the checks as specified for curate, on the fixture and on planted sets
# ---------------------------------------------------------------------------------------------


def scores(records: list[dict], embed: Embedder, prefix: bool):
    """(query x positive) scores within each kind, and cos(query, negative): by kind."""
    out = {}
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            continue
        queries = embed([instructed(r["task"], r["query"]) if prefix else r["query"] for r in mine])
        positives = embed([r["positive"] for r in mine])
        negatives = embed([r["negative"] for r in mine])
        out[kind] = (mine, queries @ positives.T, (queries * negatives).sum(1))
    return out


def consistency_and_false_negative(records: list[dict], embed: Embedder, prefix: bool) -> tuple[set, set]:
    """The ids the consistency check drops (own positive not in the top 3 of its kind's positives),
    then the ids the false-negative check drops of those kept (negative above positive)."""
    import numpy as np

    inconsistent, false_negative = set(), set()
    for mine, matrix, negative in scores(records, embed, prefix).values():
        own = np.diag(matrix)
        rank = (matrix > own[:, None]).sum(1)  # positives scoring above the example's own
        for record, r, p, n in zip(mine, rank, own, negative):
            if r >= TOP_K:
                inconsistent.add(record["id"])
            elif n > p:
                false_negative.add(record["id"])
    return inconsistent, false_negative


def precision_recall(found: set, planted: set) -> tuple[float, float]:
    hits = len(found & planted)
    return (hits / len(found) if found else 1.0), hits / len(planted)


def measure(path: Path, cache: Optional[Path], log, seeds: int = 1) -> None:
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests"))
    from planted import planted_retrieval

    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    embed = Embedder(cache)
    start = time.perf_counter()
    for prefix in (True, False):
        scores(records, embed, prefix)
    log(f"fixture: {len(records)} records, {embed.embedded} texts embedded in {embed.seconds:.0f} s "
        f"({time.perf_counter() - start:.0f} s with the rest)")
    print("clean fixture, per kind: records, positive in the top 3 of the kind's positives, positive above negative")
    for prefix in (True, False):
        for kind, (mine, matrix, negative) in scores(records, embed, prefix).items():
            own = np.diag(matrix)
            top = ((matrix > own[:, None]).sum(1) < TOP_K).mean()
            margin = (own > negative).mean()
            print(f"  {'instructed' if prefix else 'bare      '} {kind:12} {len(mine):5}  top3 {top:.4f}  "
                  f"pos>neg {margin:.4f}")
    print("planted sets: precision / recall of each check on its own defect class")
    for sizes in ((300, 30, 30), (1500, 150, 150)):
        for prefix in (True, False):
            figures = []
            for seed in range(seeds):
                data = planted_retrieval(*sizes, seed=seed)
                inconsistent, false_negative = consistency_and_false_negative(data.records, embed, prefix)
                figures.append((*precision_recall(inconsistent, data.defects["inconsistent"]),
                                *precision_recall(false_negative, data.defects["false-negative"]),
                                len(inconsistent), len(false_negative)))
            pc, rc, pf, rf, ni, nf = figures[0]
            line = (f"  clean={sizes[0]} swapped={sizes[1]} better_negatives={sizes[2]} "
                    f"{'instructed' if prefix else 'bare'}: consistency P {pc:.3f} R {rc:.3f} ({ni} dropped); "
                    f"false-negative P {pf:.3f} R {rf:.3f} ({nf} dropped)")
            if seeds > 1:
                low = [min(f[n] for f in figures) for n in range(4)]
                line += f"; lowest of seeds 0-{seeds - 1}: P {low[0]:.3f} R {low[1]:.3f} / P {low[2]:.3f} R {low[3]:.3f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
