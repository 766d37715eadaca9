"""A readable, weighted summary of a user's interests, from their history.

Each history item carries a recency weight, ``0.5 ** (age / half_life)`` with ``age`` the
number of items since it (the newest has weight 1), and spreads it evenly over its
categories (or keywords, times their IDF); the weights of a term are summed and normalised,
so all the terms of a list sum to 1 before the list is cut to its top entries. Three views
come out of one history:

- ``overall``: the whole history, recency-weighted;
- ``recent``: the last ``recent`` items, equally weighted;
- ``long_term``: the whole history, equally weighted.

The terms whose recent share exceeds their long-term share most are the user's current
turn (``trending``). The CTR model's profile text uses :func:`top_categories` (see
``CTRConfig.profile_categories``)::

    profile = pipeline.profile("1")
    profile.summary()   # "Drama 27%, Comedy 18%, Action 11% · keywords: ... · lately: Sci-Fi"
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmrec.attributes import ItemAttributes
from lmrec.errors import ConfigError

DEFAULT_HALF_LIFE = 20.0
"""Items after which an item's weight is halved."""

DEFAULT_RECENT = 10
"""Items in the ``recent`` view."""


@dataclass
class WeightedTerm:
    """A category or keyword of a profile.

    Args:
        name: The category or keyword.
        weight: Its share of the view (the shares of all terms of a view sum to 1).
        items: History items that have it.
    """

    name: str
    weight: float
    items: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "items": self.items}


@dataclass
class ProfileView:
    """The top categories and keywords of one weighting of a history."""

    categories: list[WeightedTerm] = field(default_factory=list)
    keywords: list[WeightedTerm] = field(default_factory=list)
    n_items: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "categories": [t.to_dict() for t in self.categories],
            "keywords": [t.to_dict() for t in self.keywords],
        }


@dataclass
class UserProfile:
    """A user's interests: recency-weighted, recent and long-term views, and latest items.

    Args:
        user_id: The user, or ``None`` for an ad-hoc history.
        n_items: Interactions in the history.
        overall: The whole history, recency-weighted.
        recent: The most recent items, equally weighted.
        long_term: The whole history, equally weighted.
        trending: Categories (keywords when there are none) whose recent share exceeds
            their long-term share, largest gain first.
        recent_titles: Titles of the latest items, newest first.
        half_life: The recency half-life used, in items.
    """

    user_id: str | None
    n_items: int
    overall: ProfileView
    recent: ProfileView
    long_term: ProfileView
    trending: list[str]
    recent_titles: list[str]
    half_life: float

    def summary(self, top: int = 3) -> str:
        """One line: top categories with shares, keywords, the current turn, latest titles."""
        if self.n_items == 0:
            return "no history yet"
        parts = []
        if self.overall.categories:
            parts.append(
                ", ".join(f"{t.name} {t.weight:.0%}" for t in self.overall.categories[:top])
            )
        if self.overall.keywords:
            parts.append("keywords: " + ", ".join(t.name for t in self.overall.keywords[:top]))
        if self.trending:
            parts.append("lately: " + ", ".join(self.trending[:2]))
        if self.recent_titles:
            parts.append("recently: " + "; ".join(self.recent_titles[:3]))
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "n_items": self.n_items,
            "half_life": self.half_life,
            "summary": self.summary(),
            "overall": self.overall.to_dict(),
            "recent": self.recent.to_dict(),
            "long_term": self.long_term.to_dict(),
            "trending": self.trending,
            "recent_titles": self.recent_titles,
        }


def recency_weights(n: int, half_life: float | None = DEFAULT_HALF_LIFE) -> np.ndarray:
    """Weights of ``n`` time-ordered items, oldest first: ``0.5 ** (age / half_life)``.

    ``half_life=None`` weighs every item 1.

    Raises:
        ConfigError: ``half_life`` is not positive.
    """
    if half_life is None:
        return np.ones(n)
    if half_life <= 0:
        raise ConfigError(f"half_life must be positive, got {half_life}")
    age = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.power(0.5, age / half_life)


def weighted_terms(
    item_terms: Sequence[Sequence[str]],
    weights: Sequence[float] | np.ndarray,
    idf: Mapping[str, float] | None = None,
) -> list[WeightedTerm]:
    """Terms of the items, by summed item weight, normalised to sum to 1, largest first.

    Each item spreads its weight evenly over its terms (times a term's IDF when ``idf`` is
    given); ties are broken by name.
    """
    if len(item_terms) != len(weights):
        raise ValueError(f"got {len(item_terms)} items but {len(weights)} weights")
    total: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for terms, w in zip(item_terms, weights, strict=True):
        unique = list(dict.fromkeys(terms))
        for name in unique:
            total[name] += float(w) / len(unique) * (idf[name] if idf else 1.0)
            count[name] += 1
    mass = sum(total.values())
    if mass <= 0:
        return []
    out = [WeightedTerm(name, v / mass, count[name]) for name, v in total.items()]
    return sorted(out, key=lambda t: (-t.weight, t.name))


def top_categories(
    newest_first: Sequence[Sequence[str]],
    n: int,
    half_life: float | None = DEFAULT_HALF_LIFE,
) -> list[str]:
    """The ``n`` categories with most recency weight, from items' categories newest first."""
    if n <= 0 or len(newest_first) == 0:
        return []
    weights = recency_weights(len(newest_first), half_life)[::-1]
    return [t.name for t in weighted_terms(newest_first, weights)[:n]]


def build_profile(
    history: Sequence[int] | np.ndarray,
    attributes: ItemAttributes,
    *,
    user_id: str | None = None,
    half_life: float = DEFAULT_HALF_LIFE,
    recent: int = DEFAULT_RECENT,
    top: int = 5,
) -> UserProfile:
    """The profile of a time-ordered history of item indices.

    Args:
        history: Item indices, oldest first.
        attributes: The items' titles, categories and keywords.
        user_id: Who it is, for the record.
        half_life: Recency half-life in items.
        recent: Items in the ``recent`` view.
        top: Terms kept per list.

    Raises:
        ConfigError: ``half_life``, ``recent`` or ``top`` is not positive.
    """
    if recent < 1:
        raise ConfigError(f"recent must be at least 1, got {recent}")
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    items = [int(i) for i in history]
    decayed = recency_weights(len(items), half_life)

    def view(rows: list[int], weights: np.ndarray) -> ProfileView:
        cats = weighted_terms([attributes.categories[i] for i in rows], weights)
        keys = weighted_terms([attributes.keywords[i] for i in rows], weights, attributes.idf)
        return ProfileView(cats[:top], keys[:top], len(rows))

    overall = view(items, decayed)
    latest = items[-recent:]
    recent_view = view(latest, np.ones(len(latest)))
    long_term = view(items, np.ones(len(items)))
    trending = _trending(
        [attributes.categories[i] for i in latest],
        [attributes.categories[i] for i in items],
    ) or _trending(
        [attributes.keywords[i] for i in latest],
        [attributes.keywords[i] for i in items],
        attributes.idf,
    )
    titles = [attributes.titles[i] for i in dict.fromkeys(reversed(items))][:recent]
    return UserProfile(
        user_id, len(items), overall, recent_view, long_term, trending, titles, half_life
    )


def _trending(
    latest: Sequence[Sequence[str]],
    everything: Sequence[Sequence[str]],
    idf: Mapping[str, float] | None = None,
    min_gain: float = 0.05,
) -> list[str]:
    # Only when the recent window is a strict part of the history can it differ from it.
    if len(latest) >= len(everything):
        return []
    now = {t.name: t.weight for t in weighted_terms(latest, np.ones(len(latest)), idf)}
    before = {t.name: t.weight for t in weighted_terms(everything, np.ones(len(everything)), idf)}
    gains = {n: w - before.get(n, 0.0) for n, w in now.items() if now[n] > 0}
    return [n for n in sorted(gains, key=lambda n: (-gains[n], n)) if gains[n] >= min_gain][:3]
