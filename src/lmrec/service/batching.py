"""Score concurrent requests in one call of the model (dynamic batching without a timer).

Scoring one history costs nearly as much as scoring a few dozen: the model's layers run the
same number of operations, and the last step reads the whole item table (100,000 x 128
floats is 51 MB) once per call. Under load, many request threads wait to score at the same
time; :class:`ScoreBatcher` lets the first of them score everything that is waiting in one
``score(users, histories)`` call and hand each thread its row, while the requests that arrive
meanwhile gather for the next call. A lone request is scored at once (there is no waiting
window), so batching adds no latency when the service is idle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

MAX_BATCH = 64
"""Histories scored in one call at most."""

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
