"""Configuration of the item-based k-nearest-neighbour baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ItemKNNConfig(BaseModel):
    """Hyperparameters of :class:`ItemKNNRecommender`."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["itemknn"] = "itemknn"
    """Discriminator naming the model family."""

    neighbors: int = Field(default=10, gt=0)
    """How many most similar items each target item keeps; the rest count as zero. The
    default 10 won on ML-100K validation NDCG@10 (grid 10-400, bench/notes/baseline_tuning.md);
    RecBole's default is 100."""

    shrinkage: float = Field(default=0.0, ge=0.0)
    """Added to the cosine denominator, ``co / (sqrt(n_i * n_j) + shrinkage)``, to damp
    similarities resting on few users."""

    normalize: bool = False
    """Rescale each target item's kept similarities to sum to one, so that an item's score is
    the share of its neighbourhood found in the user's history."""
