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

Layout inside a run directory: ``model/`` (retrieval), ``ranker/`` (CTR model, optional),
``pipeline.json`` (``top_n`` and what is present) and ``catalog.json`` (titles).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmrec.errors import ConfigError, ModelFileError, UnknownIdError
from lmrec.models import BaseRecommender, load_model

if TYPE_CHECKING:
    from lmrec.diversity import DiversityConfig
    from lmrec.models.ctr import CTRModel

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "rank": self.rank,
            "score": self.score,
            "title": self.title,
            "categories": self.categories,
            "retrieval_score": self.retrieval_score,
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

    def _diversified_top(self, scores: np.ndarray, k: int, config: DiversityConfig) -> np.ndarray:
        """The top ``k`` of a final score row (history already at ``-inf``), re-ranked."""
        from lmrec.diversity import diversify
        from lmrec.models.ctr import top_candidates

        cands = top_candidates(scores, np.zeros(0, dtype=np.int64), max(config.candidates, k))
        categories = self.item_categories() if config.max_per_category is not None else None
        if categories is not None and not any(categories):
            raise ConfigError("max_per_category needs a catalog with item categories")
        vectors = self.item_vectors() if config.lam > 0.0 else None
        return diversify(cands, scores[cands], k, config, vectors, categories)

    def _history_indices(self, history: Sequence[str]) -> np.ndarray:
        item_map = self.retrieval._require(self.retrieval.item_map)
        for item in history:
            if not isinstance(item, str):
                raise TypeError(f"history item {item!r} is {type(item).__name__}, expected str")
            if item not in item_map:
                raise UnknownIdError("item", item)
        return np.asarray([item_map.index(i) for i in history], dtype=np.int64)

    def recommend(
        self,
        user_id: str | None = None,
        *,
        history: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool = True,
        diversity: float = 0.0,
        diversity_method: str = "mmr",
        max_per_category: int | None = None,
    ) -> list[PipelineRecommendation]:
        """Top ``k`` items for a known user, or for a history of item ids.

        Diversity re-ranking (:mod:`lmrec.diversity`) applies last, to the best
        ``max(100, k)`` items of the final order (after the ranker, when there is one),
        with the similarity of :meth:`item_vectors`; ``diversity=0`` without a cap gives the
        plain order.

        Args:
            user_id: A user of the training data; their training history is used.
            history: Item ids in time order, for a user the model has not seen (or to
                override a known user's history). Needs an inductive retrieval model (SASRec,
                the text models, item-kNN); others fall back to what they know.
            k: How many items.
            exclude_seen: Leave the history's items out.
            diversity: λ in ``[0, 1]``, the weight of diversity against relevance.
            diversity_method: ``"mmr"`` or ``"dpp"``.
            max_per_category: At most this many items of one catalog category; the list is
                shorter when the candidates run out.

        Raises:
            ConfigError: Neither ``user_id`` nor ``history`` was given, ``k`` < 1, a
                diversity option is invalid, or diversity finds no item vectors or
                categories.
            UnknownIdError: The user or an item of the history is unknown.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if user_id is None and history is None:
            raise ConfigError("recommend needs a user_id or a history of item ids")
        from lmrec.diversity import diversity_config

        spread = diversity_config(diversity_method, diversity, max_per_category=max_per_category)
        user_index = -1
        if user_id is not None:
            user_map = self.retrieval._require(self.retrieval.user_map)
            user_index = user_map.index(user_id)
        if history is not None:
            hist = self._history_indices(history)
        else:
            assert user_id is not None
            hist = self.retrieval.history_of(user_id)
        retrieval = self.retrieval.score(np.array([user_index]), [hist])[0].astype(np.float64)
        scores = retrieval
        if self.ranker is not None:
            scores = self.score(np.array([user_index]), [hist])[0].astype(np.float64)
        if exclude_seen and len(hist):
            scores = scores.copy()
            scores[hist] = -np.inf
        n_ok = int(np.isfinite(scores).sum())
        k = min(k, n_ok)
        if k == 0:
            return []
        if spread.active:
            top = self._diversified_top(scores, k, spread)
        else:
            top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
            top = top[np.lexsort((top, -scores[top]))][:k]
        probs: dict[int, float] = {}
        if self.ranker is not None:
            shown = [int(i) for i in top]
            p = self.ranker.score_candidates(np.array([user_index]), [hist], [np.array(shown)])
            probs = dict(zip(shown, (float(x) for x in p[0]), strict=True))
        item_map = self.retrieval._require(self.retrieval.item_map)
        out = []
        for rank, i in enumerate(top, start=1):
            item_id = item_map.ids[int(i)]
            info = self.catalog.get(item_id, {})
            out.append(
                PipelineRecommendation(
                    item_id=item_id,
                    score=probs.get(int(i), float(retrieval[i])),
                    rank=rank,
                    title=str(info.get("title", "")),
                    categories=list(info.get("categories", [])),
                    retrieval_score=float(retrieval[i]),
                )
            )
        return out

    # ------------------------------------------------------------------------- persistence
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
        meta = {"top_n": self.top_n, "ranker": self.ranker is not None}
        (run_dir / PIPELINE_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, run_dir: str | Path) -> Pipeline:
        """Load a pipeline from a run directory (``lmrec train`` writes one).

        A run without ``pipeline.json`` (a retrieval model alone) loads as a pipeline
        without a ranker.

        Raises:
            ModelFileError: The directory holds no model, or its ranker is incomplete.
        """
        run_dir = Path(run_dir)
        if not (run_dir / "model").is_dir():
            raise ModelFileError(f"{run_dir} holds no model (expected {run_dir / 'model'})")
        retrieval = load_model(run_dir / "model")
        meta: dict[str, Any] = {}
        if (run_dir / PIPELINE_FILE).exists():
            meta = json.loads((run_dir / PIPELINE_FILE).read_text())
        ranker = None
        if meta.get("ranker"):
            from lmrec.models.ctr import CTRModel

            ranker = CTRModel.load(run_dir / "ranker")
        catalog: dict[str, dict[str, Any]] = {}
        if (run_dir / CATALOG_FILE).exists():
            rows = json.loads((run_dir / CATALOG_FILE).read_text())
            catalog = {r["item_id"]: {k: v for k, v in r.items() if k != "item_id"} for r in rows}
        return cls(retrieval, ranker, int(meta.get("top_n", 50)), catalog)
