"""Configuration of the CTR cross-encoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lmrec.text.config import DEFAULT_MODEL
from lmrec.text.tuning import TuningConfig
from lmrec.training.config import TrainerConfig

#: Defaults shared by the config and the example builders, so both agree.
DEFAULT_PROFILE_ITEMS = 5
DEFAULT_POSITIVE_THRESHOLD = 4.0
DEFAULT_NEGATIVES = 1

Objective = Literal["bce", "mse"]


def _default_trainer() -> TrainerConfig:
    return TrainerConfig(
        epochs=10,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.01,
        warmup_ratio=0.1,
        patience=2,
        monitor="auc",
    )


class CTRConfig(BaseModel):
    """Hyperparameters of :class:`CTRModel`, the click / like predictor.

    Input ``"<user profile text> [SEP] <item text>"`` → pretrained language model → pooled
    vector → MLP head → one logit; ``P(click | user, item) = sigmoid(logit)``.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["ctr"] = "ctr"
    """Discriminator naming the model family."""

    model: str = DEFAULT_MODEL
    """The language model: a local checkpoint folder, a hub name in the local Hugging Face
    cache, or ``"default"`` for all-MiniLM-L6-v2 (see :class:`lmrec.text.TextEncoderConfig`)."""

    max_length: int = Field(default=128, ge=8)
    """Tokens per (profile, item) pair, special tokens included. The profile is truncated
    first; the item text keeps at least half of the room."""

    tuning: TuningConfig = Field(default_factory=TuningConfig)
    """How the language model is trained: ``frozen`` (pair vectors computed once, only the
    head trains), ``top_k``, ``full``, ``lora``, ``adalora``, ``prefix`` or ``adapter``. The
    encoder's learning rate is ``trainer.lr * tuning.lr_scale``."""

    objective: Objective = "bce"
    """``bce``: sigmoid + binary cross-entropy on click / like labels. ``mse``: regression of
    the explicit rating scaled to ``[0, 1]`` (the sigmoid output is the predicted rating);
    needs ratings."""

    head_hidden: int = Field(default=256, ge=1)
    """Width of the MLP head's hidden layer."""

    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout on the pooled vector and on the head's hidden layer."""

    profile_items: int = Field(default=DEFAULT_PROFILE_ITEMS, ge=0)
    """Most recent history items whose titles describe the user, newest first."""

    profile_categories: int = Field(default=0, ge=0)
    """Top categories of the user's recency-weighted history (:func:`lmrec.profile.top_categories`
    over the last ``profile_window`` items) added to the profile as ``"likes: Drama, Sci-Fi"``.
    ``0`` (the default) adds none, which is the profile of every model saved before this
    field existed; a dataset without item categories adds none either."""

    profile_window: int = Field(default=50, ge=1)
    """Most recent history items whose categories make ``profile_categories``."""

    user_fields: tuple[str, ...] | None = None
    """User attribute columns shown in the profile, in order; unset shows every column of
    the dataset's users table except zip / postal codes (quasi-identifiers that carry little
    taste and would let the model memorise individuals)."""

    text_fields: tuple[str, ...] | None = None
    """Item columns in the item side of the pair; unset uses the dataset's ``text_fields``."""

    positive_threshold: float = DEFAULT_POSITIVE_THRESHOLD
    """Explicit ratings: an interaction is a positive (like) iff its rating is at least
    this; every rated interaction is an example."""

    negatives_per_positive: int = Field(default=DEFAULT_NEGATIVES, ge=1)
    """Implicit data (no ratings): items sampled uniformly per interaction from those the
    user never interacted with, each a negative example."""

    max_examples: int | None = Field(default=20_000, ge=1)
    """Training examples kept (a seeded uniform sample); ``None`` keeps all. Every example
    runs the language model over a whole (profile, item) pair, on CPU a few milliseconds
    per example and epoch even when frozen, so a full catalog-sized set (ML-100K: 100k
    ratings) costs hours per epoch; a sample keeps a run in minutes."""

    score_batch_size: int = Field(default=64, ge=1)
    """Pairs per forward pass when predicting (pairs of similar length batched together)."""

    trainer: TrainerConfig = Field(default_factory=_default_trainer)
    """Optimisation settings; early stopping monitors validation ``auc`` by default (also
    available: ``gauc`` and ``neg_logloss``). A partial table fills the rest from the CTR
    defaults (so ``monitor`` stays ``auc``), not from :class:`TrainerConfig`'s."""

    @property
    def history_items(self) -> int:
        """History items each example's profile keeps: the titles' and the categories'."""
        return max(self.profile_items, self.profile_window if self.profile_categories else 0)

    @field_validator("trainer", mode="before")
    @classmethod
    def _ctr_trainer_defaults(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {**_default_trainer().model_dump(), **value}
        return value
