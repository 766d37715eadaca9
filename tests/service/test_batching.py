"""ScoreBatcher and RequestQueue: concurrent requests share calls and get their own answers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from lmrec.service.batching import RequestQueue, ScoreBatcher


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


# --------------------------------------------------------------------------- RequestQueue
def test_request_queue_batches_waiting_queries_and_isolates_errors() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def serve(queries: list[int]) -> list[object]:
        calls.append(list(queries))
        if len(calls) == 1:
            gate.wait(5)  # hold the first batch so that the others queue up behind it
        return [ValueError(f"bad {q}") if q == 7 else q * 10 for q in queries]

    queue = RequestQueue(serve, max_batch=4)

    async def main() -> list[object]:
        first = asyncio.ensure_future(queue.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(queue.submit(q)) for q in range(1, 10)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = asyncio.run(main())
    assert answers[:7] == [0, 10, 20, 30, 40, 50, 60] and answers[8:] == [80, 90]
    assert isinstance(answers[7], ValueError) and str(answers[7]) == "bad 7"
    assert calls[0] == [0] and [len(c) for c in calls[1:]] == [4, 4, 1]  # max_batch kept
    assert sorted(q for c in calls for q in c) == list(range(10))
    assert (queue.calls, queue.queries) == (4, 10)
    queue.close()


def test_request_queue_failing_batch_reaches_every_query_and_restarts_after_close() -> None:
    def serve(queries: list[int]) -> list[object]:
        if 13 in queries:
            raise RuntimeError("batch failed")
        return list(queries)

    queue = RequestQueue(serve)

    async def ask(*queries: int) -> list[object]:
        return await asyncio.gather(*(queue.submit(q) for q in queries), return_exceptions=True)

    assert asyncio.run(ask(13))[0].args == ("batch failed",)  # type: ignore[union-attr]
    queue.close()
    assert asyncio.run(ask(1, 2)) == [1, 2]  # a submit after close starts a new thread
    queue.close()
    queue.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="max_batch"):
        RequestQueue(serve, max_batch=0)


def _closed_loop_batches(queue: RequestQueue, clients: int, rounds: int) -> None:
    """``clients`` clients, each sending its next query a few ms after its answer."""

    async def client(c: int) -> None:
        for r in range(rounds):
            await queue.submit(c * 1000 + r)
            await asyncio.sleep(0.003 * c)  # each client comes back a little later

    async def main() -> None:
        await asyncio.gather(*(client(c) for c in range(clients)))

    asyncio.run(main())


def test_request_queue_gathers_the_clients_it_just_answered() -> None:
    sizes: list[int] = []

    def serve(queries: list[int]) -> list[int]:
        sizes.append(len(queries))
        time.sleep(0.03)  # a model call costs about the same for one query as for four
        return queries

    queue = RequestQueue(serve, gather_share=5.0, max_gather_seconds=0.2)
    _closed_loop_batches(queue, clients=4, rounds=6)
    queue.close()
    assert sum(sizes) == 24
    # after the first batch (the clients' first queries race the thread) and before the
    # last (clients that started late finish late), every batch waits for all four clients
    # instead of serving the quickest one alone (without the wait: 3, 1, 3, 1, ...)
    assert len(sizes) >= 5 and all(s == 4 for s in sizes[1:-1]), sizes


def test_request_queue_serves_a_lone_query_after_an_idle_spell_at_once() -> None:
    def serve(queries: list[int]) -> list[int]:
        time.sleep(0.02)
        return queries

    queue = RequestQueue(serve, gather_share=100.0, max_gather_seconds=0.3)
    _closed_loop_batches(queue, clients=4, rounds=2)  # the queue now expects four
    time.sleep(0.4)  # idle for longer than the gathering window

    async def lone() -> float:
        start = time.monotonic()
        await queue.submit(7)
        return time.monotonic() - start

    assert asyncio.run(lone()) < 0.25  # no wait for the three that are not coming
    queue.close()
    with pytest.raises(ValueError, match="gather"):
        RequestQueue(serve, gather_share=-1.0)
