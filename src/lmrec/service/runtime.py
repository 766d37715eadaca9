"""The running service: one loaded model version at a time, the store, and every operation.

The HTTP routes (:mod:`lmrec.service.app`) only parse and format; all behaviour lives here.

Model versions. :attr:`RecommendationService.current` is a :class:`LoadedModel`: a pipeline,
its similar-items index and its version. A request reads that reference once and uses the
same object to the end, so :meth:`RecommendationService.reload` builds the next version
completely (loading the run, replaying the items created through the API, building the
index) and then replaces the reference in one assignment: requests in flight finish on the
old version, later ones see the new one, and none waits or fails.

Privacy. Every id and text a request brings in passes the run's
:class:`~lmrec.service.privacy.ServiceBoundary` first: user and event ids become the run's
pseudonyms (when it was trained with them) and free text is scrubbed, before anything is
stored, logged or given to the model. Deleting a user records them in the store's deletion
register, which the next training run reads (:mod:`lmrec.privacy.forgetting`).

Live items. ``PUT /v1/items`` changes the current pipeline in place (the catalog grows, a
vector is added to the index); such changes hold the version's write lock briefly, so no
request sees a half-added item. Changes are serialised with reloads, and each one is
committed to the store, so every later version (and a restarted process) replays them.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.errors import ConfigError, LmrecError, ModelFileError, UnknownIdError
from lmrec.pipeline import Pipeline, PipelineRecommendation
from lmrec.service.batching import RequestQueue, ScoreBatcher
from lmrec.service.loaded import (
    IndexFactory,
    LoadedModel,
    SimilarItemIndex,
    cosine_index,
    run_version,
    warm_up,
)
from lmrec.service.privacy import ServiceBoundary
from lmrec.service.store import IngestResult, Store, StoredEvent, StoredItem
from lmrec.service.user_batch import (
    Prepared,
    UserQuery,
    precomputed,
    precomputed_top,
    prepare,
    score_rows,
    top_rows,
)

log = logging.getLogger(__name__)

HISTORY_LIMIT = 500
"""Latest stored events read as a user's recent history."""
MAX_EVENTS = 1000
"""Events per batch; more is refused (HTTP 413)."""


class PayloadTooLargeError(LmrecError):
    """A request carries more than the service accepts at once (HTTP 413)."""


class UnknownFieldIdError(UnknownIdError):
    """An unknown id inside a request body; the message names the field."""

    def __init__(self, kind: str, value: object, field_name: str) -> None:
        super().__init__(kind, value)
        self.field = field_name
        self.args = (f"{field_name}: unknown {kind} id {value!r}",)


@dataclass(frozen=True)
class Recommendations:
    model_version: str
    items: list[PipelineRecommendation]


@dataclass(frozen=True)
class SimilarItems:
    model_version: str
    items: list[tuple[str, float, str, list[str]]]
    """``(item id, cosine similarity, title, categories)``, best first."""


@dataclass(frozen=True)
class ItemChange:
    item_id: str
    created: bool
    model_version: str
    indexed: bool


@dataclass(frozen=True)
class UserForgotten:
    user_id: str
    events_deleted: int
    training_history_items: int


@dataclass(frozen=True)
class Reloaded:
    model_version: str
    previous_version: str
    run: str
    seconds: float


class RecommendationService:
    """Recommendations, events, live items and model versions over one store.

    Args:
        store: The durable state.
        run_dir: The run directory to serve (``lmrec train`` writes one).
        index_factory: Builds the similar-items index from item ids and vectors.
        history_limit: Latest stored events of a user read as their recent history.
        follow_store: Start from the run the store names (other processes' reloads).
        freeze_heap: After each model load, move every object alive into the garbage
            collector's permanent generation (:func:`gc.freeze`). A loaded model holds
            hundreds of thousands of Python objects (item ids, maps, texts); a full
            collection walks them all (~180 ms with the 100,000-item catalogue) and stalls
            every request of the process meanwhile. For a process that owns its heap, such
            as ``lmrec serve``; each reload un-freezes, collects once and freezes again.

    Raises:
        ModelFileError: The run cannot be loaded.
    """

    def __init__(
        self,
        store: Store,
        run_dir: str | Path,
        *,
        index_factory: IndexFactory = cosine_index,
        history_limit: int = HISTORY_LIMIT,
        follow_store: bool = False,
        freeze_heap: bool = False,
    ) -> None:
        self.store = store
        self.freeze_heap = freeze_heap
        self.index_factory = index_factory
        self.history_limit = history_limit
        self._changes = threading.Lock()  # item changes and reloads, one at a time
        self._deleted: frozenset[str] = frozenset()
        self._deleted_cache: tuple[Pipeline, frozenset[str], np.ndarray] | None = None
        self.batcher = ScoreBatcher()  # concurrent requests share one model call
        self.queue = RequestQueue(
            lambda queries: self.recommend_for_users(queries), name="lmrec-recommend"
        )
        """User recommendation requests awaited on the event loop, served in batches."""
        self._sync_stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        with self._changes:
            state = store.served_state()
            self._generation = state.generation  # the store's changes this process has
            start = Path(state.run) if follow_store and state.run else Path(run_dir)
            self._current = self._load(start)
        self._settle_heap()

    def close(self) -> None:
        """Stop following the store, serve the queued requests, and close the store."""
        self._sync_stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join(10)
            self._sync_thread = None
        self.queue.close()
        self.store.close()

    def _settle_heap(self) -> None:
        """With ``freeze_heap``: collect the previous version's cycles, freeze what lives."""
        if self.freeze_heap:
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    # ------------------------------------------------------------------------- processes
    @property
    def changes_applied(self) -> int:
        """The store's change count up to which this process has applied every change."""
        return self._generation

    def sync(self) -> bool:
        """Replay what other serving processes changed; ``True`` if something changed.

        Several processes serving one store (``lmrec serve --workers N``) each hold their
        own model. A process that creates or deletes an item, or reloads the model, counts
        the change in the store (:meth:`Store.record_change`); the others see the count
        move here and reload (the run the store names), which also replays every item
        change. Requests keep flowing on the old version meanwhile.

        Raises:
            ModelFileError: The run the store names cannot be loaded (the current version
                stays, and the next call tries again).
        """
        state = self.store.served_state()
        if state.generation == self._generation:
            return False
        with self._changes:
            target = Path(state.run) if state.run else self._current.run_dir
            self._current = self._load(target)
            self._generation = state.generation
        self._settle_heap()
        log.info("replayed changes up to %d: serving %s", state.generation, self.current.version)
        return True

    def follow_store(self, interval: float = 1.0) -> None:
        """Call :meth:`sync` every ``interval`` seconds in a thread, until :meth:`close`."""
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if self._sync_thread is not None:
            return
        self._sync_stop.clear()

        def follow() -> None:
            while not self._sync_stop.wait(interval):
                try:
                    self.sync()
                except Exception as e:  # a bad run or an unreachable store: try again later
                    log.warning("cannot replay the store's changes: %s", e)

        self._sync_thread = threading.Thread(target=follow, name="lmrec-sync", daemon=True)
        self._sync_thread.start()

    def _count_change(self, run: Path | None = None) -> None:
        """Record a change made here; it is already applied, so this process skips it."""
        count = self.store.record_change(str(run.resolve()) if run is not None else None)
        if count == self._generation + 1:  # nobody else changed anything in between
            self._generation = count

    @property
    def current(self) -> LoadedModel:
        """The model version new requests use (one reference, replaced atomically)."""
        return self._current

    @property
    def deleted_items(self) -> frozenset[str]:
        return self._deleted

    # ------------------------------------------------------------------------- versions
    def _load(self, run_dir: Path) -> LoadedModel:
        try:
            found = run_dir.is_dir()
        except (OSError, ValueError):  # a path too long, or with a NUL byte
            found = False
        if not found:
            raise ModelFileError(f"run directory {str(run_dir)!r} does not exist")
        try:
            boundary = ServiceBoundary.for_run(run_dir)
        except LmrecError as e:
            raise ModelFileError(f"cannot load run {str(run_dir)!r}: {e}") from None
        served = getattr(self, "_current", None)
        if served is not None and served.boundary.id_space != boundary.id_space:
            # the store holds the served run's ids; another key would orphan every user
            raise ModelFileError(
                f"run {str(run_dir)!r} knows its users by {boundary.id_space} ids, the served "
                f"run by {served.boundary.id_space} ids; serve it with its own store"
            )
        try:
            pipeline = Pipeline.load(run_dir)
        except LmrecError:
            raise
        except Exception as e:  # a damaged run can fail in many ways; none may reach clients
            raise ModelFileError(f"cannot load run {str(run_dir)!r}: {e}") from e
        stored = self.store.items()
        live = [s for s in stored if not s.deleted and (s.title or s.text)]
        if live:
            try:
                pipeline.add_items(
                    [
                        {
                            "id": s.item_id,
                            "title": s.title,
                            "text": s.text,
                            "categories": s.categories,
                        }
                        for s in live
                    ]
                )
            except ConfigError as e:
                log.warning("%d items created through the API are not served: %s", len(live), e)
        deleted = frozenset(s.item_id for s in stored if s.deleted)
        index, index_error = self._build_index(pipeline, deleted)
        warm_up(pipeline)  # lazy set-up now, not in the first requests
        self._deleted = deleted
        return LoadedModel(
            pipeline=pipeline,
            run_dir=run_dir,
            version=run_version(run_dir),
            loaded_at=time.time(),
            index=index,
            index_error=index_error,
            boundary=boundary,
        )

    def _build_index(
        self, pipeline: Pipeline, deleted: Collection[str]
    ) -> tuple[SimilarItemIndex | None, str]:
        item_map = pipeline.retrieval.item_map
        if item_map is None:
            return None, "the model is not fitted"
        try:
            vectors = pipeline.item_vectors()
        except ConfigError as e:
            return None, f"similar items need item vectors: {e}"
        keep = [j for j, i in enumerate(item_map.ids) if i not in deleted]
        index = self.index_factory([item_map.ids[j] for j in keep], vectors[keep])
        return index, ""

    def reload(self, run_dir: str | Path | None = None) -> Reloaded:
        """Load a run (default: the current one again) and swap it in atomically.

        Raises:
            ModelFileError: The run cannot be loaded; the current version stays.
        """
        start = time.perf_counter()
        with self._changes:
            old = self._current
            target = Path(run_dir) if run_dir is not None else old.run_dir
            new = self._load(target)
            self._current = new  # the swap: one reference assignment
            self._count_change(target)
        self._settle_heap()
        log.info("model %s replaced by %s", old.version, new.version)
        return Reloaded(new.version, old.version, str(target), time.perf_counter() - start)

    # ------------------------------------------------------------------------- reading
    def recommend_for_user(
        self,
        user_id: str,
        *,
        k: int = 10,
        diversity: float | None = None,
        diversity_method: str | None = None,
        explain: bool = False,
    ) -> Recommendations:
        """Top ``k`` for a user: training history (unless forgotten) + events stored since.

        Args:
            user_id: The raw user id (pseudonymized here when the run pseudonymizes).

        Raises:
            UnknownIdError: Neither the model nor the store knows the user.
        """
        query = UserQuery(user_id, k, diversity, diversity_method, explain)
        answer = self.recommend_for_users([query])[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def recommend_for_users(
        self, queries: Sequence[UserQuery]
    ) -> list[Recommendations | Exception]:
        """:meth:`recommend_for_user` for many queries: one store read, one model call.

        Every query gets its own answer, its recommendations or the error it alone raised
        (an unknown user fails only its own query). All are served by one model version.
        """
        model = self._current
        answers: list[Recommendations | Exception | None] = [None] * len(queries)
        ids: list[str] = []
        for j, q in enumerate(queries):
            try:
                ids.append(model.boundary.user(q.user_id))
            except Exception as e:
                answers[j] = e
                ids.append("")
        states = self.store.user_states([u for u in ids if u], self.history_limit)
        prepared: list[Prepared] = []
        with model.lock.read():
            pipeline = model.pipeline
            for j, (q, user_id) in enumerate(zip(queries, ids, strict=True)):
                if answers[j] is not None:
                    continue
                try:
                    prepared.append(prepare(model, j, q, user_id, states[user_id]))
                except Exception as e:
                    answers[j] = e
            ranked = pipeline.ranker is not None  # a CTR ranker reads full score rows
            rows = score_rows(self.batcher, pipeline, prepared) if ranked else None
            tops = None if ranked else top_rows(pipeline, prepared, self._deleted_indices(model))
            for j, p in enumerate(prepared):
                q = queries[p.position]
                scoring: dict[str, Any] = {}
                if rows is not None:
                    scoring["score_with"] = precomputed(pipeline, p.hist, rows[j])
                elif tops is not None and tops[j] is not None:
                    mask, top, asked = tops[j]  # type: ignore[misc]
                    scoring["top_with"] = precomputed_top(pipeline, p.hist, mask, top, asked)
                try:
                    recs = pipeline.recommend(
                        p.user,
                        history=p.history,
                        k=q.k,
                        diversity=q.diversity,
                        diversity_method=q.diversity_method,
                        explain=q.explain,
                        exclude=self._deleted,
                        **scoring,
                    )
                    answers[p.position] = Recommendations(model.version, recs)
                except Exception as e:
                    answers[p.position] = e
        assert all(a is not None for a in answers)
        return answers  # type: ignore[return-value]

    def _deleted_indices(self, model: LoadedModel) -> np.ndarray:
        """The model's sorted item indices of the deleted items (cached per model and set)."""
        deleted, pipeline = self._deleted, model.pipeline
        cached = self._deleted_cache
        if cached is not None and cached[0] is pipeline and cached[1] is deleted:
            return cached[2]
        item_map = pipeline.retrieval.item_map
        known = [item_map.index(i) for i in deleted if item_map is not None and i in item_map]
        indices = np.unique(np.asarray(known, dtype=np.int64))
        self._deleted_cache = (pipeline, deleted, indices)
        return indices

    def recommend_for_history(
        self,
        history: Sequence[str],
        text: str | None = None,
        *,
        k: int = 10,
        diversity: float | None = None,
        diversity_method: str | None = None,
        explain: bool = False,
        exclude_seen: bool = True,
    ) -> Recommendations:
        """Top ``k`` for an ad-hoc history of item ids and/or a preference text.

        Raises:
            UnknownIdError: An item of the history is unknown.
            ConfigError: Neither a history nor a text, or the model cannot read a text.
        """
        model = self._current
        if text is None and not history:
            raise ConfigError("history: give a non-empty history or a text")
        if text is not None:
            text = model.boundary.text(text)  # stated preferences may hold personal data
        for n, item_id in enumerate(history):
            if not model.knows_item(item_id):
                raise UnknownFieldIdError("item", item_id, f"history[{n}]")
        with model.lock.read():
            recs = model.pipeline.recommend(
                None,
                history=list(history) if history or text is None else None,
                k=k,
                exclude_seen=exclude_seen,
                diversity=diversity,
                diversity_method=diversity_method,
                explain=explain,
                exclude=self._deleted,
                text=text,
                score_with=self.batcher.scorer(model.pipeline.retrieval),
            )
        return Recommendations(model.version, recs)

    def similar_items(self, item_id: str, k: int = 10) -> SimilarItems:
        """The ``k`` items most similar to ``item_id`` (cosine of item vectors).

        Raises:
            UnknownIdError: The item is unknown or deleted.
            ConfigError: The model has no item vectors.
        """
        model = self._current
        if not model.knows_item(item_id) or item_id in self._deleted:
            raise UnknownIdError("item", item_id)
        if model.index is None:
            raise ConfigError(model.index_error)
        with model.lock.read():
            hits = model.index.similar_items(item_id, k, exclude=self._deleted)
            out = [
                (i, float(s), *model.describe(i))
                for i, s in zip(hits.ids, hits.scores, strict=True)
            ]
        return SimilarItems(model.version, out)

    # ------------------------------------------------------------------------- writing
    def ingest(self, batch: Sequence[StoredEvent]) -> IngestResult:
        """Store a batch of events durably (see :meth:`Store.add_events`).

        Raises:
            PayloadTooLargeError: More than :data:`MAX_EVENTS` events.
            UnknownIdError: An event names an item the model does not know (the message
                names the event); nothing is stored then.
        """
        if len(batch) > MAX_EVENTS:
            raise PayloadTooLargeError(
                f"events: at most {MAX_EVENTS} events per batch, got {len(batch)}"
            )
        model = self._current
        for n, e in enumerate(batch):
            if not model.knows_item(e.item_id):
                raise UnknownFieldIdError("item", e.item_id, f"events[{n}].item_id")
        boundary = model.boundary
        stored = [
            replace(e, user_id=boundary.user(e.user_id), event_id=boundary.event_id(e.event_id))
            for e in batch
        ]
        return self.store.add_events(stored)

    def put_item(
        self, item_id: str, *, title: str = "", text: str = "", categories: Sequence[str] = ()
    ) -> ItemChange:
        """Create or update an item from its text; it is recommendable and indexed on return.

        The texts are scrubbed of personal data before they are stored or encoded.

        Raises:
            DataError: The item's fields are invalid.
            ConfigError: The model cannot add items from text (it knows items only by id).
        """
        with self._changes:
            model = self._current
            title, text = model.boundary.text(title), model.boundary.text(text)
            categories = model.boundary.texts(categories)
            record = {"id": item_id, "title": title, "text": text, "categories": categories}
            with model.lock.write():
                added = model.pipeline.add_items([record])
                vector: np.ndarray | None = None
                if model.index is not None:
                    row = model.pipeline.retrieval._require(model.pipeline.retrieval.item_map)
                    vector = model.pipeline.item_vectors()[[row.index(item_id)]]
            self.store.put_item(
                StoredItem(item_id=item_id, title=title, text=text, categories=list(categories))
            )
            if model.index is not None and vector is not None:
                model.index.add([item_id], vector)
            self._deleted = self._deleted - {item_id}
            self._count_change()
        return ItemChange(item_id, bool(added.added), model.version, model.index is not None)

    def delete_item(self, item_id: str) -> None:
        """Remove an item from every result (recommendations and similar items).

        Raises:
            UnknownIdError: The item is unknown or already deleted.
        """
        with self._changes:
            model = self._current
            if not model.knows_item(item_id) or item_id in self._deleted:
                raise UnknownIdError("item", item_id)
            self.store.delete_item(item_id)
            self._deleted = self._deleted | {item_id}
            if model.index is not None:
                model.index.remove([item_id], missing_ok=True)
            self._count_change()

    def forget_user(self, user_id: str) -> UserForgotten:
        """Delete the user's stored events, stop serving their training history, and add them
        to the deletion register that the next training run reads.

        Nothing about the user is cached in the service (a request reads their events from
        the store), so nothing else needs evicting. The model version being served still
        holds what its weights learned from them until a model trained without them
        replaces it.

        Args:
            user_id: The raw user id (pseudonymized here when the run pseudonymizes).

        Raises:
            UnknownIdError: Neither the model nor the store knows the user (now); the
                deletion record is kept anyway, so that a later dataset that holds the user
                leaves them out.
        """
        model = self._current
        raw_id, user_id = user_id, model.boundary.user(user_id)
        in_model = model.knows_user(user_id) and not self.store.is_forgotten(user_id)
        trained = len(model.pipeline.retrieval.history_of(user_id)) if in_model else 0
        deleted = self.store.forget_user(
            user_id, hide_training_history=in_model, id_space=model.boundary.id_space
        )
        if not deleted and not in_model:
            raise UnknownIdError("user", raw_id)
        return UserForgotten(raw_id, deleted, trained)


def forget_stored_user(store: Store, boundary: ServiceBoundary, user_id: str) -> int:
    """Forget a user in the store alone, without loading a model (``lmrec users delete``).

    Deletes their events, records them in the deletion register, and hides their training
    history from every model version served from this store (a running service reads that
    from the store on each request). Returns how many events were deleted.

    Args:
        store: The service's store.
        boundary: The served run's boundary (:meth:`ServiceBoundary.for_run`).
        user_id: The raw user id.
    """
    return store.forget_user(
        boundary.user(user_id), hide_training_history=True, id_space=boundary.id_space
    )
