"""The recommender protocol and the shared base class of every model.

Every model scores the whole catalog for a batch of users given their known histories. The
base class keeps the id maps and the training histories, so ``recommend`` (by external user
id) and ``save``/``load`` work the same for all models; a subclass implements
``_fit``, ``score`` and the ``_save_state`` / ``_load_state`` pair.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError, ModelFileError, NotFittedError

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask


TopItems = Callable[
    [np.ndarray, Sequence[np.ndarray], int, Sequence[np.ndarray] | None],
    list[tuple[np.ndarray, np.ndarray]],
]
"""What :meth:`BaseRecommender.top_items` is: (users, histories, n, masked) to, per query,
the best item indices and their scores."""


@dataclass
class Recommendation:
    """One recommended item."""

    item_id: str
    score: float
    rank: int


@dataclass
class AddedItems:
    """What ``add_items`` did: item ids appended to the catalog, and known ids whose text was
    replaced (in the order given)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


@dataclass
class FitReport:
    """What a ``fit`` call did: seconds, epochs, the best validation metrics, the log."""

    train_seconds: float = 0.0
    epochs: int = 0
    best_epoch: int | None = None
    seconds_to_best: float | None = None
    best_valid: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    encode_seconds: float | None = None
    """Seconds spent running a language model over item text (text models only)."""
    privacy: dict[str, Any] = field(default_factory=dict)
    """With DP-SGD training: the spent ε, δ, noise multiplier, clipping norm, sample rate,
    steps and accountant (:meth:`lmrec.privacy.dp.DPTrainer.privacy_report`); else empty."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_seconds": self.train_seconds,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "seconds_to_best": self.seconds_to_best,
            "best_valid": self.best_valid,
            "history": self.history,
            "encode_seconds": self.encode_seconds,
            "privacy": self.privacy,
        }


@dataclass
class FitOptions:
    """Runtime options of one ``fit`` call, apart from hyperparameters.

    Args:
        work_dir: Where a trainer may write checkpoints (``checkpoints/``) and its JSONL log
            (``train_log.jsonl``); ``None`` writes nothing.
        resume: Continue from the last checkpoint in ``work_dir`` when there is one.
        show_progress: Show progress bars.
    """

    work_dir: Path | None = None
    resume: bool = False
    show_progress: bool = False


@runtime_checkable
class Recommender(Protocol):
    """What every lmrec model offers."""

    name: str

    def fit(
        self,
        train: InteractionData,
        valid: EvalTask | None = None,
        options: FitOptions | None = None,
    ) -> FitReport:
        """Train on ``train``; ``valid`` (when given) drives early stopping."""
        ...

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every catalog item, shape ``(len(users), n_items)``, float32.

        Args:
            users: User indices (``-1`` for a user the model has never seen).
            histories: Per user, the time-ordered item indices known so far.
        """
        ...

    def recommend(
        self, user_id: str, k: int = 10, exclude_seen: bool = True
    ) -> list[Recommendation]:
        """Top ``k`` items for a known user, by external id."""
        ...

    def save(self, path: str | Path) -> None:
        """Write the fitted model into directory ``path``."""
        ...


class BaseRecommender(ABC):
    """Shared state and behaviour: id maps, training histories, recommend, save/load."""

    name: ClassVar[str] = "base"
    uses_item_text: ClassVar[bool] = False
    """Whether the model reads item text (then ``set_item_texts`` must precede ``fit``)."""

    def __init__(self) -> None:
        self.user_map: IdMap | None = None
        self.item_map: IdMap | None = None
        self.histories: list[np.ndarray] | None = None
        self.fit_options = FitOptions()

    # -- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        train: InteractionData,
        valid: EvalTask | None = None,
        options: FitOptions | None = None,
    ) -> FitReport:
        """Train on ``train``; see :class:`Recommender`. Subclasses read ``self.fit_options``."""
        self.fit_options = options or FitOptions()
        self.user_map, self.item_map = train.user_map, train.item_map
        self.histories = train.sequences()
        return self._fit(train, valid)

    @abstractmethod
    def _fit(self, train: InteractionData, valid: EvalTask | None) -> FitReport: ...

    @abstractmethod
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray: ...

    @property
    def n_items(self) -> int:
        return len(self._require(self.item_map))

    def _require(self, value: Any) -> Any:
        if value is None:
            raise NotFittedError(f"{self.name} is not fitted: call fit() or load() first")
        return value

    def add_items(self, texts: Mapping[str, str]) -> AddedItems:
        """Add items to the fitted catalog from their text, without retraining.

        Only models that read item text can (see
        :meth:`lmrec.models.text.TextRecommenderBase.add_items`); the others know an item
        only by what training learned about its id.

        Raises:
            ConfigError: This model cannot place an item it was not trained on.
        """
        raise ConfigError(
            f"model {self.name!r} knows items only by ids learned in training and cannot add "
            "items from text; serve new items with a text model (text_seq or text_mean)"
        )

    # -- serving ---------------------------------------------------------------------------
    def history_of(self, user_id: str) -> np.ndarray:
        """Item indices the user interacted with in training (unknown user raises)."""
        user_map: IdMap = self._require(self.user_map)
        histories: list[np.ndarray] = self._require(self.histories)
        return histories[user_map.index(user_id)]

    def recommend(
        self, user_id: str, k: int = 10, exclude_seen: bool = True
    ) -> list[Recommendation]:
        """Top ``k`` items for a known user; history items are excluded unless asked."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        user_map: IdMap = self._require(self.user_map)
        item_map: IdMap = self._require(self.item_map)
        u = user_map.index(user_id)
        hist = self.history_of(user_id)
        scores = self.score(np.array([u]), [hist])[0].astype(np.float64)
        if exclude_seen and len(hist):
            scores[hist] = -np.inf
        k = min(k, int(np.isfinite(scores).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by index: deterministic
        return [
            Recommendation(item_id=item_map.ids[i], score=float(scores[i]), rank=r + 1)
            for r, i in enumerate(top[:k])
        ]

    def top_items(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray],
        n: int,
        masked: Sequence[np.ndarray] | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query, the ``n`` best items of :meth:`score`'s row and their scores.

        The same items and order as sorting the full row (ties to the lower index, masked
        and non-finite scores left out); models that score ``query · item`` find them
        without sorting the catalog (:mod:`lmrec.models.dot_top`).

        Args:
            users: As for :meth:`score`.
            histories: As for :meth:`score`.
            n: Items per query (fewer when fewer are eligible).
            masked: Per query, item indices never to return (default: none).

        Returns:
            Per query, int64 item indices and float32 scores, best first.
        """
        from lmrec.models.ctr._rerank import rows_top

        masks = check_masks(histories, masked)
        fast = self._top_without_sort(histories, n, masks)
        if fast is not None:
            return fast
        return rows_top(self.score(users, histories), masks, n)

    def _top_without_sort(
        self, histories: Sequence[np.ndarray], n: int, masks: list[np.ndarray]
    ) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """:meth:`top_items` found without full score rows, or ``None`` (then rows are sorted)."""
        return None

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``model.json``, the id maps, the histories and the model state into ``path``."""
        user_map: IdMap = self._require(self.user_map)
        item_map: IdMap = self._require(self.item_map)
        histories: list[np.ndarray] = self._require(self.histories)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        flat = np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)
        np.savez(path / "histories.npz", lengths=lengths, items=flat.astype(np.int64))
        (path / "ids.json").write_text(
            json.dumps({"users": user_map.to_list(), "items": item_map.to_list()})
        )
        self._save_state(path)
        meta = {"model": self.name, "config": self.config_dict()}
        tmp = path / "model.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(path / "model.json")  # written last: its presence marks a complete save

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a model written by :meth:`save`."""
        path = Path(path)
        meta_file = path / "model.json"
        if not meta_file.exists():
            raise ModelFileError(f"{path} holds no saved model (model.json is missing)")
        meta = json.loads(meta_file.read_text())
        if meta.get("model") != cls.name:
            raise ModelFileError(f"{path} holds a {meta.get('model')!r} model, not {cls.name!r}")
        model = cls.from_config_dict(meta.get("config", {}))
        ids = json.loads((path / "ids.json").read_text())
        model.user_map = IdMap(ids["users"], "user")
        model.item_map = IdMap(ids["items"], "item")
        h = np.load(path / "histories.npz")
        bounds = np.concatenate([[0], np.cumsum(h["lengths"])])
        model.histories = [h["items"][bounds[j] : bounds[j + 1]] for j in range(len(h["lengths"]))]
        model._load_state(path)
        return model

    # -- per-model hooks -------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The hyperparameters, JSON-serialisable, enough to rebuild an unfitted model."""
        config = getattr(self, "config", None)
        if config is None:
            return {}
        return dict(config.model_dump(mode="json"))

    @classmethod
    def from_config_dict(cls, config: dict[str, Any]) -> Self:
        """An unfitted model from :meth:`config_dict`'s output."""
        return cls(config)  # type: ignore[call-arg]

    @abstractmethod
    def _save_state(self, path: Path) -> None: ...

    @abstractmethod
    def _load_state(self, path: Path) -> None: ...


def check_masks(
    histories: Sequence[np.ndarray], masked: Sequence[np.ndarray] | None
) -> list[np.ndarray]:
    """``masked`` as int64 arrays, one per history (empty ones when ``None``)."""
    if masked is None:
        return [np.zeros(0, dtype=np.int64) for _ in histories]
    if len(masked) != len(histories):
        raise ValueError(f"{len(masked)} masks for {len(histories)} histories")
    return [np.asarray(m, dtype=np.int64).reshape(-1) for m in masked]
