"""The package's shape: imports flow one way, and only the store names a run file or a record field."""

import ast
import re
from pathlib import Path

import synthgen

PACKAGE = Path(synthgen.__file__).parent
STORE = PACKAGE / "store.py"


def modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        trees[name] = ast.parse(path.read_text(encoding="utf-8"))
    return trees


def imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("synthgen"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("synthgen")}
    return found


def test_no_import_circle():
    graph = {name: imports(tree) & set(modules()) for name, tree in modules().items()}
    circles = []

    def visit(name, path):
        if name in path:
            circles.append(" -> ".join(path[path.index(name):] + [name]))
            return
        for other in sorted(graph.get(name, ())):
            visit(other, path + [name])

    for name in graph:
        visit(name, [])
    assert circles == []


def test_llm_knows_nothing_of_kinds_prompts_or_the_store():
    for name, tree in modules().items():
        if name.startswith("synthgen.llm"):
            assert not {m for m in imports(tree) if not m.startswith(("synthgen.llm", "synthgen.errors"))}, name


def test_only_the_store_names_run_files_and_builds_examples():
    run_files = re.compile(r"examples\.jsonl|rejects\.jsonl|manifest\.json")
    for path in PACKAGE.rglob("*.py"):
        if path == STORE:
            continue
        text = path.read_text(encoding="utf-8")
        assert not run_files.search(text), f"{path.name} names a file of the run folder"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Dict):
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
                assert "positive" not in keys, f"{path.name}:{node.lineno} builds a record by hand"
