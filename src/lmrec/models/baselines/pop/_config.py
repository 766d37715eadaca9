"""Configuration of the most-popular baseline."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class PopConfig(BaseModel):
    """Hyperparameters of :class:`PopularityRecommender` (it has none to tune)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["pop"] = "pop"
    """Discriminator naming the model family."""
