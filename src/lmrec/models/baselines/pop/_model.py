"""The most-popular baseline: every user gets the items interacted with most in training."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lmrec.data.schema import InteractionData
from lmrec.errors import ModelFileError
from lmrec.models.base import BaseRecommender, FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.baselines.pop._config import PopConfig

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_STATE_FILE = "pop.npz"


class PopularityRecommender(BaseRecommender):
    """Scores each item by its number of training interactions, the same for every user.

    The score of item ``i`` is ``count[i] + tie[i]`` where ``tie[i]`` lies in ``[0, 1)`` and
    decreases with the item index, so ``floor(score)`` is the count and items with equal
    counts rank by index (lower first) deterministically, also under pessimistic tie
    handling. For catalogs so large that float32 cannot resolve the fraction, equal counts
    tie exactly and ``recommend`` still orders them by index.

    Args:
        config: A :class:`PopConfig`, a dict of its fields, or ``None``.
    """

    name: ClassVar[str] = "pop"

    def __init__(self, config: PopConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = build_config(PopConfig, config)
        self.item_scores: np.ndarray | None = None

    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        start = time.perf_counter()
        counts = train.item_counts().astype(np.float64)
        n = len(counts)
        tie = (n - np.arange(n, dtype=np.float64)) / (n + 1)
        self.item_scores = (counts + tie).astype(np.float32)
        return FitReport(train_seconds=time.perf_counter() - start, epochs=1)

    @property
    def item_counts(self) -> np.ndarray:
        """Training interactions per item index."""
        scores: np.ndarray = self._require(self.item_scores)
        return np.floor(scores).astype(np.int64)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The popularity row for every user, shape ``(len(users), n_items)``, float32."""
        scores: np.ndarray = self._require(self.item_scores)
        return np.broadcast_to(scores, (len(users), len(scores))).copy()

    def _save_state(self, path: Path) -> None:
        np.savez(path / _STATE_FILE, item_scores=self._require(self.item_scores))

    def _load_state(self, path: Path) -> None:
        file = path / _STATE_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_STATE_FILE}")
        with np.load(file) as state:
            self.item_scores = state["item_scores"]
