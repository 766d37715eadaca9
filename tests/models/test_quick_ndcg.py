"""The early-stopping metric shared by the trainable baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from lmrec.evaluation.task import EvalTask
from lmrec.models.baselines import quick_ndcg_at_k


def _fixed(rows: list[list[float]]) -> Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]:
    table = np.array(rows, dtype=np.float32)

    def score(users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return table[users]

    return score


def _task(histories: list[list[int]], targets: list[list[int]], n_items: int) -> EvalTask:
    return EvalTask(
        users=np.arange(len(targets)),
        histories=[np.array(h, dtype=np.int64) for h in histories],
        targets=[np.array(t, dtype=np.int64) for t in targets],
        n_items=n_items,
    )


def test_single_target_positions() -> None:
    scores = _fixed([[5, 4, 3, 2, 1], [5, 4, 3, 2, 1], [5, 4, 3, 2, 1]])
    task = _task([[], [0], [0, 1, 2]], [[0], [2], [4]], 5)
    # positions: 0 -> 1.0; item 2 after excluding item 0 is second -> 1/log2(3); item 4 second
    expected = (1.0 + 1 / np.log2(3) + 1 / np.log2(3)) / 3
    assert quick_ndcg_at_k(scores, task, k=10) == pytest.approx(expected)
    assert quick_ndcg_at_k(scores, task, k=1) == pytest.approx(1 / 3)


def test_ties_are_pessimistic() -> None:
    flat = _fixed([[1.0] * 20])
    task = _task([[]], [[0]], 20)
    assert quick_ndcg_at_k(flat, task, k=10) == 0.0  # last among 20 tied items
    assert quick_ndcg_at_k(flat, task, k=20) == pytest.approx(1 / np.log2(21))
    pair = _fixed([[3.0, 3.0, 1.0]])
    assert quick_ndcg_at_k(pair, _task([[]], [[0]], 3), k=10) == pytest.approx(1 / np.log2(3))


def test_several_targets_and_batches() -> None:
    scores = _fixed([[4, 3, 2, 1], [4, 3, 2, 1]])
    task = _task([[], []], [[0, 1], [1, 3]], 4)
    dcg2 = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3)
    for batch in (1, 2):
        value = quick_ndcg_at_k(scores, task, k=10, batch_size=batch)
        assert value == pytest.approx((1.0 + dcg2 / idcg) / 2)
    # tied targets are placed after each other: positions 0 and 1 -> perfect
    tied = _fixed([[2, 2, 1, 0]])
    assert quick_ndcg_at_k(tied, _task([[]], [[0, 1]], 4), k=10) == pytest.approx(1.0)


def test_target_in_history_stays_rankable() -> None:
    scores = _fixed([[1, 5, 3]])
    assert quick_ndcg_at_k(scores, _task([[1]], [[1]], 3), k=1) == pytest.approx(1.0)


def test_bad_arguments() -> None:
    scores = _fixed([[1, 2]])
    with pytest.raises(ValueError, match="k"):
        quick_ndcg_at_k(scores, _task([[]], [[0]], 2), k=0)
    with pytest.raises(ValueError, match="shape"):
        quick_ndcg_at_k(scores, _task([[]], [[0]], 3))
    assert quick_ndcg_at_k(scores, _task([], [], 2)) == 0.0
