"""The zero-training reference: a user is the mean of their history's frozen text vectors.

This is "the language model before fine-tuning": items and users live in the pretrained
encoder's space and items are ranked by cosine similarity to the user's mean vector. It
needs no training at all, so it is also how a cold catalog is served on day one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from lmrec.data.schema import InteractionData
from lmrec.errors import ModelFileError
from lmrec.models.base import FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.text._base import TextRecommenderBase
from lmrec.models.text._config import TextMeanConfig
from lmrec.models.text._content import mean_cosine

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_VECTORS_FILE = "item_vectors.npy"


class TextMeanRecommender(TextRecommenderBase):
    """Cosine similarity between an item's text vector and the mean of the history's.

    Args:
        config: A :class:`TextMeanConfig`, a dict of its fields, or ``None`` for defaults.
        **overrides: Config fields that replace those of ``config``.
    """

    name: ClassVar[str] = "text_mean"

    def __init__(
        self, config: TextMeanConfig | Mapping[str, Any] | None = None, **overrides: Any
    ) -> None:
        super().__init__()
        self.config = build_config(TextMeanConfig, config, **overrides)
        self.item_vectors: np.ndarray | None = None

    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        start = time.perf_counter()
        texts = self._texts_for(train)
        vectors = self.frozen_vectors(texts, show_progress=self.fit_options.show_progress)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.item_vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return FitReport(
            train_seconds=time.perf_counter() - start, epochs=1, encode_seconds=self.encode_seconds
        )

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Cosine scores; ``users`` is ignored. An empty history scores every item 0."""
        vectors: np.ndarray = self._require(self.item_vectors)
        out = np.zeros((len(histories), len(vectors)), dtype=np.float32)
        step = self.config.score_batch_size
        for start in range(0, len(histories), step):
            chunk = histories[start : start + step]
            out[start : start + len(chunk)] = mean_cosine(vectors, chunk, self.config.max_len)
        return out

    def _item_text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.frozen_vectors(texts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def _store_item_vectors(
        self, appended: np.ndarray, rows: np.ndarray, replaced: np.ndarray
    ) -> None:
        vectors: np.ndarray = self._require(self.item_vectors).copy()
        vectors[rows] = replaced
        self.item_vectors = np.concatenate([vectors, appended.astype(np.float32)])

    def _save_state(self, path: Path) -> None:
        np.save(path / _VECTORS_FILE, self._require(self.item_vectors))
        self._save_texts(path)

    def _load_state(self, path: Path) -> None:
        file = path / _VECTORS_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_VECTORS_FILE}")
        self.item_vectors = np.load(file)
        if len(self.item_vectors) != self.n_items:
            raise ModelFileError(
                f"{file} has {len(self.item_vectors)} rows for {self.n_items} items"
            )
        self._load_texts(path)
