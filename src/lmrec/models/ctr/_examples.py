"""CTR examples: (user, profile items, item, label) rows built from interactions.

Labels follow the data. With explicit ratings every rated interaction is an example, a
positive (a like) iff its rating reaches ``positive_threshold``. Without ratings every
interaction is a positive, and ``negatives_per_positive`` items the user never interacted
with, drawn uniformly, are negatives with the same profile.

An example's profile holds only items with a timestamp *strictly before* its interaction
(newest first) and never the example's own item, so no label leaks into the input.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lmrec.data.schema import InteractionData
from lmrec.data.splitting import EncodedSplit, merge_interactions
from lmrec.errors import ConfigError
from lmrec.models.ctr._config import (
    DEFAULT_NEGATIVES,
    DEFAULT_POSITIVE_THRESHOLD,
    DEFAULT_PROFILE_ITEMS,
)

NO_ITEM = -1
"""Padding of :attr:`CTRExamples.profiles` rows."""


@dataclass
class CTRExamples:
    """Aligned arrays, one entry per example.

    Args:
        users: User indices, int64 ``(n,)``.
        items: Item indices, int64 ``(n,)``.
        labels: 1.0 for a positive (click / like), 0.0 for a negative; float32 ``(n,)``.
        ratings: The explicit rating, NaN for sampled negatives and implicit data; float64
            ``(n,)``.
        profiles: Per example the profile's item indices, newest first, padded with
            :data:`NO_ITEM`; int64 ``(n, profile_items)``.
    """

    users: np.ndarray
    items: np.ndarray
    labels: np.ndarray
    ratings: np.ndarray
    profiles: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "labels", "ratings", "profiles"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CTRExamples.{name} has {len(getattr(self, name))} rows, not {n}")
        if self.profiles.ndim != 2:
            raise ValueError(f"CTRExamples.profiles must be 2-D, got shape {self.profiles.shape}")

    def __len__(self) -> int:
        return len(self.users)

    @property
    def has_ratings(self) -> bool:
        """Whether any example carries an explicit rating."""
        return bool(np.isfinite(self.ratings).any())

    def subset(self, rows: np.ndarray) -> CTRExamples:
        """The examples at ``rows`` (indices or a boolean mask), in that order."""
        return CTRExamples(
            self.users[rows],
            self.items[rows],
            self.labels[rows],
            self.ratings[rows],
            self.profiles[rows],
        )

    def sample(self, n: int | None, seed: int = 0) -> CTRExamples:
        """At most ``n`` examples drawn uniformly without replacement, kept in their order.

        Args:
            n: How many to keep; ``None`` (or at least ``len(self)``) keeps all.
            seed: Seeds the draw.
        """
        if n is None or n >= len(self):
            return self
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.subset(rows)

    def profile_of(self, row: int) -> np.ndarray:
        """The profile item indices of example ``row``, newest first, without padding."""
        profile = self.profiles[row]
        return profile[profile != NO_ITEM]


def recent_items(history: np.ndarray, item: int, k: int) -> np.ndarray:
    """The ``k`` most recent entries of ``history`` other than ``item``, newest first.

    Args:
        history: Time-ordered item indices, all from before the interaction.
        item: The item the profile is for; never part of its own profile.
        k: How many to keep.
    """
    if k <= 0 or len(history) == 0:
        return np.zeros(0, dtype=np.int64)
    window = np.asarray(history[-k:], dtype=np.int64)[::-1]
    if item not in window:
        return window
    newest_first = np.asarray(history, dtype=np.int64)[::-1]
    return newest_first[newest_first != item][:k]


def interaction_examples(
    data: InteractionData,
    *,
    rows: np.ndarray | None = None,
    users: Collection[int] | None = None,
    profile_items: int = DEFAULT_PROFILE_ITEMS,
    positive_threshold: float = DEFAULT_POSITIVE_THRESHOLD,
    negatives_per_positive: int = DEFAULT_NEGATIVES,
    exclude: Sequence[np.ndarray] | None = None,
    seed: int = 0,
) -> CTRExamples:
    """Examples from the interactions of ``data`` (see the module docstring for labels).

    Every interaction of ``data`` is history for the later interactions of its user; only
    the selected ones become examples.

    Args:
        data: Interactions, sorted by user and time (as :class:`InteractionData` keeps them).
        rows: Boolean mask or indices of the interactions that become examples; ``None``
            takes all.
        users: Keep only examples of these user indices; ``None`` keeps every user.
        profile_items: Most recent history items in each profile.
        positive_threshold: Explicit ratings: the least rating of a positive.
        negatives_per_positive: Implicit data: sampled negatives per interaction.
        exclude: Implicit data: per user index, items never drawn as negatives (defaults to
            the user's items in ``data``); pass everything the user is known to have done,
            so that no held-out interaction is drawn as a negative.
        seed: Seeds the negative sampling.

    Raises:
        ConfigError: ``profile_items`` or ``negatives_per_positive`` is out of range.
    """
    if profile_items < 0:
        raise ConfigError(f"profile_items must be at least 0, got {profile_items}")
    if negatives_per_positive < 1:
        raise ConfigError(
            f"negatives_per_positive must be at least 1, got {negatives_per_positive}"
        )
    n = len(data)
    selected = np.ones(n, dtype=bool)
    if rows is not None:
        selected = np.zeros(n, dtype=bool)
        selected[np.asarray(rows)] = True
    if users is not None:
        selected &= np.isin(data.users, np.fromiter(users, dtype=np.int64))
    chosen = np.flatnonzero(selected)
    starts = np.searchsorted(data.users, data.users, side="left")
    ends = np.searchsorted(data.users, data.users, side="right")
    profiles = np.full((len(chosen), profile_items), NO_ITEM, dtype=np.int64)
    for j, r in enumerate(chosen):
        # Strictly earlier timestamps: the file order of simultaneous events means nothing.
        s = starts[r]
        before = s + int(np.searchsorted(data.timestamps[s : ends[r]], data.timestamps[r]))
        recent = recent_items(data.items[s:before], int(data.items[r]), profile_items)
        profiles[j, : len(recent)] = recent
    ex_users = data.users[chosen].astype(np.int64)
    ex_items = data.items[chosen].astype(np.int64)
    if data.ratings is not None:
        ratings = data.ratings[chosen].astype(np.float64)
        labels = (ratings >= positive_threshold).astype(np.float32)
        return CTRExamples(ex_users, ex_items, labels, ratings, profiles)
    return _with_negatives(
        data, ex_users, ex_items, profiles, negatives_per_positive, exclude, seed
    )


def _with_negatives(
    data: InteractionData,
    users: np.ndarray,
    items: np.ndarray,
    profiles: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray] | None,
    seed: int,
) -> CTRExamples:
    rng = np.random.default_rng(seed)
    known = exclude if exclude is not None else data.sequences()
    seen_sets: dict[int, set[int]] = {}
    out_users, out_items, out_labels, out_rows = [], [], [], []
    for j, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True)):
        out_users.append(u)
        out_items.append(i)
        out_labels.append(1.0)
        out_rows.append(j)
        seen = seen_sets.get(u)
        if seen is None:
            seen = seen_sets[u] = {int(x) for x in known[u]} | {i}
        if len(seen) >= data.n_items:
            continue  # the user has interacted with every item: no negative exists
        for _ in range(k):
            negative = int(rng.integers(data.n_items))
            while negative in seen:
                negative = int(rng.integers(data.n_items))
            out_users.append(u)
            out_items.append(negative)
            out_labels.append(0.0)
            out_rows.append(j)
    rows = np.asarray(out_rows, dtype=np.int64)
    return CTRExamples(
        np.asarray(out_users, dtype=np.int64),
        np.asarray(out_items, dtype=np.int64),
        np.asarray(out_labels, dtype=np.float32),
        np.full(len(rows), np.nan),
        profiles[rows] if len(rows) else profiles[:0],
    )


def split_examples(
    split: EncodedSplit,
    part: Literal["valid", "test"],
    *,
    users: Collection[int] | None = None,
    profile_items: int = DEFAULT_PROFILE_ITEMS,
    positive_threshold: float = DEFAULT_POSITIVE_THRESHOLD,
    negatives_per_positive: int = DEFAULT_NEGATIVES,
    seed: int = 0,
) -> CTRExamples:
    """Held-out examples: the ``valid`` or ``test`` interactions of each user of a split.

    Profiles read everything known before each interaction: train (and, for ``test``, the
    validation part) plus the part's own earlier interactions. Implicit negatives avoid every
    item the user has in any part of the split.

    Args:
        split: The encoded split.
        part: ``"valid"`` or ``"test"``.
        users: Keep only these user indices; ``None`` keeps all.
        profile_items: Most recent history items in each profile.
        positive_threshold: Explicit ratings: the least rating of a positive.
        negatives_per_positive: Implicit data: sampled negatives per interaction.
        seed: Seeds the negative sampling.

    Raises:
        ConfigError: ``part`` is neither ``valid`` nor ``test``.
    """
    if part == "valid":
        known, targets = split.train, split.valid
    elif part == "test":
        known, targets = split.train_and_valid(), split.test
    else:
        raise ConfigError(f"part must be 'valid' or 'test', got {part!r}")
    merged, is_target = merge_interactions(known, targets)
    everything, _ = merge_interactions(split.train_and_valid(), split.test)
    return interaction_examples(
        merged,
        rows=is_target,
        users=users,
        profile_items=profile_items,
        positive_threshold=positive_threshold,
        negatives_per_positive=negatives_per_positive,
        exclude=everything.sequences(),
        seed=seed,
    )
