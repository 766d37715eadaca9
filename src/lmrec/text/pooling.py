"""Pooling token states into one vector per text, and picking the pooling for a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from lmrec.errors import ConfigError

#: A pooling that has been resolved for a model (never ``auto``).
ResolvedPooling = Literal["mean", "last", "cls"]


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the states of the real (mask = 1) tokens.

    Args:
        hidden: ``(batch, tokens, dim)`` token states.
        attention_mask: ``(batch, tokens)`` with 1 for real tokens and 0 for padding.

    Returns:
        ``(batch, dim)``; a row without any real token is all zeros.
    """
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Take the state of each row's last real token, wherever the padding is.

    With right padding that is position ``length - 1``; with left padding it is the final
    position. A row without any real token takes position 0.

    Args:
        hidden: ``(batch, tokens, dim)`` token states.
        attention_mask: ``(batch, tokens)`` with 1 for real tokens and 0 for padding.

    Returns:
        ``(batch, dim)``.
    """
    positions = torch.arange(1, attention_mask.shape[1] + 1, device=attention_mask.device)
    # The largest (position + 1) among real tokens marks the last one.
    last = (attention_mask.long() * positions).argmax(dim=1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last.to(hidden.device)]


def cls_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Take the state of the first token (``[CLS]`` in BERT-style models).

    Args:
        hidden: ``(batch, tokens, dim)`` token states.
        attention_mask: Unused; present so every pooling has the same signature.

    Returns:
        ``(batch, dim)``.
    """
    del attention_mask
    return hidden[:, 0]


POOLINGS: dict[ResolvedPooling, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool,
    "last": last_token_pool,
    "cls": cls_pool,
}


def pool(name: ResolvedPooling, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Apply the pooling called ``name`` (``mean``, ``last`` or ``cls``)."""
    return POOLINGS[name](hidden, attention_mask)


def is_decoder_only(model_config: Any) -> bool:
    """Whether a Hugging Face model config describes a decoder-only (GPT-style) model.

    A model counts as decoder-only when its config says ``is_decoder`` or its type has a
    causal-LM head but no masked-LM head in ``transformers`` (GPT-2, Llama, Qwen, ...; BERT has
    both and stays an encoder); for unknown types, when an architecture name ends in
    ``ForCausalLM`` or ``LMHeadModel``. Encoder-decoder models never count.

    Args:
        model_config: A ``transformers.PretrainedConfig``.
    """
    if getattr(model_config, "is_encoder_decoder", False):
        return False
    if getattr(model_config, "is_decoder", False):
        return True
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(model_config, "model_type", None)
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return False
    architectures = getattr(model_config, "architectures", None) or []
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)


def resolve_pooling(requested: str, model_config: Any) -> ResolvedPooling:
    """Turn ``auto`` into ``last`` for decoder-only models and ``mean`` otherwise.

    Args:
        requested: ``auto``, ``mean``, ``last`` or ``cls``.
        model_config: The model's ``transformers.PretrainedConfig``.
    """
    if requested == "auto":
        return "last" if is_decoder_only(model_config) else "mean"
    if requested not in POOLINGS:
        raise ConfigError(f"pooling: unknown value {requested!r}; use auto, mean, last or cls")
    return requested
