"""Retrieval → optional ranking → top-k, as one object saved and loaded as one run directory.

A :class:`Pipeline` wraps a fitted retrieval model (any :class:`lmrec.models.BaseRecommender`)
and, optionally, a CTR cross-encoder that re-orders the retrieval model's top-N candidates.
It answers for a known user, for an ad-hoc history of item ids (a new or anonymous user), and
shows titles from the run's catalog::

    pipeline = Pipeline.load("runs/text-frozen-ml100k")
    for rec in pipeline.recommend(user_id="1", k=10):
        print(rec.rank, rec.title, rec.score)
    pipeline.recommend(history=["50", "172", "181"], k=5)
    pipeline.recommend(user_id="1", k=10, diversity=0.3, diversity_method="dpp")
    pipeline.add_items([{"id": "new-1", "title": "Dune: Part Two (2024)",
                         "categories": ["Action", "Sci-Fi"]}])   # a text model only
    pipeline.update_run("runs/text-frozen-ml100k")                # keep them

Layout inside a run directory: ``model/`` (retrieval), ``ranker/`` (CTR model, optional),
``pipeline.json`` (``top_n`` and what is present) and ``catalog.json`` (titles).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmrec.errors import ConfigError, UnknownIdError
from lmrec.models import BaseRecommender
from lmrec.models.base import AddedItems, TopItems

if TYPE_CHECKING:
    from lmrec.attributes import ItemAttributes
    from lmrec.coldstart import ColdStartConfig
    from lmrec.diversity import DiversityConfig
    from lmrec.explain import Explainer, Explanation
    from lmrec.items import NewItem
    from lmrec.models.ctr import CTRModel
    from lmrec.profile import UserProfile

PIPELINE_FILE = "pipeline.json"
CATALOG_FILE = "catalog.json"


@dataclass
class PipelineRecommendation:
    """One recommended item, with what a person needs to read it."""

    item_id: str
    score: float
    rank: int
    title: str = ""
    categories: list[str] = field(default_factory=list)
    retrieval_score: float | None = None
    """The retrieval model's score; ``score`` is the ranker's probability when re-ranked."""
    explanation: Explanation | None = None
    """Why it was recommended (``recommend(..., explain=True)``), else ``None``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "rank": self.rank,
            "score": self.score,
            "title": self.title,
            "categories": self.categories,
            "retrieval_score": self.retrieval_score,
            "explanation": self.explanation.to_dict() if self.explanation else None,
        }


class Pipeline:
    """A retrieval model, an optional ranker and the catalog, used together.

    Args:
        retrieval: A fitted retrieval model.
        ranker: A fitted CTR model that re-orders the top ``top_n`` candidates, or ``None``.
        top_n: Candidates the ranker re-orders.
        catalog: Item id → ``{"title", "categories"}`` (see ``lmrec.experiment.read_catalog``).

    Raises:
        ConfigError: ``top_n`` is below 1.
    """

    def __init__(
        self,
        retrieval: BaseRecommender,
        ranker: CTRModel | None = None,
        top_n: int = 50,
        catalog: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        if top_n < 1:
            raise ConfigError(f"top_n must be at least 1, got {top_n}")
        self.retrieval = retrieval
        self.ranker = ranker
        self.top_n = top_n
        self.catalog = catalog or {}
        self._item_vectors: np.ndarray | None = None
        self._attributes: ItemAttributes | None = None
        self.cold_start: ColdStartConfig | None = None
        """How ``recommend(text=...)`` scores a stated-preference text (``None``: defaults)."""
        self.dataset = ""
        """The dataset's name (from the run's ``config.json``); picks the explanation verb."""
        self.diversity: DiversityConfig | None = None
        """The default diversity re-ranking of :meth:`recommend` (a run's ``[diversity]``
        table, stored in ``pipeline.json``); ``None``: the plain ranking."""

    @property
    def name(self) -> str:
        return self.retrieval.name if self.ranker is None else f"{self.retrieval.name}+ctr"

    # ------------------------------------------------------------------------- scoring
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Full-catalog scores: the retrieval scores, with the top-N re-ordered by the ranker.

        Same contract as :meth:`lmrec.models.Recommender.score`, so the evaluator measures the
        whole pipeline with the same code as a single model.
        """
        scores = self.retrieval.score(users, histories)
        if self.ranker is None:
            return scores
        from lmrec.models.ctr import rerank_scores

        return rerank_scores(scores, histories, self.ranker, self.top_n, users)

    def item_vectors(self) -> np.ndarray:
        """Item vectors ``(n_items, dim)`` for diversity re-ranking, by item index.

        The retrieval model's own vectors when it has them (the text models: a method
        ``item_vectors()`` or an ``item_vectors`` array), otherwise multi-hot vectors of the
        catalog's categories (an item without categories gets a zero vector). Computed once
        and kept while the number of items stays the same.

        Raises:
            ConfigError: Neither the model has item vectors nor the catalog has categories.
        """
        n_items = len(self.retrieval._require(self.retrieval.item_map))
        if self._item_vectors is not None and len(self._item_vectors) == n_items:
            return self._item_vectors
        source = getattr(self.retrieval, "item_vectors", None)
        vectors = source() if callable(source) else source
        if vectors is None:
            categories = self.item_categories()
            names = sorted({c for cats in categories for c in cats})
            if not names:
                raise ConfigError(
                    f"diversity needs item vectors or categories: model {self.retrieval.name!r} "
                    "has no item vectors and the catalog no categories"
                )
            column = {c: j for j, c in enumerate(names)}
            vectors = np.zeros((n_items, len(names)), dtype=np.float32)
            for i, cats in enumerate(categories):
                vectors[i, [column[c] for c in cats]] = 1.0
        self._item_vectors = np.asarray(vectors, dtype=np.float32)
        return self._item_vectors

    def item_categories(self) -> list[list[str]]:
        """The catalog's categories of every item, by item index (empty when unknown)."""
        item_map = self.retrieval._require(self.retrieval.item_map)
        return [
            [str(c) for c in self.catalog.get(i, {}).get("categories", [])] for i in item_map.ids
        ]

    def item_attributes(self) -> ItemAttributes:
        """Display titles, categories and keywords of every item, by item index (cached
        while the number of items stays the same)."""
        from lmrec.attributes import ItemAttributes

        item_map = self.retrieval._require(self.retrieval.item_map)
        if self._attributes is None or len(self._attributes) != len(item_map):
            self._attributes = ItemAttributes.from_catalog(item_map.ids, self.catalog)
        return self._attributes

    def explainer(self, **options: Any) -> Explainer:
        """An :class:`lmrec.explain.Explainer` of the retrieval model (the ranker, when
        there is one, is not explained: it re-orders by a profile of recent titles).

        Args:
            **options: ``max_items``, ``max_occluded``, ``fast_paths`` or ``verb``.
        """
        from lmrec.explain import Explainer, verb_for

        options.setdefault("verb", verb_for(self.dataset))
        return Explainer(self.retrieval, self.item_attributes(), **options)

    def explain(
        self,
        items: Sequence[str],
        user_id: str | None = None,
        *,
        history: Sequence[str] | None = None,
        **options: Any,
    ) -> list[Explanation]:
        """Why the retrieval model scores ``items`` for a user or a history as it does.

        Every distinct history item is left out once and the reduced histories are scored
        in one batch; the items whose removal lowers an item's score most are cited (see
        :mod:`lmrec.explain`). Only history items are ever cited.

        Args:
            items: Item ids to explain.
            user_id: A known user; their training history is used.
            history: Item ids in time order instead (or to override the user's).
            **options: Passed to :meth:`explainer`.

        Raises:
            ConfigError: Neither ``user_id`` nor ``history`` was given.
            UnknownIdError: The user or an item is unknown.
        """
        user_index, hist = self._user_and_history(user_id, history)
        wanted = self._history_indices(items)
        return self.explainer(**options).explain(user_index, hist, wanted)

    def profile(
        self,
        user_id: str | None = None,
        *,
        history: Sequence[str] | None = None,
        half_life: float | None = None,
        recent: int | None = None,
        top: int = 5,
    ) -> UserProfile:
        """A readable, weighted summary of a user's interests (see :mod:`lmrec.profile`).

        Args:
            user_id: A known user; their training history is used.
            history: Item ids in time order instead (or to override the user's).
            half_life: Recency half-life in items (default ``20``).
            recent: Items in the recent view (default ``10``).
            top: Categories and keywords kept per view.

        Raises:
            ConfigError: Neither ``user_id`` nor ``history`` was given, or an option is
                out of range.
            UnknownIdError: The user or an item is unknown.
        """
        from lmrec.profile import DEFAULT_HALF_LIFE, DEFAULT_RECENT, build_profile

        _, hist = self._user_and_history(user_id, history)
        return build_profile(
            hist,
            self.item_attributes(),
            user_id=user_id,
            half_life=DEFAULT_HALF_LIFE if half_life is None else half_life,
            recent=DEFAULT_RECENT if recent is None else recent,
            top=top,
        )

    def _user_and_history(
        self, user_id: str | None, history: Sequence[str] | None
    ) -> tuple[int, np.ndarray]:
        if user_id is None and history is None:
            raise ConfigError("needs a user_id or a history of item ids")
        user_index = -1
        if user_id is not None:
            user_index = self.retrieval._require(self.retrieval.user_map).index(user_id)
        if history is not None:
            return user_index, self._history_indices(history)
        assert user_id is not None
        return user_index, self.retrieval.history_of(user_id)

    def _diversified_top(
        self, cands: np.ndarray, relevance: np.ndarray, k: int, config: DiversityConfig
    ) -> np.ndarray:
        """The top ``k`` of the best candidates (best first, with their scores), re-ranked."""
        from lmrec.diversity import diversify

        categories = self.item_categories() if config.max_per_category is not None else None
        if categories is not None and not any(categories):
            raise ConfigError("max_per_category needs a catalog with item categories")
        vectors = self.item_vectors() if config.lam > 0.0 else None
        return diversify(cands, relevance, k, config, vectors, categories)

    def _history_indices(self, history: Sequence[str]) -> np.ndarray:
        item_map = self.retrieval._require(self.retrieval.item_map)
        for item in history:
            if not isinstance(item, str):
                raise TypeError(f"history item {item!r} is {type(item).__name__}, expected str")
            if item not in item_map:
                raise UnknownIdError("item", item)
        return np.asarray([item_map.index(i) for i in history], dtype=np.int64)

    def _spread(
        self, diversity: float | None, method: str | None, max_per_category: int | None
    ) -> DiversityConfig:
        """The diversity options of one call: each unset one from :attr:`diversity`."""
        from lmrec.diversity import DiversityConfig, diversity_config

        default = self.diversity if self.diversity is not None else DiversityConfig()
        cap = default.max_per_category if max_per_category is None else max_per_category or None
        return diversity_config(
            default.method if method is None else method,
            default.lam if diversity is None else diversity,
            default.candidates,
            cap,
        )

    def candidates_needed(
        self,
        k: int,
        diversity: float | None = None,
        diversity_method: str | None = None,
        max_per_category: int | None = None,
    ) -> int:
        """How many best items :meth:`recommend` draws from for these options (the
        re-rankers' candidates when diversity applies, else ``k``)."""
        spread = self._spread(diversity, diversity_method, max_per_category)
        return max(spread.candidates, k) if spread.active else k

    def recommend(
        self,
        user_id: str | None = None,
        *,
        history: Sequence[str] | None = None,
        text: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        diversity: float | None = None,
        diversity_method: str | None = None,
        max_per_category: int | None = None,
        explain: bool = False,
        exclude: Iterable[str] | None = None,
        score_with: Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray] | None = None,
        top_with: TopItems | None = None,
    ) -> list[PipelineRecommendation]:
        """Top ``k`` items for a known user, or for a history of item ids.

        Diversity re-ranking (:mod:`lmrec.diversity`) applies last, to the best
        ``max(100, k)`` items of the final order (after the ranker, when there is one),
        with the similarity of :meth:`item_vectors`; ``diversity=0`` without a cap gives the
        plain order. The three diversity options default to :attr:`diversity` (the run's
        ``[diversity]`` table), field by field; without one, to the plain order.

        Args:
            user_id: A user of the training data; their training history is used.
            history: Item ids in time order, for a user the model has not seen (or to
                override a known user's history). Needs an inductive retrieval model (SASRec,
                the text models, item-kNN); others fall back to what they know.
            text: Stated preferences of a cold user ("I like heist films"), alone or with
                ``history`` / ``user_id``; needs a text retrieval model, which places it in
                its item space (:mod:`lmrec.coldstart`, set by :attr:`cold_start`). The CTR
                ranker cannot read it, so a text query is served by retrieval alone.
            attributes: User attributes (``{"age": 24, "occupation": "writer"}``), used like
                ``text`` (zip codes and other quasi-identifiers are dropped).
            k: How many items.
            exclude_seen: Leave the history's items out.
            diversity: λ in ``[0, 1]``, the weight of diversity against relevance
                (``None``: the default's λ, else 0).
            diversity_method: ``"mmr"`` or ``"dpp"`` (``None``: the default's, else mmr).
            max_per_category: At most this many items of one catalog category; the list is
                shorter when the candidates run out (``None``: the default's cap; 0: none).
            explain: Attach an :class:`lmrec.explain.Explanation` to every item: the
                history items whose removal lowers its retrieval score most, and the
                attributes they share (see :meth:`explain`).
            exclude: Item ids never to recommend (e.g. items withdrawn from the catalog);
                unknown ids are ignored.
            score_with: Computes the retrieval scores in place of ``self.retrieval.score`` (same
                contract); the service passes one that scores concurrent requests in one
                batch (:class:`lmrec.service.runtime.ScoreBatcher`). Not used for ``text``;
                given, the full score row is sorted.
            top_with: Finds the best items in place of ``self.retrieval.top_items`` (same
                contract); the service passes one that answers from a batch found ahead.
                Used when there is neither a ranker, nor a text, nor ``score_with``.

        Raises:
            ConfigError: None of ``user_id``, ``history``, ``text``, ``attributes`` was
                given, ``k`` < 1, a diversity option is invalid, diversity finds no item
                vectors or categories, the text is blank, or the retrieval model cannot
                read text.
            UnknownIdError: The user or an item of the history is unknown.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        query = None
        if text is not None or attributes is not None:
            from lmrec.coldstart import query_text
            from lmrec.privacy import scrub_text

            query = scrub_text(query_text(text, attributes))  # PII never reaches the model
        if user_id is None and history is None and query is None:
            raise ConfigError("recommend needs a user_id or a history of item ids, or a text")
        spread = self._spread(diversity, diversity_method, max_per_category)
        user_index, hist = self.query_indices(user_id, history)
        masked = [hist] if exclude_seen and len(hist) else []
        if exclude is not None:
            known = self.retrieval._require(self.retrieval.item_map)
            masked.append(np.asarray([known.index(i) for i in exclude if i in known], dtype=int))
        mask = np.concatenate(masked).astype(np.int64) if masked else np.zeros(0, np.int64)
        n = self.candidates_needed(k, diversity, diversity_method, max_per_category)
        retrieval_scores: dict[int, float]
        if query is None and self.ranker is None and score_with is None:
            # no full row needed: the model finds its best n items (top_with: in a batch)
            find = top_with if top_with is not None else self.retrieval.top_items
            cands, values = find(np.array([user_index]), [hist], n, [mask])[0]
            retrieval_scores = dict(zip(cands.tolist(), values.tolist(), strict=True))
            relevance = values.astype(np.float64)
        else:
            if query is not None:
                from lmrec.coldstart import ColdStartScorer

                scorer = ColdStartScorer(self.retrieval, self.cold_start)
                retrieval = scorer.score_texts([query], [hist])[0].astype(np.float64)
                if explain:  # the explanation scores reduced histories with the same text

                    def explained_score(
                        users: np.ndarray, rows: Sequence[np.ndarray]
                    ) -> np.ndarray:
                        q = scorer.encode([query])
                        return scorer.score(np.repeat(q, len(rows), axis=0), rows)
            else:
                score = score_with if score_with is not None else self.retrieval.score
                retrieval = score(np.array([user_index]), [hist])[0].astype(np.float64)
            scores = retrieval
            if self.ranker is not None and query is None:
                scores = self.score(np.array([user_index]), [hist])[0].astype(np.float64)
            from lmrec.models.ctr._rerank import top_candidates

            # ties to the lower item index, as the evaluator and the re-rankers break them;
            # fewer than n when fewer items are left
            cands = top_candidates(scores, mask, n)
            retrieval_scores = {int(i): float(retrieval[i]) for i in cands}
            relevance = scores[cands]
        if len(cands) == 0:
            return []
        if spread.active:
            top = self._diversified_top(cands, relevance, min(k, len(cands)), spread)
        else:
            top = cands[:k]
        probs: dict[int, float] = {}
        if self.ranker is not None and query is None:
            shown = [int(i) for i in top]
            p = self.ranker.score_candidates(np.array([user_index]), [hist], [np.array(shown)])
            probs = dict(zip(shown, (float(x) for x in p[0]), strict=True))
        item_map = self.retrieval._require(self.retrieval.item_map)
        reasons = None
        if explain:
            reasons = self.explainer().explain(
                user_index, hist, top, explained_score if query is not None else None
            )
        out = []
        for rank, i in enumerate(top, start=1):
            item_id = item_map.ids[int(i)]
            info = self.catalog.get(item_id, {})
            out.append(
                PipelineRecommendation(
                    item_id=item_id,
                    score=probs.get(int(i), retrieval_scores[int(i)]),
                    rank=rank,
                    title=str(info.get("title", "")),
                    categories=list(info.get("categories", [])),
                    retrieval_score=retrieval_scores[int(i)],
                    explanation=reasons[rank - 1] if reasons else None,
                )
            )
        return out

    def query_indices(
        self, user_id: str | None, history: Sequence[str] | None
    ) -> tuple[int, np.ndarray]:
        """The model's user index (-1: none) and history item indices :meth:`recommend` scores.

        ``history`` wins over the user's training history; neither gives an empty one.
        A batching caller scores these ahead and hands the rows in through ``score_with``.

        Raises:
            UnknownIdError: The user or an item of the history is unknown.
        """
        user_index = -1
        if user_id is not None:
            user_map = self.retrieval._require(self.retrieval.user_map)
            user_index = user_map.index(user_id)
        if history is not None:
            hist = self._history_indices(history)
        elif user_id is not None:
            hist = self.retrieval.history_of(user_id)
        else:
            hist = np.zeros(0, dtype=np.int64)
        return user_index, hist

    # ------------------------------------------------------------------------- new items
    def add_items(self, items: Iterable[NewItem | Mapping[str, Any]]) -> AddedItems:
        """Add items to the catalog from their text; they can be recommended at once.

        Each item's text is written in the layout of the model's catalog texts
        (:func:`lmrec.items.item_text`), encoded by the model's own encoder and indexed;
        the ranker, when there is one, reads the same text. An id the catalog has already
        is updated: its title, text and categories are replaced and its vector re-encoded,
        but it keeps its index, its interactions and (in a fused model) its learned id
        embedding. Nothing is written to disk: see :meth:`save` and :meth:`update_run`.

        Args:
            items: :class:`lmrec.items.NewItem` objects or mappings with ``id``, ``title``,
                optional ``text`` (or ``description``) and ``categories``.

        Returns:
            The ids appended and the ids updated.

        Raises:
            DataError: An item is invalid (a field of the wrong type, no title and no
                text, an unknown field) or an id appears twice; the message names it.
            ConfigError: The retrieval model knows items only by learned ids (pop,
                item-kNN, BPR, SASRec) and cannot add items from text.
        """
        from lmrec.items import item_text, parse_items, text_layout
        from lmrec.privacy import scrub_new_item

        checked = [scrub_new_item(i) for i in parse_items(items)]  # PII never reaches the model
        if not checked:
            return AddedItems()
        layout = text_layout(getattr(self.retrieval, "item_texts", None) or [])
        result = self.retrieval.add_items({i.item_id: item_text(i, layout) for i in checked})
        if self.ranker is not None:
            ranker_texts = self.ranker.catalog.item_texts if self.ranker.catalog else []
            ranker_layout = text_layout(ranker_texts)
            self.ranker.add_items(
                {i.item_id: item_text(i, ranker_layout) for i in checked},
                {i.item_id: i.display_title for i in checked},
            )
        for item in checked:
            entry = dict(self.catalog.get(item.item_id, {}))
            entry.update(title=item.display_title, categories=list(item.categories))
            self.catalog[item.item_id] = entry
        self._item_vectors = None  # cached by catalog size, which an update keeps
        self._attributes = None
        return result

    def set_new_item_boost(self, boost: float) -> None:
        """Lift items without a training interaction by ``boost`` standard deviations of
        each user's scores (``TextSeqConfig.new_item_boost``; 0 turns it off).

        Raises:
            ConfigError: The retrieval model is not a ``text_seq`` model, or ``boost`` is
                not in [0, 5].
        """
        setter = getattr(self.retrieval, "set_new_item_boost", None)
        if setter is None:
            raise ConfigError(
                f"model {self.retrieval.name!r} has no new-item boost (text_seq models only)"
            )
        setter(boost)

    # ------------------------------------------------------------------------- persistence
    def update_run(self, run_dir: str | Path) -> None:
        """Write the pipeline back into an existing run directory, e.g. after
        :meth:`add_items`, leaving its config, results and logs as they are.

        Everything is first written into a staging folder inside ``run_dir``; then
        ``catalog.json`` and ``pipeline.json`` are replaced atomically and ``model/`` and
        ``ranker/`` swapped in by renames, so a failed write leaves the run as it was. (A
        crash between the two renames of one folder leaves the old copy in the staging
        folder ``.update-*``.)

        Raises:
            ModelFileError: ``run_dir`` holds no model.
        """
        from lmrec._pipeline_io import update_run

        update_run(self, Path(run_dir))

    def save(self, run_dir: str | Path) -> None:
        """Write ``model/``, ``ranker/`` (when there is one), the catalog and ``pipeline.json``."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.retrieval.save(run_dir / "model")
        if self.ranker is not None:
            self.ranker.save(run_dir / "ranker")
        if self.catalog:
            rows = [{"item_id": i, **v} for i, v in self.catalog.items()]
            (run_dir / CATALOG_FILE).write_text(json.dumps(rows))
        meta: dict[str, Any] = {"top_n": self.top_n, "ranker": self.ranker is not None}
        if self.cold_start is not None:
            meta["cold_start"] = self.cold_start.model_dump()
        if self.diversity is not None:
            meta["diversity"] = self.diversity.model_dump()
        (run_dir / PIPELINE_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, run_dir: str | Path) -> Pipeline:
        """Load a pipeline from a run directory (``lmrec train`` writes one).

        A run without ``pipeline.json`` (a retrieval model alone) loads as a pipeline
        without a ranker.

        Raises:
            ModelFileError: The directory holds no model, or its ranker is incomplete.
        """
        from lmrec._pipeline_io import load_pipeline

        return load_pipeline(cls, Path(run_dir))
