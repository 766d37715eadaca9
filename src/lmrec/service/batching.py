"""Serve concurrent requests in shared calls of the model (dynamic batching without a timer).

Scoring one history costs nearly as much as scoring a few dozen: the model's layers run the
same number of operations, and the last step reads the whole item table (100,000 x 128
floats is 51 MB) once per call. Two batchers share that cost among concurrent requests:

- :class:`RequestQueue` serves ``GET /v1/users/{id}/recommendations``: the request waits on
  the event loop (no thread of the thread pool) while one thread of the queue serves
  everything waiting at once (one store read, one model call, see
  :mod:`lmrec.service.user_batch`);
- :class:`ScoreBatcher` serves requests already running in threads (the other routes): the
  first of them scores everything waiting in one ``score(users, histories)`` call and hands
  each thread its row.

Neither waits for a batch to fill when the service is idle: a lone request is served at
once, and the requests that arrive meanwhile gather for the next call. Under load the
:class:`RequestQueue` also waits a little for the clients it has just answered: a model call
costs nearly the same for one history as for sixteen, and without the wait a busy queue
settles into alternating batches (one straggler, then everyone else), which halves its
throughput and doubles every request's latency (measured with 16 closed-loop clients on the
100,000-item catalogue: batches of 1 and 15 in turn, 15.8 ms each).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

MAX_BATCH = 64
"""Histories scored in one call at most."""
GATHER_SHARE = 0.5
"""How long a busy :class:`RequestQueue` waits for its last batch's clients to come back, as a
share of that batch's serving time."""
MAX_GATHER_SECONDS = 0.01
"""The longest such wait."""

Scorer = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]


class Scores(Protocol):
    """What is batched: ``score(users, histories) -> (len(histories), n_items)``."""

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(eq=False)
class _Job:
    model: Scores
    user: int
    history: np.ndarray
    done: bool = False
    row: np.ndarray | None = None
    error: BaseException | None = field(default=None, repr=False)


class ScoreBatcher:
    """Batches ``model.score`` calls of concurrent threads (leader/follower, no own thread).

    Rows of different models (a reload in between) are scored in separate calls. If a batch
    fails, its histories are scored one by one, so an error reaches only its own request.

    Args:
        max_batch: Histories per call at most.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Job] = []
        self._busy = False
        self.calls = 0
        """Calls of ``score`` made (for tests and metrics)."""
        self.rows = 0
        """Histories scored."""

    def scorer(self, model: Scores) -> Scorer:
        """A ``score(users, histories)`` for :meth:`lmrec.pipeline.Pipeline.recommend`."""

        def score(users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
            if len(histories) != 1:
                return model.score(users, histories)
            return self.score_one(model, int(users[0]), histories[0])[None]

        return score

    def score_one(self, model: Scores, user: int, history: np.ndarray) -> np.ndarray:
        """``model.score([user], [history])[0]``, scored together with waiting requests."""
        job = _Job(model, user, np.asarray(history, dtype=np.int64))
        with self._cond:
            self._pending.append(job)
        while True:
            with self._cond:
                while self._busy and not job.done:
                    self._cond.wait()
                if job.done:
                    break
                self._busy = True  # this thread leads: it scores what is waiting
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            try:
                self._run(batch)
            finally:
                with self._cond:
                    for j in batch:
                        j.done = True
                        if j.row is None and j.error is None:
                            j.error = RuntimeError("scoring was interrupted")
                    self._busy = False
                    self._cond.notify_all()
        if job.error is not None:
            raise job.error
        assert job.row is not None
        return job.row

    def _run(self, batch: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in batch:
            groups.setdefault(id(job.model), []).append(job)
        for jobs in groups.values():
            model = jobs[0].model
            try:
                self._score(model, jobs)
            except Exception:
                for job in jobs:  # isolate the failing history
                    try:
                        self._score(model, [job])
                    except Exception as e:
                        job.error = e

    def _score(self, model: Scores, jobs: list[_Job]) -> None:
        users = np.asarray([j.user for j in jobs], dtype=np.int64)
        scores = model.score(users, [j.history for j in jobs])
        self.calls += 1
        self.rows += len(jobs)
        for j, row in zip(jobs, scores, strict=True):
            j.row = row


Answer = Any
"""What a :class:`RequestQueue` batch function returns per query: a result or an exception."""


@dataclass(eq=False)
class _Waiting:
    query: Any
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class RequestQueue:
    """Serves queries awaited on the event loop in batches, on one thread of its own.

    ``await queue.submit(query)`` parks the request on the event loop (no thread of the
    thread pool) while the queue's thread hands everything waiting, up to ``max_batch``
    queries, to ``serve(queries) -> answers`` in one call and settles each request with its
    answer: a result, or an exception that is raised in that request only. A lone query is
    served at once; queries arriving meanwhile gather for the next call.

    Args:
        serve: The batch function; answers in the order of the queries.
        max_batch: Queries per call at most.
        name: The thread's name.
    """

    def __init__(
        self,
        serve: Callable[[list[Any]], Sequence[Answer]],
        max_batch: int = MAX_BATCH,
        name: str = "lmrec-requests",
        gather_share: float = GATHER_SHARE,
        max_gather_seconds: float = MAX_GATHER_SECONDS,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if gather_share < 0 or max_gather_seconds < 0:
            raise ValueError(
                f"gather_share and max_gather_seconds must be >= 0, got {gather_share} and "
                f"{max_gather_seconds}"
            )
        self.serve = serve
        self.max_batch = max_batch
        self.name = name
        self.gather_share = gather_share
        self.max_gather_seconds = max_gather_seconds
        self._expect = 1  # queries in the system while the last batch was served
        self._gather_until = -math.inf  # time.monotonic() up to which the next batch waits
        self._cond = threading.Condition()
        self._pending: deque[_Waiting] = deque()
        self._thread: threading.Thread | None = None
        self._stopping: set[threading.Thread] = set()  # threads asked to stop
        self.calls = 0
        """Batches served (for tests and metrics)."""
        self.queries = 0
        """Queries served."""

    async def submit(self, query: Any) -> Any:
        """Queue ``query`` and wait for its answer; raises the answer if it is an exception."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(query, loop, loop.create_future())
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
                self._thread.start()
            self._pending.append(waiting)
            self._cond.notify()
        return await waiting.future

    def close(self, timeout: float = 10.0) -> None:
        """Serve what is queued, then stop the thread (like disposing of an engine: a later
        :meth:`submit` starts a new one)."""
        with self._cond:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._stopping.add(thread)
            self._cond.notify_all()
        thread.join(timeout)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._pending and me not in self._stopping:
                    self._cond.wait()
                if not self._pending:
                    self._stopping.discard(me)
                    return  # asked to stop, and drained
                self._gather(me)
                batch = [
                    self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))
                ]
            started = time.monotonic()
            try:
                answers: Sequence[Answer] = self.serve([w.query for w in batch])
                if len(answers) != len(batch):
                    raise RuntimeError(f"{len(answers)} answers for {len(batch)} queries")
            except Exception as e:  # every waiting request must learn of it
                answers = [e] * len(batch)
            self.calls += 1
            self.queries += len(batch)
            # one wake-up per event loop for the whole batch (usually there is one loop)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
            for w, answer in zip(batch, answers, strict=True):
                by_loop.setdefault(w.loop, []).append((w.future, answer))
            for loop, settled in by_loop.items():
                # RuntimeError: the requests' event loop is closed, nobody waits
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, settled)
            with self._cond:
                end = time.monotonic()
                window = min(self.max_gather_seconds, self.gather_share * (end - started))
                self._gather_until = end + window
                self._expect = len(batch) + len(self._pending)

    def _gather(self, me: threading.Thread) -> None:
        """Wait (holding the condition) for the last batch's clients to come back.

        A closed-loop client sends its next request right after its answer, so the queries
        of the last batch are expected back within a short window after it was settled;
        queries that arrived meanwhile count too. The wait ends as soon as that many are
        waiting, or ``gather_share`` of the last batch's serving time (at most
        ``max_gather_seconds``) after it was settled. After an idle spell longer than that
        window, or when no more are expected, nothing waits.
        """
        want = min(self._expect, self.max_batch)
        while len(self._pending) < want and me not in self._stopping:
            left = self._gather_until - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)


def _settle(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, answer in settled:
        if future.done():  # cancelled: the client went away
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
