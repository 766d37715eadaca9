"""Configuration of the BPR matrix-factorisation baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BPRConfig(BaseModel):
    """Hyperparameters of :class:`BPRRecommender`; defaults tuned on ML-100K leave-one-out."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["bpr"] = "bpr"
    """Discriminator naming the model family."""

    factors: int = Field(default=64, gt=0)
    """Dimension of the user and item embeddings."""

    item_bias: bool = True
    """Learn one bias per item, added to the dot product (also the new-user fallback)."""

    epochs: int = Field(default=100, gt=0)
    """Maximum passes over the training interactions."""

    batch_size: int = Field(default=1024, gt=0)
    """(user, positive, negative) triples per optimiser step."""

    lr: float = Field(default=1e-3, gt=0.0)
    """Learning rate of the optimiser."""

    reg: float = Field(default=1e-3, ge=0.0)
    """L2 strength. With ``adam`` it penalises the squared norms of the embeddings and biases
    used by each triple (mean over the batch); with ``adamw`` it is the decoupled weight decay
    of all parameters."""

    optimizer: Literal["adam", "adamw"] = "adam"
    """Optimiser; decides how ``reg`` is applied."""

    init_std: float = Field(default=0.1, gt=0.0)
    """Standard deviation of the normal initialisation of the embeddings (biases start at 0)."""

    exclude_positives: bool = True
    """Resample negatives that the user interacted with in training."""

    seed: int = Field(default=0, ge=0)
    """Seed of the initialisation, the shuffling and the negative sampling."""

    eval_every: int = Field(default=1, gt=0)
    """Epochs between validation runs when ``fit`` gets a validation task."""

    patience: int | None = Field(default=20, gt=0)
    """Validation runs without improvement before training stops; ``None`` never stops
    early (the best validated epoch is still restored)."""
