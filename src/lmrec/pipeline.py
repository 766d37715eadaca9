"""Retrieval → optional ranking → top-k, as one object saved and loaded as one run directory.

A :class:`Pipeline` wraps a fitted retrieval model (any :class:`lmrec.models.BaseRecommender`)
and, optionally, a CTR cross-encoder that re-orders the retrieval model's top-N candidates.
It answers for a known user, for an ad-hoc history of item ids (a new or anonymous user), and
shows titles from the run's catalog::

    pipeline = Pipeline.load("runs/text-frozen-ml100k")
    for rec in pipeline.recommend(user_id="1", k=10):
        print(rec.rank, rec.title, rec.score)
    pipeline.recommend(history=["50", "172", "181"], k=5)

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
    ) -> list[PipelineRecommendation]:
        """Top ``k`` items for a known user, or for a history of item ids.

        Args:
            user_id: A user of the training data; their training history is used.
            history: Item ids in time order, for a user the model has not seen (or to
                override a known user's history). Needs an inductive retrieval model (SASRec,
                the text models, item-kNN); others fall back to what they know.
            k: How many items.
            exclude_seen: Leave the history's items out.

        Raises:
            ConfigError: Neither ``user_id`` nor ``history`` was given, or ``k`` < 1.
            UnknownIdError: The user or an item of the history is unknown.
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        if user_id is None and history is None:
            raise ConfigError("recommend needs a user_id or a history of item ids")
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
