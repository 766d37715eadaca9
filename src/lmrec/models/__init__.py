"""Recommender models and the one place that maps a config ``type`` to a model class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from lmrec.errors import ModelFileError
from lmrec.models.base import BaseRecommender, FitReport, Recommendation, Recommender

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "BaseRecommender",
    "FitReport",
    "Recommendation",
    "Recommender",
    "build_model",
    "load_model",
    "model_classes",
]


def model_classes() -> dict[str, type[BaseRecommender]]:
    """Every model lmrec can build, by its config ``type``."""
    from lmrec.models.baselines import (
        BPRRecommender,
        ItemKNNRecommender,
        PopularityRecommender,
        SASRecRecommender,
    )
    from lmrec.models.text import TextMeanRecommender, TextSeqRecommender

    classes: list[type[BaseRecommender]] = [
        PopularityRecommender,
        ItemKNNRecommender,
        BPRRecommender,
        SASRecRecommender,
        TextSeqRecommender,
        TextMeanRecommender,
    ]
    return {c.name: c for c in classes}


def build_model(config: BaseModel) -> BaseRecommender:
    """An unfitted model from its validated config (the config's ``type`` picks the class)."""
    kind = getattr(config, "type", None)
    classes = model_classes()
    if kind not in classes:
        raise ValueError(f"unknown model type {kind!r}; known: {', '.join(sorted(classes))}")
    return classes[kind].from_config_dict(config.model_dump(mode="json"))


def load_model(path: str | Path) -> BaseRecommender:
    """Load any saved model; the kind is read from ``model.json``."""
    meta_file = Path(path) / "model.json"
    if not meta_file.exists():
        raise ModelFileError(f"{path} holds no saved model (model.json is missing)")
    kind = json.loads(meta_file.read_text()).get("model")
    classes = model_classes()
    if kind not in classes:
        raise ModelFileError(f"{path} holds an unknown model kind {kind!r}")
    return classes[kind].load(path)
