"""Why an item was recommended: the history items that raised its score, and what they share.

The contribution of a history item to a recommended item is measured, not guessed: it is
the drop of the item's score when that history item is left out of the history
(leave-one-out occlusion). Every distinct history item is left out once (all its
occurrences), and the reduced histories are scored in one batched ``score`` call, so the
weights are faithful for any model that scores from a history (SASRec, the text models,
item-kNN). For item-kNN, whose score is a sum of similarities, the drop is exactly the
similarity and is read from the similarity matrix instead. A model that ignores the history
(popularity, BPR for a known user) gives zero drops and so cites nothing.

Only history items with a positive drop are cited (at most ``max_items``); the attributes
shown are those the recommended item shares with the cited items: categories first, then
distinctive keywords (see :mod:`lmrec.attributes`)::

    explainer = Explainer(model, attributes, verb="watched")
    [e] = explainer.explain(user=-1, history=np.array([10, 55, 171]), items=np.array([80]))
    e.sentence   # "Because you watched Alien (1979) and Blade Runner (1982) — Sci-Fi"
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmrec.attributes import ItemAttributes
from lmrec.errors import ConfigError
from lmrec.models.base import BaseRecommender

ScoreFn = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]
"""Full-catalog scores of a batch of (user, history) rows, as ``Recommender.score``."""

#: The verb of the sentence per dataset family; other datasets read "liked".
_VERBS = {"ml-": "watched", "movielens": "watched", "amazon": "bought"}


def verb_for(dataset: str) -> str:
    """The verb of explanation sentences for a dataset name ("watched" for MovieLens)."""
    name = dataset.lower()
    return next((v for prefix, v in _VERBS.items() if name.startswith(prefix)), "liked")


@dataclass
class Contribution:
    """One history item's part in a recommendation.

    Args:
        item_id: The history item.
        title: Its display title.
        weight: The recommended item's score drop when this item is left out of the
            history, in the model's score units.
        share: ``weight`` over the sum of all positive drops of the history.
        shared: The categories, then the keywords, that it shares with the recommended item.
    """

    item_id: str
    title: str
    weight: float
    share: float
    shared: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "weight": self.weight,
            "share": self.share,
            "shared": self.shared,
        }


@dataclass
class Explanation:
    """Why one item was recommended, as fields and as one sentence.

    Args:
        item_id: The recommended item.
        title: Its display title.
        score: Its score with the full history (the explained model's score).
        because: The cited history items, largest contribution first.
        categories: Categories the item shares with the cited items, most weighted first.
        keywords: Distinctive keywords it shares with them.
        sentence: The reason in words.
        method: ``"occlusion"`` (leave-one-out scoring) or ``"similarity"`` (item-kNN's
            exact contributions).
    """

    item_id: str
    title: str
    score: float
    because: list[Contribution] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    sentence: str = ""
    method: str = "occlusion"

    @property
    def cited(self) -> list[str]:
        """The ids of the cited history items, largest contribution first."""
        return [c.item_id for c in self.because]

    def to_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "title": self.title,
            "score": self.score,
            "because": [c.to_dict() for c in self.because],
            "categories": self.categories,
            "keywords": self.keywords,
            "sentence": self.sentence,
            "method": self.method,
        }


@dataclass
class Occlusion:
    """Leave-one-out contributions of the distinct items of one history.

    Args:
        history_items: The distinct history item indices, most recent first.
        base: Scores of the explained items with the full history, ``(n_items_explained,)``.
        drops: ``drops[j, t]``: the score drop of explained item ``t`` when
            ``history_items[j]`` is left out; ``(n_history_items, n_items_explained)``.
        method: ``"occlusion"`` or ``"similarity"`` (see :class:`Explanation`).
    """

    history_items: np.ndarray
    base: np.ndarray
    drops: np.ndarray
    method: str = "occlusion"


def distinct_recent(history: np.ndarray) -> np.ndarray:
    """The distinct items of a time-ordered history, most recent occurrence first."""
    newest_first = np.asarray(history, dtype=np.int64)[::-1]
    _, first = np.unique(newest_first, return_index=True)
    return newest_first[np.sort(first)]


def without(history: np.ndarray, item: int) -> np.ndarray:
    """``history`` with every occurrence of ``item`` removed, order kept."""
    history = np.asarray(history, dtype=np.int64)
    return history[history != item]


def occlusion(
    score: ScoreFn,
    user: int,
    history: np.ndarray,
    items: np.ndarray,
    max_occluded: int | None = None,
) -> Occlusion:
    """Score drops of ``items`` when each distinct history item is left out.

    The full history and every reduced history are scored in one ``score`` call.

    Args:
        score: The model's scoring function (``Recommender.score``).
        user: The user index passed with every row (``-1`` for an ad-hoc history).
        history: Time-ordered item indices.
        items: Item indices to explain.
        max_occluded: Leave out only the most recent this many distinct items (the others
            get no weight); ``None`` leaves out every one.
    """
    history = np.asarray(history, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    distinct = distinct_recent(history)
    if max_occluded is not None:
        distinct = distinct[:max_occluded]
    rows = [history, *(without(history, int(j)) for j in distinct)]
    scores = np.asarray(score(np.full(len(rows), user, dtype=np.int64), rows), dtype=np.float64)
    scores = scores[:, items]
    return Occlusion(distinct, scores[0], scores[0][None, :] - scores[1:])


def similarity_occlusion(
    similarity: Any, score: ScoreFn, user: int, history: np.ndarray, items: np.ndarray
) -> Occlusion:
    """Item-kNN's exact leave-one-out drops: the similarities of each history item to the
    explained items (the score is a sum of them over the distinct history items)."""
    distinct = distinct_recent(history)
    items = np.asarray(items, dtype=np.int64)
    base = np.asarray(score(np.array([user]), [np.asarray(history)])[0], dtype=np.float64)
    if len(distinct) == 0:
        return Occlusion(distinct, base[items], np.zeros((0, len(items))), "similarity")
    drops = np.asarray(similarity[distinct][:, items].toarray(), dtype=np.float64)
    return Occlusion(distinct, base[items], drops, "similarity")


class Explainer:
    """Explanations of a model's recommendations from the user's history.

    Args:
        model: A fitted model; its ``score`` is what is explained.
        attributes: The items' titles, categories and keywords, by item index.
        verb: The verb of the sentence ("watched", "bought", "liked").
        max_items: Most history items cited per recommendation.
        max_occluded: Leave out only the most recent this many distinct history items
            (a long history costs one scored row per item); ``None`` for all.
        fast_paths: Use item-kNN's exact similarities instead of scoring reduced histories.

    Raises:
        ConfigError: ``max_items`` or ``max_occluded`` is below 1, or the attributes do not
            cover the model's items.
    """

    def __init__(
        self,
        model: BaseRecommender,
        attributes: ItemAttributes,
        *,
        verb: str = "liked",
        max_items: int = 3,
        max_occluded: int | None = 200,
        fast_paths: bool = True,
    ) -> None:
        if max_items < 1:
            raise ConfigError(f"max_items must be at least 1, got {max_items}")
        if max_occluded is not None and max_occluded < 1:
            raise ConfigError(f"max_occluded must be at least 1 or None, got {max_occluded}")
        if len(attributes) != model.n_items:
            raise ConfigError(
                f"attributes cover {len(attributes)} items, the model {model.n_items}"
            )
        self.model = model
        self.attributes = attributes
        self.verb = verb
        self.max_items = max_items
        self.max_occluded = max_occluded
        self.fast_paths = fast_paths

    def contributions(
        self, user: int, history: np.ndarray, items: np.ndarray, score: ScoreFn | None = None
    ) -> Occlusion:
        """Leave-one-out drops of ``items`` for every distinct history item (see module).

        ``score`` replaces the model's own scoring (e.g. a history scored with a stated
        preference text); the item-kNN fast path applies only without it.
        """
        similarity = getattr(self.model, "similarity", None)
        if (
            score is None
            and self.fast_paths
            and self.model.name == "itemknn"
            and similarity is not None
        ):
            return similarity_occlusion(similarity, self.model.score, user, history, items)
        return occlusion(score or self.model.score, user, history, items, self.max_occluded)

    def explain(
        self, user: int, history: np.ndarray, items: np.ndarray, score: ScoreFn | None = None
    ) -> list[Explanation]:
        """Explanations of ``items`` (indices) for a user index and a time-ordered history.

        Args:
            user: The user index (``-1`` for an ad-hoc history).
            history: The item indices the model scored from, oldest first.
            items: The recommended item indices, in the order wanted back.
            score: Scoring to explain instead of the model's ``score`` (same contract).
        """
        items = np.asarray(items, dtype=np.int64)
        occ = self.contributions(user, np.asarray(history, dtype=np.int64), items, score)
        return [self._one(occ, t, int(i)) for t, i in enumerate(items)]

    def _one(self, occ: Occlusion, t: int, item: int) -> Explanation:
        a = self.attributes
        drops = occ.drops[:, t] if len(occ.drops) else np.zeros(0)
        positive = drops > 0
        total = float(drops[positive].sum())
        # Largest drop first; ties keep recency order (stable sort).
        order = [j for j in np.argsort(-drops, kind="stable") if positive[j]][: self.max_items]
        own = set(a.categories[item]) | set(a.keywords[item])
        because = [
            Contribution(
                item_id=a.item_ids[h],
                title=a.titles[h],
                weight=float(drops[j]),
                share=float(drops[j]) / total,
                shared=[x for x in [*a.categories[h], *a.keywords[h]] if x in own],
            )
            for j in order
            for h in [int(occ.history_items[j])]
        ]
        cited = [int(occ.history_items[j]) for j in order]
        weights = [float(drops[j]) for j in order]
        if not cited:
            # Nothing single-handedly raised the score: share what the whole history has.
            cited = [int(h) for h in occ.history_items]
            weights = [1.0] * len(cited)
        categories = _shared(a.categories[item], [a.categories[h] for h in cited], weights)
        keywords = _shared(a.keywords[item], [a.keywords[h] for h in cited], weights, a.idf)
        explanation = Explanation(
            item_id=a.item_ids[item],
            title=a.titles[item],
            score=float(occ.base[t]),
            because=because,
            categories=categories[:3],
            keywords=keywords[:3],
            method=occ.method,
        )
        explanation.sentence = sentence(explanation, self.verb, has_history=len(drops) > 0)
        return explanation


def _shared(
    own: Sequence[str],
    others: Sequence[Sequence[str]],
    weights: Sequence[float],
    idf: dict[str, float] | None = None,
) -> list[str]:
    """``own``'s attributes found in ``others``, by summed weight of the items holding them
    (times the IDF for keywords); ties keep ``own``'s order."""
    mine = set(own)
    total: dict[str, float] = defaultdict(float)
    for attrs, w in zip(others, weights, strict=True):
        for name in set(attrs) & mine:
            total[name] += w * (idf[name] if idf else 1.0)
    return sorted(total, key=lambda n: (-total[n], list(own).index(n)))


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def sentence(explanation: Explanation, verb: str = "liked", *, has_history: bool = True) -> str:
    """One readable reason, e.g. "Because you watched Alien (1979) and Heat (1995) — Sci-Fi".

    The largest contribution is named, and the second when it is at least a quarter of the
    first; the categories (or, without them, the keywords) that the named items share with
    the recommended item follow the dash.
    """
    if explanation.because:
        top = explanation.because[0].weight
        named = [c for c in explanation.because[:2] if c.weight >= 0.25 * top]
        found = {x for c in named for x in c.shared}
        shared = [x for x in explanation.categories if x in found][:2] or [
            x for x in explanation.keywords if x in found
        ][:3]
        tail = f" — {', '.join(shared)}" if shared else ""
        return f"Because you {verb} {_join([c.title for c in named])}{tail}"
    shared = explanation.categories[:2] or explanation.keywords[:3]
    tail = f" — {', '.join(shared)}" if shared else ""
    if not has_history:
        return "Recommended without a history to draw on"
    if shared:
        return f"Matches your history as a whole{tail}"
    return "Matches your history as a whole"
