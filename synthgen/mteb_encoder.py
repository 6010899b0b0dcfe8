"""A synthgen embedder as an MTEB encoder: a local sentence-transformers model or a /v1/embeddings
endpoint, with synthgen's query template in place of MTEB's prompts.

MTEB chooses each task's instruction (the task's own prompt, else one per task type, or what the
user gives with --prompt, by MTEB's own rules: AbsEncoder.get_instruction), and synthgen writes it
the way the model was trained: `Instruct: {task}\\nQuery: {query}` on the query side, documents
bare. Symmetric tasks (STS, classification, clustering, pair classification, bitext) have no
document side: every text is a query there, as in the E5-mistral paper. Imports mteb: only
`synthgen eval mteb` loads this module.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction
from mteb.types import PromptType
from tqdm import tqdm

from synthgen.embedders import Embedder
from synthgen.instructions import query_text

CHUNK = 1024  # texts handed to the embedder at once (the progress bar moves per chunk)


class SynthgenEncoder(AbsEncoder):
    def __init__(self, embedder: Embedder, template: str, prompts: Optional[dict[str, str]] = None):
        self.embedder, self.template = embedder, template
        self.prompts_dict = prompts or None  # what AbsEncoder.get_instruction looks in first
        settings = {"embedder": embedder.identity(), "query_template": template, "prompts": prompts or {}}
        digest = hashlib.blake2b(json.dumps(settings, sort_keys=True, default=str).encode(), digest_size=6).hexdigest()
        # Results are filed under the model's name and this revision: weights, template or prompts
        # changed, another folder.
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={
            "name": model_name(embedder.name), "revision": digest, "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": True, "framework": ["Sentence Transformers"] if embedder.describe().get("via")
            == "sentence-transformers" else [], "max_tokens": embedder.describe().get("max_seq_length")})

    def encode(self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str,
               prompt_type: Optional[PromptType] = None, **kwargs: Any) -> Any:
        texts = [text for batch in inputs for text in batch["text"]]
        if prompt_type != PromptType.document:
            instruction = self.get_instruction(task_metadata, prompt_type)
            texts = [query_text(self.template, instruction, text) for text in texts]
        parts = []
        with tqdm(total=len(texts), desc=f"{task_metadata.name} {prompt_type.value if prompt_type else 'texts'}",
                  unit="text", disable=None if kwargs.get("show_progress_bar", True) else True) as bar:
            for start in range(0, len(texts), CHUNK):
                parts.append(np.asarray(self.embedder.embed(texts[start:start + CHUNK]), dtype=np.float32))
                bar.update(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def model_name(name: str) -> str:
    """A local folder is named by its own name (its path would make a folder per place it is run
    from); a hub or served model name stays as it is."""
    path = Path(name)
    return path.resolve().name if path.exists() else name
