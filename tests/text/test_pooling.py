"""Pooling functions on hand-made tensors, and the choice of pooling per model kind."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

from lmrec.errors import ConfigError
from lmrec.text import cls_pool, is_decoder_only, last_token_pool, mean_pool, resolve_pooling

# Two texts of 3 and 2 tokens; each token state is (position, 10 * row + position).
HIDDEN = torch.tensor(
    [
        [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [99.0, 99.0]],
        [[4.0, 40.0], [5.0, 50.0], [99.0, 99.0], [99.0, 99.0]],
    ]
)
RIGHT_MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])


def test_mean_pool_ignores_padding() -> None:
    out = mean_pool(HIDDEN, RIGHT_MASK)
    assert torch.allclose(out, torch.tensor([[2.0, 20.0], [4.5, 45.0]]))


def test_mean_pool_row_without_tokens_is_zero() -> None:
    out = mean_pool(HIDDEN, torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]]))
    assert torch.equal(out, torch.tensor([[1.0, 10.0], [0.0, 0.0]]))


def test_last_token_pool_right_padding() -> None:
    out = last_token_pool(HIDDEN, RIGHT_MASK)
    assert torch.equal(out, torch.tensor([[3.0, 30.0], [5.0, 50.0]]))


def test_last_token_pool_left_padding() -> None:
    hidden = torch.tensor([[[9.0], [1.0], [2.0]], [[3.0], [4.0], [5.0]]])
    out = last_token_pool(hidden, torch.tensor([[0, 1, 1], [1, 1, 1]]))
    assert torch.equal(out, torch.tensor([[2.0], [5.0]]))


def test_cls_pool_takes_first_token() -> None:
    assert torch.equal(cls_pool(HIDDEN, RIGHT_MASK), torch.tensor([[1.0, 10.0], [4.0, 40.0]]))


def test_mean_pool_gradients_skip_padding() -> None:
    hidden = HIDDEN.clone().requires_grad_(True)
    mean_pool(hidden, RIGHT_MASK).sum().backward()
    assert hidden.grad is not None
    assert torch.equal(hidden.grad[0, 3], torch.zeros(2))
    assert torch.allclose(hidden.grad[1, 0], torch.full((2,), 0.5))


def test_decoder_only_detection() -> None:
    assert is_decoder_only(GPT2Config())
    assert is_decoder_only(LlamaConfig())
    assert not is_decoder_only(BertConfig())
    assert not is_decoder_only(T5Config())
    assert is_decoder_only(BertConfig(is_decoder=True))


def test_resolve_pooling() -> None:
    assert resolve_pooling("auto", GPT2Config()) == "last"
    assert resolve_pooling("auto", BertConfig()) == "mean"
    assert resolve_pooling("cls", GPT2Config()) == "cls"
    with pytest.raises(ConfigError, match="pooling"):
        resolve_pooling("max", BertConfig())
