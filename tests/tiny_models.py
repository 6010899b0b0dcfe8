"""Tiny randomly initialised models built from a config (no download), for the training tests: an
encoder as a sentence-transformers folder, and a decoder as a plain Hugging Face folder (what a user
gives for Mistral-7B). Both use the offline all-MiniLM-L6-v2's word pieces, so texts tokenise as
they would for a real model; they are small enough that a training step takes milliseconds.
"""

import json
from pathlib import Path

HIDDEN = 32


def _tokenizer(bos: str, eos: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from synthgen.models import default_embedding_model_path

    backend = Tokenizer.from_file(str(default_embedding_model_path() / "tokenizer.json"))
    backend.post_processor = None  # a decoder's tokenizer adds no [CLS] ... [SEP]
    backend.no_truncation()
    backend.no_padding()
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token="[UNK]",
                                   pad_token="[PAD]", model_max_length=128)


def tiny_encoder(folder: Path) -> Path:
    """A 2-layer BERT with mean pooling, as a sentence-transformers folder; no dropout, so a step's
    loss depends on the batch alone (what comparing two losses needs)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    from synthgen.models import default_embedding_model_path

    source = default_embedding_model_path()
    plain = folder.with_name(folder.name + "-hf")
    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(plain)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            (plain / name).write_bytes((source / name).read_bytes())
    transformer = Transformer(str(plain), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(HIDDEN, pooling_mode="mean")], device="cpu")
    model.save(str(folder))
    return folder


def tiny_decoder(folder: Path) -> Path:
    """A 2-layer Mistral from a config, saved as a plain Hugging Face folder (no modules.json)."""
    import torch
    from transformers import MistralConfig, MistralModel

    tokenizer = _tokenizer(bos="[CLS]", eos="[SEP]")
    config = MistralConfig(vocab_size=30522, hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    MistralModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert not (folder / "modules.json").exists()
    json.loads((folder / "config.json").read_text())  # a transformers folder, as a user would give
    return folder
