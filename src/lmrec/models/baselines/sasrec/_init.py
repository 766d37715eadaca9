"""Item embeddings that start from co-occurrence: the PPMI matrix of items seen together in a
training history, factorised by a truncated SVD (``SASRecConfig.init_embeddings``).

Item-kNN ranks by how often items share a history; on a sparse catalogue that signal is
strong while a randomly initialised embedding table has few updates per item to find it.
Starting the (tied input/output) embeddings from the leading singular vectors of the
positive pointwise mutual information matrix (Levy & Goldberg 2014: what word2vec-style
models factorise implicitly) gives SASRec that structure on the first step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

MAX_ITEMS_PER_HISTORY = 50
"""A history's last this-many distinct items form its pairs (bounds the cost per user)."""


def cooccurrence_embeddings(
    sequences: Sequence[np.ndarray], n_items: int, dim: int, std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(n_items, dim)`` float32 vectors and a mask of the items that got one.

    Items that share no history with another item (or when the factorisation has fewer
    than ``dim`` directions) keep a zero row and ``False`` in the mask; the caller leaves
    their random initial values. The vectors are scaled to an entry standard deviation of
    ``std``, the scale of the random initialisation they replace.
    """
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for seq in sequences:
        items = np.unique(np.asarray(seq, dtype=np.int64)[-MAX_ITEMS_PER_HISTORY:])
        if len(items) < 2:
            continue
        a, b = np.meshgrid(items, items, indexing="ij")
        off = a != b
        rows.append(a[off])
        cols.append(b[off])
    vectors = np.zeros((n_items, dim), dtype=np.float32)
    if not rows:
        return vectors, np.zeros(n_items, dtype=bool)
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = sp.coo_matrix((np.ones(len(r)), (r, c)), shape=(n_items, n_items)).tocsr()
    counts.sum_duplicates()
    total = counts.sum()
    marginal = np.asarray(counts.sum(axis=1)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (marginal[coo.row] * marginal[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n_items, n_items))
    k = min(dim, n_items - 1)
    rng = np.random.default_rng(seed)
    u, s, _ = svds(ppmi, k=k, v0=rng.standard_normal(n_items))
    found = u * np.sqrt(np.maximum(s, 0.0))
    vectors[:, :k] = found.astype(np.float32)
    has = np.asarray(ppmi.getnnz(axis=1) > 0)
    spread = float(vectors[has].std()) if has.any() else 0.0
    if spread > 0:
        vectors *= std / spread
    vectors[~has] = 0.0
    return vectors, has
