"""Full-ranking evaluation of a recommender on an :class:`EvalTask`, batch by batch.

Each batch of users is scored over the whole catalog; the targets' pessimistic ranks and the
top-``list_k`` list are taken from the scores, which are then dropped, so memory stays
``O(batch_size x n_items)`` however many users there are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from tqdm import tqdm

from lmrec.evaluation.metrics import (
    catalog_coverage,
    gini_index,
    hit_rate_at_k,
    intra_list_diversity,
    long_tail_share,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    recall_at_k,
    target_ranks,
)
from lmrec.evaluation.task import EvalTask

SliceFn = Callable[[int, np.ndarray], str]
"""Maps ``(user index, known history)`` to the label of the user's bucket."""

HISTORY_LENGTH_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1-4", 1, 4),
    ("5-9", 5, 9),
    ("10-19", 10, 19),
    ("20-49", 20, 49),
    ("50+", 50, None),
)
_BUCKET_ORDER = {label: i for i, (label, _, _) in enumerate(HISTORY_LENGTH_BUCKETS)}

_RANK_METRICS: tuple[tuple[str, Callable[[Sequence[np.ndarray], int], np.ndarray]], ...] = (
    ("ndcg", ndcg_at_k),
    ("recall", recall_at_k),
    ("mrr", mrr_at_k),
    ("hit", hit_rate_at_k),
)


class Scorer(Protocol):
    """What the evaluator needs of a model (every ``Recommender`` has it)."""

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every catalog item, shape ``(len(users), n_items)``."""
        ...


def history_length_bucket(user: int, history: np.ndarray) -> str:
    """The default slice: the length of the known history, in coarse buckets.

    Args:
        user: The user index (unused).
        history: The user's known items.

    Returns:
        One of ``"0"``, ``"1-4"``, ``"5-9"``, ``"10-19"``, ``"20-49"``, ``"50+"``.
    """
    n = len(history)
    for label, low, high in HISTORY_LENGTH_BUCKETS:
        if n >= low and (high is None or n <= high):
            return label
    raise AssertionError("the buckets cover every length")  # pragma: no cover


@dataclass
class EvalResult:
    """What :meth:`Evaluator.evaluate` found.

    Attributes:
        metrics: Means over users (``"ndcg@10"``, ``"recall@10"``, ``"mrr@10"``, ``"hit@10"``
            for each ``k``), the beyond-accuracy metrics of the top-``list_k`` lists
            (``"coverage@10"``, ``"gini@10"``, and ``"ild@10"``, ``"novelty@10"``,
            ``"long_tail@10"`` when their inputs were given) and ``"n_users"``.
        slices: Slice name -> bucket label -> ``{"n_users": ..., "ndcg@10": ..., ...}``.
        per_user: Accuracy metric name -> one value per task user, in task order.
        standard_errors: Accuracy metric name -> standard error of its mean over users
            (sample standard deviation / sqrt(users); 0 for one user): how far the metric
            would move with another draw of users of the same kind. Two models evaluated on
            the same users differ significantly only by more than about twice this.
    """

    metrics: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    standard_errors: dict[str, float] = field(default_factory=dict)

    def with_prefix(self, prefix: str) -> dict[str, float]:
        """The metrics as a flat dict with prefixed keys, e.g. ``{"valid_ndcg@10": 0.41}``.

        Args:
            prefix: Put before every key, joined with ``"_"`` (nothing added when empty).
        """
        if not prefix:
            return dict(self.metrics)
        sep = "" if prefix.endswith("_") else "_"
        return {f"{prefix}{sep}{name}": value for name, value in self.metrics.items()}


class Evaluator:
    """Full-ranking evaluation with pessimistic ties, the user's history excluded.

    Args:
        ks: Cut-offs for the accuracy metrics.
        batch_size: Users scored at once; memory grows with ``batch_size x n_items``.
        item_vectors: Item vectors ``(n_items, dim)`` for intra-list diversity (skipped
            when ``None``).
        item_popularity: Users per item ``(n_items,)``, usually counted on the training
            data, for novelty and long-tail share (skipped when ``None``).
        list_k: Length of the top lists the beyond-accuracy metrics look at.
        slices: Extra slices, name -> function ``(user index, history) -> bucket label``.
            The ``"history_length"`` slice is always computed unless a slice of that name
            replaces it.
        show_progress: Show a tqdm bar over the batches.
        popularity_users: The number of users ``item_popularity`` was counted over, the
            denominator of novelty; defaults to the number of users in the task.

    Raises:
        ValueError: When a setting is out of range; the message names it.
    """

    def __init__(
        self,
        ks: Sequence[int] = (5, 10, 20, 50),
        batch_size: int = 256,
        item_vectors: np.ndarray | None = None,
        item_popularity: np.ndarray | None = None,
        list_k: int = 10,
        slices: Mapping[str, SliceFn] | None = None,
        show_progress: bool = False,
        *,
        popularity_users: int | None = None,
    ) -> None:
        if not ks or any(int(k) != k or k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {tuple(ks)!r}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if int(list_k) != list_k or list_k < 1:
            raise ValueError(f"list_k must be a positive integer, got {list_k!r}")
        if item_vectors is not None and np.ndim(item_vectors) != 2:
            raise ValueError(
                f"item_vectors must be 2-D (n_items, dim), got shape {np.shape(item_vectors)}"
            )
        if item_popularity is not None and np.ndim(item_popularity) != 1:
            raise ValueError(
                f"item_popularity must be 1-D (n_items,), got shape {np.shape(item_popularity)}"
            )
        if popularity_users is not None and popularity_users < 1:
            raise ValueError(f"popularity_users must be positive, got {popularity_users!r}")
        self.ks = tuple(sorted({int(k) for k in ks}))
        self.batch_size = int(batch_size)
        self.item_vectors = item_vectors
        self.item_popularity = item_popularity
        self.list_k = int(list_k)
        self.slices: dict[str, SliceFn] = {"history_length": history_length_bucket}
        self.slices.update(slices or {})
        self.show_progress = show_progress
        self.popularity_users = popularity_users

    def evaluate(self, model: Scorer, task: EvalTask) -> EvalResult:
        """Score every task user in batches and compute all metrics.

        Args:
            model: Anything with ``score(users, histories)``.
            task: Users, their known histories (excluded from ranking) and targets.

        Returns:
            The metrics, slices and per-user values.

        Raises:
            ValueError: When the task is empty, the model's scores have the wrong shape, or
                item vectors / popularity do not match the catalog.
        """
        n_users, n_items = len(task), int(task.n_items)
        if n_users == 0:
            raise ValueError("the evaluation task has no users")
        self._check_item_inputs(n_items)
        list_k = min(self.list_k, n_items)
        name = _model_name(model)

        ranks: list[np.ndarray] = []
        tops: list[np.ndarray] = []
        starts = range(0, n_users, self.batch_size)
        for start in tqdm(
            starts, desc=f"eval {name}", unit="batch", disable=not self.show_progress
        ):
            stop = min(start + self.batch_size, n_users)
            histories = task.histories[start:stop]
            scores = np.asarray(model.score(task.users[start:stop], histories))
            if scores.shape != (stop - start, n_items):
                raise ValueError(
                    f"model {name!r} returned scores of shape {scores.shape}, expected "
                    f"({stop - start}, {n_items}) for {stop - start} users x {n_items} items"
                )
            # Ranks first, from the raw scores: a target that is also in the history keeps
            # its own score (see metrics.target_ranks); the lists never show history items.
            ranks.extend(target_ranks(scores, task.targets[start:stop], histories))
            tops.append(_top_k(_mask_history(scores, histories), list_k))
            del scores

        per_user = {f"{metric}@{k}": fn(ranks, k) for k in self.ks for metric, fn in _RANK_METRICS}
        result: dict[str, float] = {key: float(v.mean()) for key, v in per_user.items()}
        result.update(self._list_metrics(np.concatenate(tops), n_items, n_users))
        result["n_users"] = float(n_users)
        return EvalResult(
            metrics=result,
            slices=self._slice_metrics(task, per_user),
            per_user=per_user,
            standard_errors={key: standard_error(v) for key, v in per_user.items()},
        )

    def _check_item_inputs(self, n_items: int) -> None:
        if self.item_vectors is not None and len(self.item_vectors) != n_items:
            raise ValueError(
                f"item_vectors has {len(self.item_vectors)} rows but the task has {n_items} items"
            )
        if self.item_popularity is not None and len(self.item_popularity) != n_items:
            raise ValueError(
                f"item_popularity has {len(self.item_popularity)} entries but the task has "
                f"{n_items} items"
            )

    def _list_metrics(self, topk: np.ndarray, n_items: int, n_users: int) -> dict[str, float]:
        at = f"@{self.list_k}"
        out = {
            f"coverage{at}": catalog_coverage(topk, n_items),
            f"gini{at}": gini_index(topk, n_items),
        }
        if self.item_vectors is not None:
            out[f"ild{at}"] = intra_list_diversity(topk, self.item_vectors)
        if self.item_popularity is not None:
            pop_users = self.popularity_users or n_users
            out[f"novelty{at}"] = novelty(topk, self.item_popularity, pop_users)
            out[f"long_tail{at}"] = long_tail_share(topk, self.item_popularity)
        return out

    def _slice_metrics(
        self, task: EvalTask, per_user: dict[str, np.ndarray]
    ) -> dict[str, dict[str, dict[str, float]]]:
        out: dict[str, dict[str, dict[str, float]]] = {}
        for slice_name, fn in self.slices.items():
            labels = np.array(
                [str(fn(int(u), h)) for u, h in zip(task.users, task.histories, strict=True)],
                dtype=object,
            )
            buckets: dict[str, dict[str, float]] = {}
            for label in sorted(
                set(labels), key=lambda b: (_BUCKET_ORDER.get(b, len(_BUCKET_ORDER)), b)
            ):
                members = labels == label
                buckets[label] = {"n_users": float(members.sum())}
                buckets[label].update(
                    {key: float(values[members].mean()) for key, values in per_user.items()}
                )
            out[slice_name] = buckets
        return out


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (sample std / sqrt(n); 0 below two values)."""
    n = len(values)
    if n < 2:
        return 0.0
    return float(np.std(values, ddof=1) / np.sqrt(n))


def _model_name(model: object) -> str:
    name = getattr(model, "name", None)
    return str(name) if name else type(model).__name__


def _mask_history(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    """A float copy of ``scores`` with NaN and every history item set to ``-inf``."""
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    masked = np.array(scores, dtype=dtype, copy=True)
    masked[np.isnan(masked)] = -np.inf
    lens = [len(h) for h in histories]
    if sum(lens):
        rows = np.repeat(np.arange(len(histories)), lens)
        masked[rows, np.concatenate([np.asarray(h, dtype=np.int64) for h in histories])] = -np.inf
    return masked


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k`` best items by score, ties to the lower index; ``-inf`` slots -> -1.

    The tie rule makes the lists independent of how users are batched.
    """
    n_rows, n_items = scores.shape
    if k < n_items:
        idx = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, idx, axis=1).min(axis=1)
        # argpartition picks arbitrarily among items tied with the k-th score; redo only
        # the rows where such a tie crosses the cut-off.
        crowded = np.flatnonzero((scores >= kth[:, None]).sum(axis=1) > k)
        if len(crowded):
            sub, sub_kth = scores[crowded], kth[crowded, None]
            at = sub == sub_kth
            need = k - (sub > sub_kth).sum(axis=1)
            chosen = (sub > sub_kth) | (at & (np.cumsum(at, axis=1) <= need[:, None]))
            idx[crowded] = np.nonzero(chosen)[1].reshape(len(crowded), k)
    else:
        idx = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    vals = np.take_along_axis(scores, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=1)  # by score, then by item index
    top = np.take_along_axis(idx, order, axis=1).astype(np.int64)
    top[np.take_along_axis(vals, order, axis=1) == -np.inf] = -1
    return top
