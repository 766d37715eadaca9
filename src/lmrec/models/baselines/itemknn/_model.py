"""Item-based k-nearest-neighbour recommendation (Sarwar et al. 2001; Deshpande & Karypis 2004).

Similarities are cosines between the binary user columns of two items, optionally shrunk.
Each target item keeps its ``neighbors`` most similar items; a user's score for the target
is the sum of the kept similarities to the items in the user's history. The model is
inductive: it needs a history, never a user index, so new users are scored as well.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lmrec.data.schema import InteractionData
from lmrec.errors import ModelFileError
from lmrec.models.base import BaseRecommender, FitReport
from lmrec.models.baselines._config_build import build_config
from lmrec.models.baselines.itemknn._config import ItemKNNConfig

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_STATE_FILE = "itemknn_similarity.npz"
# Cells of the dense similarity block computed at once: 2**22 float64 cells are 32 MiB, and
# a few temporaries of that size live together.
_BLOCK_CELLS = 2**22


def item_similarities(
    matrix: sp.spmatrix, neighbors: int, shrinkage: float = 0.0, normalize: bool = False
) -> sp.csr_matrix:
    """Top-``neighbors`` cosine similarities between the columns of a binary matrix.

    Args:
        matrix: Binary users x items matrix.
        neighbors: Similarities kept per target item (column of the result).
        shrinkage: Added to the denominator ``sqrt(n_i * n_j)``.
        normalize: Rescale each kept column to sum to one.

    Returns:
        An items x items CSR matrix ``W``; ``W[i, j]`` is the similarity of history item ``i``
        to target item ``j``, zero outside ``j``'s neighbourhood and on the diagonal.
    """
    x = sp.csc_matrix(matrix, dtype=np.float32)
    x.data[:] = 1.0
    n_items = x.shape[1]
    xt = x.T.tocsr()
    norms = np.sqrt(np.asarray(x.sum(axis=0), dtype=np.float64).ravel())
    keep = min(neighbors, max(n_items - 1, 1))
    block = max(1, min(n_items, _BLOCK_CELLS // max(n_items, 1)))
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        co = np.asarray((xt @ x[:, start:stop]).toarray(), dtype=np.float64)
        denom = norms[:, None] * norms[None, start:stop] + shrinkage
        sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # no self-similarity
        kept = _top_per_column(sim, keep) & (sim > 0)
        src, tgt = np.nonzero(kept)
        values = sim[src, tgt]
        if normalize:
            sums = np.bincount(tgt, weights=values, minlength=stop - start)
            values = values / sums[tgt]
        rows.append(src)
        cols.append(tgt + start)
        vals.append(values.astype(np.float32))
    w = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
        dtype=np.float32,
    )
    w.sort_indices()
    return w


def _top_per_column(sim: np.ndarray, keep: int) -> np.ndarray:
    """Mask of the ``keep`` largest entries of each column; ties favour lower row indices."""
    if keep >= sim.shape[0]:
        return np.ones(sim.shape, dtype=bool)
    threshold = -np.partition(-sim, keep - 1, axis=0)[keep - 1]
    above = sim > threshold
    at = sim == threshold
    room = keep - above.sum(axis=0)
    return above | (at & (np.cumsum(at, axis=0) <= room))


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary ``len(histories) x n_items`` CSR matrix of the given histories."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    flat = (
        np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])
        if lengths.sum()
        else np.zeros(0, dtype=np.int64)
    )
    m = sp.csr_matrix(
        (np.ones(len(flat), dtype=np.float32), flat, indptr), shape=(len(histories), n_items)
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class ItemKNNRecommender(BaseRecommender):
    """Item-item cosine k-nearest-neighbour recommender on binary interactions.

    Args:
        config: An :class:`ItemKNNConfig`, a dict of its fields, or ``None`` for defaults.
        **overrides: Config fields to override, e.g. ``neighbors=50``.

    Raises:
        ConfigError: When a field is unknown or out of range.
    """

    name: ClassVar[str] = "itemknn"

    def __init__(
        self, config: ItemKNNConfig | Mapping[str, Any] | None = None, **overrides: Any
    ) -> None:
        super().__init__()
        self.config = build_config(ItemKNNConfig, config, **overrides)
        self.similarity: sp.csr_matrix | None = None

    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport:
        start = time.perf_counter()
        cfg = self.config
        self.similarity = item_similarities(
            train.matrix(), cfg.neighbors, shrinkage=cfg.shrinkage, normalize=cfg.normalize
        )
        return FitReport(train_seconds=time.perf_counter() - start, epochs=1)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Sum of the history items' similarities to each catalog item, float32.

        The user index is not used (a new user, index ``-1``, is scored from the history
        alone); an empty history gives all zeros.
        """
        w: sp.csr_matrix = self._require(self.similarity)
        if len(users) != len(histories):
            raise ValueError(f"got {len(users)} users but {len(histories)} histories")
        h = history_matrix(histories, w.shape[0])
        return np.asarray((h @ w).toarray(), dtype=np.float32)

    def _save_state(self, path: Path) -> None:
        sp.save_npz(path / _STATE_FILE, self._require(self.similarity))

    def _load_state(self, path: Path) -> None:
        file = path / _STATE_FILE
        if not file.exists():
            raise ModelFileError(f"{path} lacks {_STATE_FILE}")
        self.similarity = sp.csr_matrix(sp.load_npz(file), dtype=np.float32)
