"""The content prior of the text sequential model: a blend with plain text similarity.

A trained text model scores items it was trained on with everything training taught it
(popularity and co-occurrence included) and new items from their text through the same
adaptor, with none of that. The content prior is the zero-training text score (``text_mean``:
cosine between an item's language-model vector and the mean of the history's), which treats
every item alike. ``content_weight`` ``w`` blends the two, each standardised per user over
the catalog::

    score = (1 - w) * z(trained score) + w * z(content score)

``w = 0`` is the trained model alone. The choice ``"auto"`` takes the ``w`` of
:data:`CONTENT_GRID` with the best validation NDCG@10 once training is done (the validation
targets are items the model trained on, so nothing about new items is used to choose).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

CONTENT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
"""The weights ``content_weight = "auto"`` chooses from."""


def standardized(rows: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (rows of equal values: zeros)."""
    rows = np.asarray(rows, dtype=np.float32)
    mean = rows.mean(axis=1, keepdims=True)
    std = rows.std(axis=1, keepdims=True)
    return (rows - mean) / np.where(std > 0, std, 1.0)


def blend(trained: np.ndarray, content: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * z(trained) + weight * z(content)``, row by row (float32)."""
    if weight == 0.0:
        return trained
    out = (1.0 - weight) * standardized(trained) + weight * standardized(content)
    return out.astype(np.float32)


def boost_new_items(scores: np.ndarray, new: np.ndarray, boost: float) -> np.ndarray:
    """``scores`` with ``boost`` standard deviations of each row added to the ``new`` columns.

    Args:
        scores: ``(users, n_items)`` scores (changed in place and returned).
        new: ``(n_items,)`` bool, the new items.
        boost: The boost in units of each row's standard deviation over the catalog.
    """
    if boost == 0.0 or not bool(new.any()) or len(scores) == 0:
        return scores
    spread = scores.std(axis=1, keepdims=True)
    scores[:, new] += (boost * spread).astype(scores.dtype)
    return scores


class ContentPrior:
    """Cosine of each item's language-model vector to the mean of a history's (normalised
    vectors; the history's last ``max_len`` items; an empty history scores 0)."""

    def __init__(self) -> None:
        self._cache: tuple[tuple[int, int, int], np.ndarray] | None = None

    def unit_vectors(self, text_vectors: torch.Tensor) -> np.ndarray:
        """``text_vectors`` L2-normalised, recomputed only when the tensor changed."""
        key = (id(text_vectors), text_vectors._version, len(text_vectors))
        if self._cache is None or self._cache[0] != key:
            vectors = text_vectors.detach().float().cpu().numpy()
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._cache = (key, (vectors / np.maximum(norms, 1e-12)).astype(np.float32))
        return self._cache[1]

    def scores(
        self, text_vectors: torch.Tensor, histories: Sequence[np.ndarray], max_len: int
    ) -> np.ndarray:
        """``(len(histories), n_items)`` content scores."""
        return mean_cosine(self.unit_vectors(text_vectors), histories, max_len)


def mean_cosine(
    unit_vectors: np.ndarray, histories: Sequence[np.ndarray], max_len: int | None
) -> np.ndarray:
    """``(len(histories), n_items)`` cosines between every item's unit vector and the mean of
    each history's (its last ``max_len`` items; ``None``: all). An empty history scores 0."""
    means = np.zeros((len(histories), unit_vectors.shape[1]), dtype=np.float32)
    for j, history in enumerate(histories):
        h = np.asarray(history, dtype=np.int64)
        if max_len is not None:
            h = h[-max_len:]
        if len(h):
            means[j] = unit_vectors[h].mean(axis=0)
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    return means @ unit_vectors.T


def choose_weight(
    validate: Callable[[float], float], grid: Sequence[float] = CONTENT_GRID
) -> tuple[float, dict[float, float]]:
    """The weight of ``grid`` with the highest ``validate(weight)`` (the first on ties), and
    every weight's value."""
    values = {float(w): float(validate(float(w))) for w in grid}
    best = max(values, key=lambda w: (values[w], -w))
    return best, values


def validation_ndcg(
    score: Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray], valid: EvalTask
) -> float:
    """Validation NDCG@10 of a score function (:func:`quick_ndcg_at_k`)."""
    from lmrec.models.baselines._validation import quick_ndcg_at_k

    return quick_ndcg_at_k(score, valid, k=10)
