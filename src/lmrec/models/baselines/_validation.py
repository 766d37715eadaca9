"""A small full-ranking NDCG@k used inside ``fit`` for early stopping.

The evaluation package holds the complete, reported metrics; this function exists so that a
model can pick its best epoch without depending on it. It ranks every catalog item, leaves
out the user's known history and breaks ties pessimistically (a target tied with other items
is placed after all of them), so a model that scores everything alike gets no credit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lmrec.evaluation.task import EvalTask

ScoreFn = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]
"""Scores ``(users, histories) -> (len(users), n_items)``, as ``Recommender.score``."""


def quick_ndcg_at_k(
    model_score_fn: ScoreFn, task: EvalTask, k: int = 10, batch_size: int = 512
) -> float:
    """Mean NDCG@k over the users of ``task``, ranking the whole catalog.

    History items are excluded from the ranking, except those that are also targets (a
    re-consumed item stays rankable). With several targets per user the ideal DCG counts
    ``min(k, n_targets)`` hits; targets tied with each other are placed pessimistically too.

    Args:
        model_score_fn: ``score(users, histories)`` returning one row of catalog scores per
            user.
        task: Users, their known histories and their targets.
        k: Cut-off.
        batch_size: Users scored at once; memory grows as ``batch_size * n_items``.

    Returns:
        The mean NDCG@k, 0.0 for an empty task.

    Raises:
        ValueError: When ``k`` or ``batch_size`` is below 1 or the scores have the wrong shape.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(task) == 0:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    ideal = np.cumsum(discounts)
    total = 0.0
    for start in range(0, len(task), batch_size):
        stop = min(start + batch_size, len(task))
        histories = task.histories[start:stop]
        targets = task.targets[start:stop]
        scores = np.asarray(model_score_fn(task.users[start:stop], histories))
        if scores.shape != (stop - start, task.n_items):
            raise ValueError(
                f"score function returned shape {scores.shape}, "
                f"expected {(stop - start, task.n_items)}"
            )
        positions, valid = _target_positions(scores, histories, targets)
        gains = np.where(valid & (positions < k), discounts[np.minimum(positions, k - 1)], 0.0)
        n_targets = np.minimum(valid.sum(axis=1), k)
        idcg = ideal[np.maximum(n_targets - 1, 0)]
        total += float(np.sum(np.where(n_targets > 0, gains.sum(axis=1) / idcg, 0.0)))
    return total / len(task)


def _target_positions(
    scores: np.ndarray, histories: Sequence[np.ndarray], targets: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """0-based pessimistic positions of each target, padded to ``(batch, max_targets)``."""
    n_rows, n_items = scores.shape
    s = torch.from_numpy(np.nan_to_num(scores.astype(np.float64), nan=-np.inf))
    width = max(1, max(len(t) for t in targets))
    tgt = np.zeros((n_rows, width), dtype=np.int64)
    valid = np.zeros((n_rows, width), dtype=bool)
    for r, t in enumerate(targets):
        tgt[r, : len(t)] = t
        valid[r, : len(t)] = True
    t_idx = torch.from_numpy(tgt)
    t_valid = torch.from_numpy(valid)
    t_scores = torch.gather(s, 1, t_idx)

    # History leaves the ranking; an item below every real score can never outrank a target.
    rows = np.repeat(np.arange(n_rows), [len(h) for h in histories])
    cols = np.concatenate(histories) if len(rows) else np.zeros(0, dtype=np.int64)
    excluded = torch.zeros((n_rows, n_items), dtype=torch.bool)
    excluded[torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))] = True
    excluded[torch.from_numpy(np.nonzero(valid)[0]), torch.from_numpy(tgt[valid])] = False
    n_excluded = excluded.sum(dim=1, keepdim=True)
    s = s.masked_fill(excluded, -torch.inf)

    # at_least[r, j]: candidates scoring >= target j (itself included), via a sorted row.
    ordered, _ = torch.sort(s, dim=1)
    below = torch.searchsorted(ordered, t_scores.contiguous(), right=False)
    at_least = n_items - below
    # A target scored -inf would also count the excluded items; take them back out.
    at_least = torch.where(torch.isneginf(t_scores), at_least - n_excluded, at_least)

    # Among tied targets, later ones in a descending order go last: position =
    # at_least - (targets scoring >= it) + (its rank among the targets).
    masked_t = t_scores.masked_fill(~t_valid, -torch.inf)
    order = torch.argsort(-masked_t, dim=1, stable=True)
    rank_in_targets = torch.empty_like(order)
    rank_in_targets.scatter_(1, order, torch.arange(width).expand(n_rows, width).contiguous())
    targets_at_least = ((masked_t[:, None, :] >= masked_t[:, :, None]) & t_valid[:, None, :]).sum(
        dim=2
    )
    positions = at_least - targets_at_least + rank_in_targets
    return positions.numpy(), valid
