"""Serving many users' recommendation requests at once (one store read, one model call).

:meth:`lmrec.service.runtime.RecommendationService.recommend_for_users` prepares each query
(what :meth:`lmrec.pipeline.Pipeline.recommend` will read) and asks the retrieval model for
the best items of every prepared history in one call (:meth:`top_rows`; with a CTR ranker,
full score rows, :meth:`score_rows`). Each answer goes back to ``recommend`` through its
``top_with`` (or ``score_with``), so a batched answer is exactly the answer of a lone request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lmrec.errors import UnknownIdError
from lmrec.models.base import TopItems
from lmrec.pipeline import Pipeline
from lmrec.service.batching import ScoreBatcher
from lmrec.service.loaded import LoadedModel
from lmrec.service.store import UserState


@dataclass(frozen=True)
class UserQuery:
    """One ``GET /v1/users/{id}/recommendations`` request."""

    user_id: str
    k: int = 10
    diversity: float | None = None
    diversity_method: str | None = None
    explain: bool = False


@dataclass(frozen=True)
class Prepared:
    """A query ready to score: what ``recommend`` reads and the model's indices of it."""

    position: int
    user: str | None
    history: list[str] | None
    user_index: int
    hist: np.ndarray
    n: int = 10
    """How many best items ``recommend`` will draw from (``k``, or the re-ranker's pool)."""


def precomputed(
    pipeline: Pipeline, hist: np.ndarray, row: np.ndarray | None
) -> Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]:
    """A ``score_with`` that returns ``row`` for ``hist`` (scored ahead in a batch)."""

    def score(users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        if row is not None and len(histories) == 1 and np.array_equal(histories[0], hist):
            return row[None]
        return pipeline.retrieval.score(users, histories)

    return score


def prepare(
    model: LoadedModel, position: int, query: UserQuery, user_id: str, state: UserState
) -> Prepared:
    """What :meth:`Pipeline.recommend` will read for one user, and its model indices."""
    pipeline = model.pipeline
    in_model = model.knows_user(user_id) and not state.forgotten
    recent = [i for i in state.recent if model.knows_item(i)]
    if not in_model and not recent:
        raise UnknownIdError("user", query.user_id)
    history: list[str] | None = None
    if recent:
        trained: list[str] = []
        item_map = pipeline.retrieval.item_map
        if in_model and item_map is not None:
            trained = item_map.decode(pipeline.retrieval.history_of(user_id))
        history = [*trained, *recent]
    user = user_id if in_model else None
    user_index, hist = pipeline.query_indices(user, history)
    n = pipeline.candidates_needed(query.k, query.diversity, query.diversity_method)
    return Prepared(position, user, history, user_index, hist, n)


def score_rows(
    batcher: ScoreBatcher, pipeline: Pipeline, prepared: Sequence[Prepared]
) -> list[np.ndarray | None]:
    """The retrieval scores of every prepared query, in one model call where possible.

    A lone query joins the threads scoring at the same moment (:class:`ScoreBatcher`).
    ``None`` where scoring failed: that query scores again inside ``recommend`` and
    meets its own error there.
    """
    if not prepared:
        return []
    model = pipeline.retrieval
    try:
        if len(prepared) == 1:
            p = prepared[0]
            return [batcher.score_one(model, p.user_index, p.hist)]
        users = np.asarray([p.user_index for p in prepared], dtype=np.int64)
        return list(model.score(users, [p.hist for p in prepared]))
    except Exception:
        return [None] * len(prepared)


Top = tuple[np.ndarray, np.ndarray]


def precomputed_top(
    pipeline: Pipeline, hist: np.ndarray, mask: np.ndarray, top: Top, asked: int
) -> TopItems:
    """A ``top_with`` that answers from ``top`` (the best ``asked`` items for ``hist`` with
    ``mask`` masked, found ahead in a batch) when no more are asked, else asks the model."""

    def find(
        users: np.ndarray,
        histories: Sequence[np.ndarray],
        n: int,
        masked: Sequence[np.ndarray] | None,
    ) -> list[Top]:
        if (
            len(histories) == 1
            and masked is not None
            and np.array_equal(histories[0], hist)
            and np.array_equal(np.unique(masked[0]), mask)
            and n <= asked
        ):
            return [(top[0][:n], top[1][:n])]
        return pipeline.retrieval.top_items(users, histories, n, masked)

    return find


def top_rows(
    pipeline: Pipeline, prepared: Sequence[Prepared], deleted: np.ndarray
) -> list[tuple[np.ndarray, Top, int] | None]:
    """Per prepared query, its mask (history and ``deleted`` item indices, sorted), its
    best items and how many were asked, all found in one call of the retrieval model.

    ``None`` where that failed: the query then meets its own error inside ``recommend``.
    """
    if not prepared:
        return []
    masks = [np.unique(np.concatenate([p.hist, deleted]).astype(np.int64)) for p in prepared]
    n = max(p.n for p in prepared)
    users = np.asarray([p.user_index for p in prepared], dtype=np.int64)
    try:
        tops = pipeline.retrieval.top_items(users, [p.hist for p in prepared], n, masks)
    except Exception:
        return [None] * len(prepared)
    return [(m, top, n) for m, top in zip(masks, tops, strict=True)]
