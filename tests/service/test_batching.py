"""ScoreBatcher: concurrent requests share model calls and get exactly their own rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from lmrec.service.batching import ScoreBatcher


class SlowModel:
    """Scores item j of a history h as ``sum(h) * 10 + j + user``; each call takes 20 ms."""

    def __init__(self, n_items: int = 5) -> None:
        self.n_items = n_items
        self.batch_sizes: list[int] = []

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        self.batch_sizes.append(len(histories))
        if any(-99 in h for h in histories):
            raise ValueError("history holds item -99")
        time.sleep(0.02)
        base = np.array([h.sum() * 10.0 for h in histories]) + users
        return base[:, None] + np.arange(self.n_items)[None, :]


def test_a_lone_request_is_scored_at_once() -> None:
    model, batcher = SlowModel(), ScoreBatcher()
    row = batcher.scorer(model)(np.array([2]), [np.array([1, 3])])
    assert row.shape == (1, 5) and row[0].tolist() == [42.0, 43.0, 44.0, 45.0, 46.0]
    assert model.batch_sizes == [1]


def test_concurrent_requests_share_calls_and_get_their_own_rows() -> None:
    model, batcher = SlowModel(), ScoreBatcher(max_batch=8)
    out: dict[int, np.ndarray] = {}
    errors: dict[int, Exception] = {}

    def request(n: int) -> None:
        try:
            out[n] = batcher.score_one(model, n, np.array([n, -99] if n == 13 else [n]))
        except Exception as e:
            errors[n] = e

    threads = [threading.Thread(target=request, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert set(out) == set(range(24)) - {13}
    for n, row in out.items():
        assert row.tolist() == [n * 11.0 + j for j in range(5)]
    assert isinstance(errors[13], ValueError) and set(errors) == {13}  # only its own request
    assert max(model.batch_sizes) > 1 and max(model.batch_sizes) <= 8
    assert batcher.rows == 23 and batcher.calls < 23


def test_max_batch_is_checked() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        ScoreBatcher(max_batch=0)
