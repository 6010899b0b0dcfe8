"""Prompt templates: one file per stage and kind under prompts/, rendered with checked placeholders.

A placeholder is `{name}` with a lowercase identifier; any other brace (the JSON examples in the
prompts) is literal text, which is why str.format cannot be used.
"""

import re
from pathlib import Path
from typing import Mapping, Optional

from synthgen.errors import BadInput
from synthgen.grounded import GROUNDED, PASSAGE
from synthgen.kinds import KINDS, SUBTYPES, TASK
from synthgen.resources import resource_dir

PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
BRAINSTORM_PLACEHOLDERS = ("num_tasks", "topic", "persona", "known_tasks")


class PromptError(BadInput):
    pass


class Template:
    def __init__(self, text: str, declared: tuple[str, ...], name: str):
        self.name = name
        self.text = text
        self.declared = frozenset(declared)
        used = set(PLACEHOLDER.findall(text))
        unknown = used - self.declared
        if unknown:
            raise PromptError(f"template {name} uses unknown placeholder {{{sorted(unknown)[0]}}}")
        unused = self.declared - used
        if unused:
            raise PromptError(f"template {name} never uses placeholder {{{sorted(unused)[0]}}}")
        # Literal text at even positions, placeholder names at odd ones.
        self._parts = PLACEHOLDER.split(text)

    def render(self, values: Mapping[str, str]) -> str:
        if values.keys() != self.declared:
            missing = self.declared - values.keys()
            if missing:
                raise PromptError(f"template {self.name}: no value for {{{sorted(missing)[0]}}}")
            unknown = sorted(values.keys() - self.declared)[0]
            raise PromptError(f"template {self.name}: unknown placeholder {{{unknown}}}")
        parts = self._parts
        return "".join(part if i % 2 == 0 else values[part] for i, part in enumerate(parts))


def load_template(folder: Path, stage: str, kind: str, declared: tuple[str, ...]) -> Template:
    path = folder / stage / f"{kind}.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"cannot read template {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PromptError(f"cannot read template {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
                          f"at offset {exc.start}); save it as UTF-8") from None
    return Template(text, declared, f"{stage}/{kind}")


class Templates:
    """Every template of one prompts folder, loaded and checked up front; with corpus, the templates
    of examples grounded in a passage (corpus/) instead of the brainstorm's and generate's."""

    def __init__(self, folder: Optional[Path] = None, corpus: bool = False, given_tasks: bool = False):
        """corpus: the grounded templates, in corpus/ (the LLM writes the task) or, with given_tasks,
        in corpus-tasks/ (the task is given)."""
        self.folder = folder or resource_dir("prompts")
        self.brainstorm: dict[str, Template] = {}
        self.generate: dict[str, Template] = {}
        self.corpus: dict[str, Template] = {}
        if corpus:
            stage, task = ("corpus-tasks", (TASK,)) if given_tasks else ("corpus", ())
            self.corpus = {k: load_template(self.folder, stage, k, (PASSAGE, *task, *kind.placeholders))
                           for k, kind in GROUNDED.items()}
        else:
            self.brainstorm = {k: load_template(self.folder, "brainstorm", k, BRAINSTORM_PLACEHOLDERS) for k in SUBTYPES}
            self.generate = {k: load_template(self.folder, "generate", k, kind.placeholders) for k, kind in KINDS.items()}

    def texts(self) -> dict[str, str]:
        """Every template's text by name, for the run's fingerprint."""
        return {t.name: t.text for t in (*self.brainstorm.values(), *self.generate.values(), *self.corpus.values())}
