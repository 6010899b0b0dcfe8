"""The model `synthgen train` starts from, and how it is saved.

A sentence-transformers model (a name or folder with modules.json) is used as it is. A plain
Hugging Face decoder (Mistral, Qwen, Llama: a causal LM's folder or name) is made into an embedder
as the paper made E5-mistral: the EOS token appended to every text (the tokenizer's own setting, so
the saved model does it wherever it is loaded) and the last token's hidden state as the embedding,
normalised. With LoRA (peft; the paper's rank 16) only the adapter's weights train; the adapter is
saved on its own and merged into a full model that sentence-transformers loads with no peft.

peft is driven directly rather than through sentence-transformers' add_adapter: that path goes
through transformers' PEFT integration, which refuses the peft releases this environment has.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from synthgen.errors import BadInput

ADAPTER_DIR = "adapter"


@dataclass
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_sentence_transformer(source: str) -> bool:
    """A folder holding a sentence-transformers model; a hub name is judged by loading it."""
    return (Path(source) / "modules.json").is_file()


def is_decoder(source: str) -> bool:
    """A causal language model's config (Mistral, Qwen2, Llama, GPT-2, ...)."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception:  # not a transformers model folder or name: SentenceTransformer says what is wrong
        return False
    encoder_decoder = getattr(config, "is_encoder_decoder", False)
    return config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not encoder_decoder


def decoder_embedder(source: str, max_seq_length: Optional[int], device: Optional[str]) -> Any:
    """Last-token pooling over the decoder's hidden states, with EOS appended to every text."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.base.modules.normalize import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling

    transformer = Transformer(source, max_seq_length=max_seq_length)
    tokenizer = transformer.tokenizer
    if tokenizer.eos_token_id is None:
        raise BadInput(f"the decoder {source} has no EOS token to pool on")
    tokenizer.add_eos_token = True  # kept in tokenizer_config.json: the saved model appends it too
    if tokenizer("x")["input_ids"][-1] != tokenizer.eos_token_id:
        raise BadInput(f"the tokenizer of {source} does not append its EOS token when asked (add_eos_token)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # the attention mask, not the pad id, marks the last token
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="lasttoken")
    return SentenceTransformer(modules=[transformer, pooling, Normalize()], device=device)


def load_base_model(source: str, bundled: bool, max_seq_length: Optional[int],
                    device: Optional[str]) -> tuple[Any, str, bool]:
    """(model, where it came from, whether it is a decoder pooled on its last token); `bundled`: the
    offline all-MiniLM-L6-v2, known to be a sentence-transformers model."""
    from sentence_transformers import SentenceTransformer

    try:
        if not bundled and not is_sentence_transformer(source) and is_decoder(source):
            return decoder_embedder(source, max_seq_length, device), source, True
        model = SentenceTransformer(source, device=device)
    except BadInput:
        raise
    except Exception as exc:  # a wrong name or a broken folder: many exception types
        raise BadInput(f"cannot load the base model {source}: {_first_line(exc)}") from None
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model, source, False


def add_lora(model: Any, settings: LoraSettings) -> dict[str, int]:
    """Wrap the transformer in a LoRA adapter on every linear layer; returns the parameter counts."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise BadInput("--lora needs peft: pip install 'synthgen[train]'") from None
    transformer = model[0]
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules="all-linear")
    try:
        # `model` is the attribute the module runs (auto_model is a read-only view of it).
        transformer.model = get_peft_model(transformer.model, config)
    except ValueError as exc:  # no linear layer peft knows how to wrap
        raise BadInput(f"--lora: {_first_line(exc)}") from None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable_parameters": trainable, "parameters": sum(p.numel() for p in model.parameters())}


def has_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model[0].model, PeftModel)


def save_model(model: Any, out: Path) -> Optional[Path]:
    """The model into OUT; with LoRA, the adapter into OUT/adapter and the merged model into OUT.
    Returns the adapter's folder, if any."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        lora = has_lora(model)
    except ImportError:
        lora = False
    if not lora:
        model.save(str(out))
        return None
    transformer = model[0]
    adapter = out / ADAPTER_DIR
    transformer.model.save_pretrained(str(adapter))
    transformer.model = transformer.model.merge_and_unload()
    model.save(str(out))
    return adapter
