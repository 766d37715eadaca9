"""Train/validation/test splits of an interactions frame, and their encoded form.

Every split function takes an interactions frame (columns as in :mod:`lmrec.data.schema`) and
returns a :class:`Split` whose parts are row subsets of it: each row lands in exactly one
part, and the parts keep the input's index and row order. Sorting by time is always stable,
so interactions with equal timestamps keep their file order. Splits that draw at random take
a ``seed`` and give the same result for the same seed and input.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from lmrec.data.schema import ITEM, RATING, TIME, USER, Dataset, IdMap, InteractionData
from lmrec.errors import ConfigError, DataError

if TYPE_CHECKING:
    from lmrec.evaluation.task import EvalTask

_TRAIN, _VALID, _TEST = 0, 1, 2
WarmSplit = Literal["leave_one_out", "temporal"]


@dataclass(frozen=True, eq=False)  # frames do not compare with ==
class Split:
    """The three parts of a split.

    Args:
        train: Interactions to fit on.
        valid: Interactions to tune and early-stop on.
        test: Interactions to report on.
        name: The method that made it (``"leave_one_out"``).
        cold_items: Items that appear in no training interaction by construction.
        cold_users: Users that have no training interaction by construction.
    """

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    name: str
    cold_items: frozenset[str] = frozenset()
    cold_users: frozenset[str] = frozenset()

    def sizes(self) -> dict[str, int]:
        """Rows per part."""
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def leave_one_out_split(interactions: pd.DataFrame) -> Split:
    """Per user, the last interaction by time is test and the one before it validation.

    Users with three or more interactions contribute one test and one validation row; users
    with two keep the earlier in train and the later in test (no validation row); users with
    one keep it in train, so they are known at test time but never evaluated.
    """
    frame = _checked(interactions)
    return _split_by_labels(frame, _leave_one_out_labels(frame), "leave_one_out")


def temporal_split(
    interactions: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1
) -> Split:
    """Split at two global points in time: the latest ``test_frac`` of interactions are test,
    the ``valid_frac`` before them validation.

    The cut points are the timestamps at those ranks; every interaction at a cut point's
    timestamp goes to the later part, so with ties the test (or validation) part may be a
    little larger than asked, never split within one timestamp. The validation share is
    counted back from where the test part really starts.
    """
    frame = _checked(interactions)
    _check_fractions(valid_frac=valid_frac, test_frac=test_frac)
    return _split_by_labels(frame, _temporal_labels(frame, valid_frac, test_frac), "temporal")


def random_split(
    interactions: pd.DataFrame, valid_frac: float = 0.1, test_frac: float = 0.1, seed: int = 0
) -> Split:
    """Assign interactions to parts uniformly at random, ignoring time (leaks the future)."""
    frame = _checked(interactions)
    _check_fractions(valid_frac=valid_frac, test_frac=test_frac)
    n = len(frame)
    n_test, n_valid = _share(n, test_frac), _share(n, valid_frac)
    order = np.random.default_rng(seed).permutation(n)
    labels = np.full(n, _TRAIN, dtype=np.int8)
    labels[order[:n_test]] = _TEST
    labels[order[n_test : n_test + n_valid]] = _VALID
    return _split_by_labels(frame, labels, "random")


def cold_item_split(
    interactions: pd.DataFrame,
    cold_frac: float = 0.15,
    seed: int = 0,
    warm_split: WarmSplit = "leave_one_out",
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
) -> Split:
    """Hold out a random share of items entirely: all their interactions go to test.

    The other ("warm") interactions are split by ``warm_split``: ``"leave_one_out"`` per user
    (``valid_frac``/``test_frac`` unused) or ``"temporal"`` with those fractions, and their
    test part joins the cold items' interactions in test. Cold items therefore never appear
    in train or validation; :attr:`Split.cold_items` lists them so metrics can be sliced.

    Args:
        interactions: The interactions frame.
        cold_frac: Share of the items with interactions to hold out (rounded to a count).
        seed: Seeds the choice of items.
        warm_split: How to split the remaining interactions.
        valid_frac: Validation share for a temporal warm split.
        test_frac: Test share for a temporal warm split.
    """
    frame = _checked(interactions)
    _check_fractions(cold_frac=cold_frac)
    if warm_split not in ("leave_one_out", "temporal"):
        raise ConfigError(f"warm_split must be 'leave_one_out' or 'temporal', got {warm_split!r}")
    items = np.sort(frame[ITEM].unique().astype(str))
    rng = np.random.default_rng(seed)
    cold = frozenset(str(i) for i in rng.permutation(items)[: _share(len(items), cold_frac)])
    is_cold = frame[ITEM].isin(pd.Index(list(cold))).to_numpy()
    warm = frame[~is_cold]
    labels = np.full(len(frame), _TEST, dtype=np.int8)
    if warm_split == "leave_one_out":
        labels[~is_cold] = _leave_one_out_labels(warm)
    else:
        _check_fractions(valid_frac=valid_frac, test_frac=test_frac)
        labels[~is_cold] = _temporal_labels(warm, valid_frac, test_frac)
    return _split_by_labels(frame, labels, "cold_item", cold_items=cold)


def cold_user_split(
    interactions: pd.DataFrame, cold_frac: float = 0.15, seed: int = 0, valid_frac: float = 0.1
) -> Split:
    """Hold out whole users: a ``cold_frac`` share of users goes to test with all their
    interactions, a separate ``valid_frac`` share to validation, the rest to train.

    The user sets of the three parts are disjoint; :attr:`Split.cold_users` holds the test and
    validation users (none of them has a training interaction).
    """
    frame = _checked(interactions)
    _check_fractions(valid_frac=valid_frac, cold_frac=cold_frac)
    users = np.sort(frame[USER].unique().astype(str))
    order = np.random.default_rng(seed).permutation(users)
    n_test, n_valid = _share(len(users), cold_frac), _share(len(users), valid_frac)
    test_users = order[:n_test]
    valid_users = order[n_test : n_test + n_valid]
    labels = np.full(len(frame), _TRAIN, dtype=np.int8)
    labels[frame[USER].isin(pd.Index(test_users)).to_numpy()] = _TEST
    labels[frame[USER].isin(pd.Index(valid_users)).to_numpy()] = _VALID
    cold = frozenset(str(u) for u in (*test_users, *valid_users))
    return _split_by_labels(frame, labels, "cold_user", cold_users=cold)


def implicit_feedback(interactions: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Turn ratings into implicit feedback: keep the interactions rated ``>= threshold``.

    Args:
        interactions: The interactions frame.
        threshold: Minimum rating to keep; ``None`` keeps every interaction.

    Raises:
        DataError: A threshold is given but the interactions have no rating column.
    """
    if threshold is None:
        return interactions.copy()
    if RATING not in interactions.columns:
        raise DataError(
            f"a rating threshold ({threshold}) needs ratings, but the interactions have no "
            f"{RATING!r} column",
            column=RATING,
        )
    return interactions[interactions[RATING].to_numpy() >= threshold].copy()


#: Split methods by the name :func:`split_dataset` and configs use.
SPLIT_METHODS: dict[str, Callable[..., Split]] = {
    "leave_one_out": leave_one_out_split,
    "temporal": temporal_split,
    "random": random_split,
    "cold_item": cold_item_split,
    "cold_user": cold_user_split,
}


def split_dataset(dataset: Dataset, method: str, **params: object) -> Split:
    """Split ``dataset.interactions`` with the named method (see :data:`SPLIT_METHODS`).

    Raises:
        ConfigError: Unknown method, a parameter the method does not take, or a bad value.
    """
    key = method.strip().lower().replace("-", "_")
    function = SPLIT_METHODS.get(key)
    if function is None:
        raise ConfigError(
            f"unknown split method {method!r} (choose from {', '.join(SPLIT_METHODS)})"
        )
    accepted = list(inspect.signature(function).parameters)[1:]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"split method {key!r} takes no parameter {unknown[0]!r} "
            f"(it takes {', '.join(accepted) or 'none'})"
        )
    return function(dataset.interactions, **params)


@dataclass
class EncodedSplit:
    """A split encoded with the whole dataset's id maps, ready for models and evaluation.

    Args:
        name: The split method.
        train: Training interactions.
        valid: Validation interactions.
        test: Test interactions.
        cold_items: See :class:`Split`.
        cold_users: See :class:`Split`.
    """

    name: str
    train: InteractionData
    valid: InteractionData
    test: InteractionData
    cold_items: frozenset[str] = frozenset()
    cold_users: frozenset[str] = frozenset()
    _known_for_test: InteractionData | None = field(default=None, repr=False)

    @property
    def user_map(self) -> IdMap:
        return self.train.user_map

    @property
    def item_map(self) -> IdMap:
        return self.train.item_map

    def train_and_valid(self) -> InteractionData:
        """Train and validation together: what is known when testing (and when refitting)."""
        if self._known_for_test is None:
            self._known_for_test = merge_interactions(self.train, self.valid)[0]
        return self._known_for_test

    def valid_task(self) -> EvalTask:
        """Validation users; histories from train, targets from valid."""
        from lmrec.evaluation.task import EvalTask  # data must not import evaluation eagerly

        return EvalTask.from_interactions(self.train, self.valid)

    def test_task(self) -> EvalTask:
        """Test users; histories from train and valid, targets from test."""
        from lmrec.evaluation.task import EvalTask

        return EvalTask.from_interactions(self.train_and_valid(), self.test)


def encode_split(split: Split, dataset: Dataset) -> EncodedSplit:
    """Encode every part of ``split`` with ``dataset``'s user and item maps.

    Raises:
        UnknownIdError: A part names a user or item the dataset does not know.
    """
    users, items = dataset.user_map(), dataset.item_map()
    return EncodedSplit(
        name=split.name,
        train=InteractionData.from_frame(split.train, users, items),
        valid=InteractionData.from_frame(split.valid, users, items),
        test=InteractionData.from_frame(split.test, users, items),
        cold_items=split.cold_items,
        cold_users=split.cold_users,
    )


def _checked(interactions: pd.DataFrame) -> pd.DataFrame:
    for column in (USER, ITEM, TIME):
        if column not in interactions.columns:
            raise DataError(f"interactions lack the required column {column!r}", column=column)
    return interactions


def _check_fractions(**fractions: float) -> None:
    for name, value in fractions.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    total = sum(fractions.values())
    if len(fractions) > 1 and total >= 1.0:
        names = " + ".join(fractions)
        raise ConfigError(f"{names} must leave something to train on, got {total:g}")


def _share(n: int, fraction: float) -> int:
    return min(n, int(n * fraction + 0.5))


def _leave_one_out_labels(frame: pd.DataFrame) -> np.ndarray:
    n = len(frame)
    labels = np.full(n, _TRAIN, dtype=np.int8)
    if n == 0:
        return labels
    codes = pd.factorize(frame[USER])[0]
    order = np.lexsort((frame[TIME].to_numpy(dtype=np.int64), codes))  # stable
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, n])
    size = np.repeat(sizes, sizes)
    from_end = np.repeat(starts + sizes - 1, sizes) - np.arange(n)
    by_rank = np.full(n, _TRAIN, dtype=np.int8)
    by_rank[(from_end == 0) & (size >= 2)] = _TEST
    by_rank[(from_end == 1) & (size >= 3)] = _VALID
    labels[order] = by_rank
    return labels


def _temporal_labels(frame: pd.DataFrame, valid_frac: float, test_frac: float) -> np.ndarray:
    times = frame[TIME].to_numpy(dtype=np.int64)
    n = len(times)
    labels = np.full(n, _TRAIN, dtype=np.int8)
    n_test, n_valid = _share(n, test_frac), _share(n, valid_frac)
    ordered = np.sort(times)
    if n_test > 0:
        labels[times >= ordered[n - n_test]] = _TEST
    # The validation share is counted back from where test really starts (after ties).
    n_train = n - int((labels == _TEST).sum()) - n_valid
    if n_valid > 0 and n_train >= 0:
        labels[(times >= ordered[n_train]) & (labels != _TEST)] = _VALID
    return labels


def _split_by_labels(
    frame: pd.DataFrame,
    labels: np.ndarray,
    name: str,
    *,
    cold_items: frozenset[str] = frozenset(),
    cold_users: frozenset[str] = frozenset(),
) -> Split:
    return Split(
        train=frame[labels == _TRAIN].copy(),
        valid=frame[labels == _VALID].copy(),
        test=frame[labels == _TEST].copy(),
        name=name,
        cold_items=cold_items,
        cold_users=cold_users,
    )


def merge_interactions(
    first: InteractionData, second: InteractionData
) -> tuple[InteractionData, np.ndarray]:
    """Both interaction sets in one, sorted by (user, time), and a mask of the rows that came
    from ``second`` (on equal user and time, the rows of ``first`` stay ahead).

    Raises:
        DataError: The two sets do not share id maps.
    """
    if len(first.item_map) != len(second.item_map) or len(first.user_map) != len(second.user_map):
        raise DataError("the interaction sets do not share id maps")
    users = np.concatenate([first.users, second.users])
    times = np.concatenate([first.timestamps, second.timestamps])
    from_second = np.r_[np.zeros(len(first), dtype=bool), np.ones(len(second), dtype=bool)]
    order = np.lexsort((from_second, times, users))
    ratings = None
    if first.ratings is not None and second.ratings is not None:
        ratings = np.concatenate([first.ratings, second.ratings])[order]
    merged = InteractionData(
        first.user_map,
        first.item_map,
        users[order],
        np.concatenate([first.items, second.items])[order],
        times[order],
        ratings,
    )
    return merged, from_second[order]
