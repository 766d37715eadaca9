"""Re-ranking a retrieval model's top-N candidates by CTR probability.

The re-ranked scores keep the shape of full-catalog scores, so the ordinary
:class:`~lmrec.evaluation.Evaluator` measures a retrieval model before and after re-ranking
with the same code: the top-N candidates (history and non-finite scores excluded) are placed
above every other item in CTR order, and every other item keeps its retrieval score, hence
its retrieval order (ties included) below them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from lmrec.errors import ConfigError


class CandidateScorer(Protocol):
    """What re-ranking needs of a CTR model (:class:`CTRModel` has it)."""

    def score_candidates(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray],
        candidates: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """Per user, one probability per candidate item."""
        ...


class Scorer(Protocol):
    """A retrieval model: scores of the whole catalog per user."""

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Shape ``(len(users), n_items)``."""
        ...


def rows_top(
    rows: np.ndarray, masked: Sequence[np.ndarray], n: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per score row, its :func:`top_candidates` and their float32 scores."""
    out = []
    for row, m in zip(rows, masked, strict=True):
        ids = top_candidates(row, np.asarray(m, dtype=np.int64), n)
        out.append((ids, np.asarray(row[ids], dtype=np.float32)))
    return out


def top_candidates(scores: np.ndarray, history: np.ndarray, top_n: int) -> np.ndarray:
    """The ``top_n`` best items of one score row, history and non-finite scores excluded.

    Ties go to the lower item index, so the choice does not depend on batching.

    Args:
        scores: ``(n_items,)`` retrieval scores.
        history: Item indices never to propose.
        top_n: How many; fewer when fewer items are eligible.

    Returns:
        int64 item indices, best first.
    """
    fast = _top_of_finite(scores, history, top_n)
    if fast is not None:
        return fast
    row = np.asarray(scores, dtype=np.float64).copy()
    row[~np.isfinite(row)] = -np.inf
    if len(history):
        row[np.asarray(history, dtype=np.int64)] = -np.inf
    eligible = np.flatnonzero(row > -np.inf)
    if len(eligible) == 0:
        return np.zeros(0, dtype=np.int64)
    if top_n < len(eligible):
        # Sorting only what can make the list (every item tied with the top_n-th best
        # included, so the tie rule still applies) instead of the whole catalog.
        values = row[eligible]
        cut = np.partition(values, len(values) - top_n)[len(values) - top_n]
        eligible = eligible[values >= cut]
    order = eligible[np.lexsort((eligible, -row[eligible]))]
    return order[:top_n].astype(np.int64)


def _top_of_finite(scores: np.ndarray, history: np.ndarray, top_n: int) -> np.ndarray | None:
    """:func:`top_candidates` in two passes over the row, or ``None`` where it cannot tell.

    The ``top_n``-th largest entry of the whole row is a cut below which no item can make the
    list. When it is finite, the items at or above it are a superset of the answer unless a
    NaN or an infinity is among them or they are too few; sorted as the general path sorts,
    they give the same list. Otherwise the general path decides.
    """
    row = np.asarray(scores)
    if row.ndim != 1 or not 0 < top_n < len(row) or row.dtype.kind != "f":
        return None
    if len(history):
        row = row.copy()
        row[np.asarray(history, dtype=np.int64)] = -np.inf
    kth = len(row) - top_n
    cut = np.partition(row, kth)[kth]
    if not np.isfinite(cut):
        return None
    picked = np.flatnonzero(row >= cut)
    values = row[picked].astype(np.float64)
    if len(picked) < top_n or not np.isfinite(values).all():
        return None
    return picked[np.lexsort((picked, -values))][:top_n].astype(np.int64)


def rerank_scores(
    retrieval_scores: np.ndarray,
    histories: Sequence[np.ndarray],
    ctr: CandidateScorer,
    top_n: int = 50,
    users: np.ndarray | None = None,
) -> np.ndarray:
    """Full-catalog scores in which each row's retrieval top-N is re-ordered by the CTR model.

    Per row, the ``top_n`` best items by retrieval score (history and non-finite scores
    excluded) get scores above every other item, ordered by CTR probability (equal
    probabilities stay tied); all other items keep their retrieval scores. Hence the top-N
    *set* never changes, only its order, and a ``top_n`` beyond the catalog re-ranks every
    eligible item.

    Args:
        retrieval_scores: ``(n_users, n_items)`` scores of the retrieval model.
        histories: Per row, the known items (excluded from the candidates).
        ctr: Scores candidates; see :class:`CandidateScorer`.
        top_n: Candidates re-ranked per row.
        users: User indices per row (for profile attributes); ``-1`` for all when ``None``.

    Returns:
        ``(n_users, n_items)`` scores, float32 (float64 for float64 input).

    Raises:
        ConfigError: ``top_n`` is below 1.
        ValueError: The shapes of the inputs disagree.
    """
    if top_n < 1:
        raise ConfigError(f"top_n must be at least 1, got {top_n}")
    scores = np.asarray(retrieval_scores)
    if scores.ndim != 2 or len(scores) != len(histories):
        raise ValueError(
            f"retrieval_scores of shape {scores.shape} do not match {len(histories)} histories"
        )
    users = np.full(len(scores), -1, dtype=np.int64) if users is None else np.asarray(users)
    if len(users) != len(scores):
        raise ValueError(f"{len(users)} users for {len(scores)} score rows")
    candidates = [top_candidates(s, h, top_n) for s, h in zip(scores, histories, strict=True)]
    probs = ctr.score_candidates(users, histories, candidates)
    out = scores.astype(np.result_type(scores.dtype, np.float32), copy=True)
    for row, (cands, p) in enumerate(zip(candidates, probs, strict=True)):
        if len(cands) == 0:
            continue
        others = np.ones(out.shape[1], dtype=bool)
        others[cands] = False
        rest = out[row, others]
        finite = rest[np.isfinite(rest)]
        base = float(finite.max()) + 1.0 if len(finite) else 0.0
        # Dense ranks of the probabilities: equal probabilities keep equal scores, and
        # integer steps stay exact in float32 whatever the retrieval scale.
        _, dense = np.unique(np.asarray(p, dtype=np.float64), return_inverse=True)
        out[row, cands] = base + dense.reshape(-1)
    return out


class RerankedRecommender:
    """A retrieval model whose top-N is re-ordered by a CTR model (see :func:`rerank_scores`).

    Args:
        retrieval: Anything with ``score(users, histories)`` over the whole catalog.
        ctr: The CTR model (or any :class:`CandidateScorer`).
        top_n: Candidates re-ranked per user.

    Raises:
        ConfigError: ``top_n`` is below 1.
    """

    def __init__(self, retrieval: Scorer, ctr: CandidateScorer, top_n: int = 50) -> None:
        if top_n < 1:
            raise ConfigError(f"top_n must be at least 1, got {top_n}")
        self.retrieval = retrieval
        self.ctr = ctr
        self.top_n = top_n
        base = getattr(retrieval, "name", None) or type(retrieval).__name__
        self.name = f"{base}+ctr@{top_n}"

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Re-ranked full-catalog scores, shape ``(len(users), n_items)``, float32."""
        scores = self.retrieval.score(users, histories)
        return rerank_scores(scores, histories, self.ctr, self.top_n, users=np.asarray(users))
