"""One model version as served: the pipeline, its similar-items index, and its version name.

Split from :mod:`lmrec.service.runtime`, which swaps these objects atomically on reload.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from lmrec.concurrency import ReadWriteLock
from lmrec.pipeline import Pipeline
from lmrec.service.privacy import ServiceBoundary


class Hits(Protocol):
    """What a similar-items search returns (:class:`lmrec.index.Neighbours` fits)."""

    @property
    def ids(self) -> list[str]: ...

    @property
    def scores(self) -> np.ndarray: ...


class SimilarItemIndex(Protocol):
    """The vector index the service uses for similar items (:class:`lmrec.index.VectorIndex`)."""

    def similar_items(self, item_id: str, k: int, *, exclude: Collection[str] = ()) -> Hits: ...

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Collection[str], *, missing_ok: bool = False) -> int: ...

    def __len__(self) -> int: ...


IndexFactory = Callable[[list[str], np.ndarray], SimilarItemIndex]

log = logging.getLogger(__name__)

WARM_UP_CALLS = ((1, 10), (16, 10), (1, 100))
"""``(histories, items)`` of the calls :func:`warm_up` makes: a lone request and a full batch
of plain top-10 lists, and the candidate pool of a diversity re-ranking."""


def warm_up(pipeline: Pipeline, calls: Sequence[tuple[int, int]] = WARM_UP_CALLS) -> float:
    """Ask the retrieval model for its top items a few times with made-up short histories.

    What a model builds on first use (the top-n table of :mod:`lmrec.models.dot_top`, the
    math library's kernels for these shapes, lazily loaded modules) is then built while the
    run loads instead of in the first requests: a freshly loaded 100,000-item model answered
    its first request in 140 ms and the next in 12 ms. Never raises (a model that cannot
    answer made-up histories is logged and left cold).

    Returns:
        The seconds it took.
    """
    start = time.perf_counter()
    model = pipeline.retrieval
    try:
        n_items = model.n_items
        if n_items > 0:
            history = np.arange(min(5, n_items), dtype=np.int64)
            for size, n in calls:
                users = np.zeros(size, dtype=np.int64)
                model.top_items(users, [history] * size, min(n, n_items))
    except Exception as e:  # warming up is an optimisation: loading goes on without it
        log.info("model warm-up skipped: %s: %s", type(e).__name__, e)
    return time.perf_counter() - start


def cosine_index(ids: list[str], vectors: np.ndarray) -> SimilarItemIndex:
    """The default index: faiss, cosine similarity, exact below the HNSW threshold."""
    from lmrec.index import VectorIndex

    return VectorIndex.build(ids, vectors, {"metric": "cosine"})


def run_version(run_dir: Path) -> str:
    """``<run name>-<10 hex digits>``: changes whenever a file of the model changes."""
    digest = hashlib.sha256()
    for part in ("model", "ranker", "pipeline.json", "catalog.json"):
        path = run_dir / part
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            if f.exists():
                stat = f.stat()
                digest.update(
                    f"{f.relative_to(run_dir)}:{stat.st_size}:{stat.st_mtime_ns};".encode()
                )
    return f"{run_dir.resolve().name}-{digest.hexdigest()[:10]}"


@dataclass
class LoadedModel:
    """One model version as served: the pipeline, its index, and the lock for live items."""

    pipeline: Pipeline
    run_dir: Path
    version: str
    loaded_at: float
    index: SimilarItemIndex | None
    index_error: str = ""
    boundary: ServiceBoundary = field(default_factory=ServiceBoundary)
    """How the run's users are pseudonymized and texts scrubbed at the service boundary."""
    lock: ReadWriteLock = field(default_factory=ReadWriteLock, repr=False)

    @property
    def n_items(self) -> int:
        item_map = self.pipeline.retrieval.item_map
        return len(item_map) if item_map is not None else 0

    def knows_item(self, item_id: str) -> bool:
        item_map = self.pipeline.retrieval.item_map
        return item_map is not None and item_id in item_map

    def knows_user(self, user_id: str) -> bool:
        user_map = self.pipeline.retrieval.user_map
        return user_map is not None and user_id in user_map

    def describe(self, item_id: str) -> tuple[str, list[str]]:
        info = self.pipeline.catalog.get(item_id, {})
        return str(info.get("title", "")), [str(c) for c in info.get("categories", [])]
