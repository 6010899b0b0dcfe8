"""A held-out split of stored examples, deterministic and disjoint by task, or by document.

Every example of one task (kind + task definition) goes to the same side, so the test side holds
instructions the model was never trained on. The kinds with one fixed instruction (sts, bitext)
would otherwise land whole on one side: they are split example by example instead (by kind +
query). Examples grounded in a user's corpus (generate --corpus) are split by their document, so
no document is on both sides and the test side measures documents the model never saw. Groups are ordered by a seeded digest of their key and taken into the test side until it
holds the share asked for, so the same input and seed always give the same split.
"""

import collections
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from synthgen.errors import BadInput
from synthgen.files import AtomicFile, write_atomic
from synthgen.kinds import KINDS
from synthgen.store import Example, ReadCounts, example_files, hold_output, read_example_lines

TRAIN, TEST = "train.jsonl", "test.jsonl"


def group_key(example: Example) -> str:
    if example.doc_id is not None:
        return json.dumps(["document", example.doc_id], ensure_ascii=False)
    kind = KINDS.get(example.kind)
    if (kind is not None and not kind.brainstormed) or not example.task:
        return json.dumps(["example", example.kind, example.query], ensure_ascii=False)
    return json.dumps(["task", example.kind, example.task], ensure_ascii=False)


def rank(key: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=16).digest()


@dataclass
class SplitResult:
    counts: ReadCounts = field(default_factory=ReadCounts)
    train: int = 0
    test: int = 0
    train_groups: int = 0
    test_groups: int = 0
    test_tasks: list[str] = field(default_factory=list)
    test_documents: list[str] = field(default_factory=list)


def split(paths: list[Path], out: Path, test_share: float = 0.2, seed: int = 0) -> SplitResult:
    """Write OUT/train.jsonl and OUT/test.jsonl (the lines as they were) and OUT/split.json."""
    if not 0 < test_share < 1:
        raise BadInput(f"--test-share {test_share}: give a share between 0 and 1, e.g. 0.2")
    # Files already in OUT (an earlier split) are not input.
    files = [f for f in example_files(paths) if out.resolve() not in f.resolve().parents]
    if not files:
        raise BadInput(f"no JSONL file to split outside {out}")
    sizes: collections.Counter = collections.Counter()
    first_pass = ReadCounts()
    for _, example in read_example_lines(files, first_pass):
        sizes[group_key(example)] += 1
    if len(sizes) < 2:
        raise BadInput(f"{first_pass.examples} examples in {len(sizes)} group: a split needs at least two tasks "
                       "(or two documents)")
    wanted = test_share * sum(sizes.values())
    test_groups: set[str] = set()
    taken = 0
    for key in sorted(sizes, key=lambda k: rank(k, seed)):
        if taken >= wanted or len(test_groups) == len(sizes) - 1:
            break
        test_groups.add(key)
        taken += sizes[key]
    result = SplitResult()
    with hold_output(out / TRAIN, "split"):
        train_file, test_file = AtomicFile(out / TRAIN), AtomicFile(out / TEST)
        try:
            for line, example in read_example_lines(files, result.counts):
                if group_key(example) in test_groups:
                    test_file.file.write(line)
                    result.test += 1
                else:
                    train_file.file.write(line)
                    result.train += 1
        except BaseException:
            train_file.abort()
            test_file.abort()
            raise
        train_file.commit()
        test_file.commit()
        result.test_groups = len(test_groups)
        result.train_groups = len(sizes) - len(test_groups)
        result.test_tasks = sorted(json.loads(k)[2] for k in test_groups if json.loads(k)[0] == "task")
        result.test_documents = sorted(json.loads(k)[1] for k in test_groups if json.loads(k)[0] == "document")
        _write_summary(out, seed, test_share, files, result)
    return result


def _write_summary(out: Path, seed: int, test_share: float, files: list[Path], result: "SplitResult") -> None:
    summary = {"seed": seed, "test_share": test_share, "inputs": [str(f) for f in files],
               "train": result.train, "test": result.test, "train_groups": result.train_groups,
               "test_groups": result.test_groups, "test_tasks": result.test_tasks,
               "test_documents": result.test_documents,
               "grouping": "grounded examples by document; brainstormed kinds by kind + task; sts and bitext "
                           "(one fixed instruction) by kind + query"}
    write_atomic(out / "split.json", (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
