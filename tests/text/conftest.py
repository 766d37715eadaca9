"""Text-encoder fixtures: one MiniLM per session, and a tiny random GPT-2 written offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lmrec.text import ItemTextEncoder, TextEncoderConfig

TINY_WORDS = ["alien", "horror", "sci-fi", "comedy", "toy", "story", "title", "genres", ":", ";"]


@pytest.fixture(scope="session")
def minilm() -> ItemTextEncoder:
    """The default all-MiniLM-L6-v2 encoder, loaded once; tests must not change it."""
    return ItemTextEncoder(TextEncoderConfig(batch_size=4))


def write_tiny_gpt2(directory: Path) -> Path:
    """A 2-layer randomly initialised GPT-2 and a word-level tokenizer without a pad token."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(TINY_WORDS)}}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", eos_token="<eos>", model_max_length=32
    )
    config = GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=2,
        n_positions=32,
        vocab_size=len(vocab),
        bos_token_id=1,
        eos_token_id=1,
    )
    torch.manual_seed(0)
    model = GPT2Model(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    assert "pad_token" not in json.loads((directory / "tokenizer_config.json").read_text())
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")
