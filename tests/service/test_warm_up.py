"""Loading a run warms its model up: lazy set-up happens before the first request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmrec.service import RecommendationService, Store
from lmrec.service.loaded import WARM_UP_CALLS, warm_up


class Recording:
    """A retrieval model stand-in that records its top_items calls."""

    def __init__(self, n_items: int, fail: bool = False) -> None:
        self.n_items = n_items
        self.fail = fail
        self.calls: list[tuple[int, int, list[int]]] = []

    def top_items(self, users: np.ndarray, histories: list[np.ndarray], n: int) -> Any:
        if self.fail:
            raise RuntimeError("cannot score made-up histories")
        self.calls.append((len(users), n, [int(i) for i in histories[0]]))
        return [(np.arange(n), np.zeros(n, dtype=np.float32)) for _ in users]


class Pipe:
    def __init__(self, retrieval: Recording) -> None:
        self.retrieval = retrieval


def test_warm_up_asks_for_each_batch_and_pool_size() -> None:
    model = Recording(n_items=500)
    assert warm_up(Pipe(model)) >= 0.0  # type: ignore[arg-type]
    assert model.calls == [(size, n, [0, 1, 2, 3, 4]) for size, n in WARM_UP_CALLS]


def test_warm_up_fits_tiny_catalogs_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    tiny = Recording(n_items=3)
    warm_up(Pipe(tiny))  # type: ignore[arg-type]
    assert {n for _, n, _ in tiny.calls} == {3} and tiny.calls[0][2] == [0, 1, 2]
    empty = Recording(n_items=0)
    warm_up(Pipe(empty))  # type: ignore[arg-type]
    assert empty.calls == []
    with caplog.at_level("INFO", logger="lmrec.service.loaded"):
        warm_up(Pipe(Recording(n_items=10, fail=True)))  # type: ignore[arg-type]
    assert "warm-up skipped: RuntimeError" in caplog.text


def test_loading_a_run_warms_its_model(
    store: Store, knn_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warmed: list[object] = []
    import lmrec.service.runtime as runtime

    monkeypatch.setattr(runtime, "warm_up", lambda pipeline: warmed.append(pipeline) or 0.0)
    service = RecommendationService(store, knn_run)
    try:
        assert warmed == [service.current.pipeline]
        service.reload()
        assert warmed[-1] is service.current.pipeline and len(warmed) == 2
    finally:
        service.close()
    assert warm_up(service.current.pipeline) >= 0.0  # the real one runs on a real model
