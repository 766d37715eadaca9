"""Diversity re-ranking of a candidate list: MMR, a greedy DPP and a cap per category.

Both re-rankers pick items one at a time from a retrieval model's candidates, trading the
item's relevance against its similarity to the items already picked, with one knob
``lam`` (λ, the weight of diversity, 0 to 1):

* :func:`mmr_rerank` — Maximal Marginal Relevance (Carbonell & Goldstein, 1998): the next
  item maximises ``(1 - λ) · rel(i) - λ · max_{j picked} cos(i, j)``.
* :func:`dpp_rerank` — greedy MAP inference of a determinantal point process (Chen, Zhang &
  Zhou, 2018) with kernel ``L = diag(q) S diag(q)``; the next item maximises
  ``(1 - λ) · rel(i) + λ · log d²(i)``, where ``d²(i)`` is the part of the item's vector not
  explained by the items already picked (see :func:`dpp_rerank` for the mapping to ``q``).

``rel`` is the relevance rescaled to ``[0, 1]`` within the candidate list (min → 0, max → 1),
so a given λ means the same trade-off whatever the scale of the model's scores (dot
products, cosines, log-probabilities, CTR ranks). With ``λ = 0`` both give exactly the plain
relevance order, ties to the lower item index. The λ scales of the two methods differ (MMR's
penalty lies in ``[-1, 1]``, DPP's ``log d²`` in about ``[-7, 0]``), so tune λ per method.

A cap (``max_per_category``) admits an item only while none of its categories already has
that many items in the list; it works with both methods and with the plain order.

:class:`DiversifiedScorer` wraps a retrieval model so that the ordinary
:class:`~lmrec.evaluation.Evaluator` measures accuracy and diversity (ILD, coverage, Gini,
long-tail share) of the re-ranked lists with the same code::

    config = DiversityConfig(method="mmr", lam=0.3, candidates=100)
    scorer = DiversifiedScorer(model, item_vectors, config)
    result = Evaluator(item_vectors=item_vectors).evaluate(scorer, task)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lmrec.errors import ConfigError
from lmrec.models.baselines._config_build import build_config
from lmrec.models.ctr._rerank import top_candidates

DiversityMethod = Literal["mmr", "dpp"]

RECOMMENDED_LAM: dict[str, float] = {"mmr": 0.2, "dpp": 0.05}
"""The λ per method chosen by ``bench/run_diversity.py`` (``bench/results/diversity.md``): the
largest mean ILD@10 gain with at most 2 % of NDCG@10 lost against λ = 0 on the validation
split. MMR λ = 0.2 holds for both datasets and both models (text-fusion, SASRec). For DPP no
λ > 0 of the grid holds for SASRec on MovieLens (λ = 0.05 loses 2.9 %), so its value is the
text model's (both datasets). Used for a ``[diversity]`` table without ``lam`` and for
``lmrec recommend --diversity`` without a value; everywhere else the default stays λ = 0."""

RECOMMENDED_METHOD: DiversityMethod = "mmr"
"""The method with the larger ILD gain within the bound in the same benchmark."""

DPP_RIDGE = 1e-3
"""Added to the diagonal of the DPP similarity kernel (then rescaled to a unit diagonal).

The cosine matrix of item vectors is positive semi-definite as it is, negative entries
included, so nothing is clipped (clipping negative entries can break the property). But it is
singular whenever the candidates outnumber the vectors' dimension (100 candidates with 18
genre flags): after that many picks every remaining item would have zero volume left, the
greedy MAP could no longer tell items apart and the incremental Cholesky would divide by
zero. The ridge makes the kernel positive definite: each item keeps a small volume of its
own, so the order continues (items like those already picked go last) and ``log d²`` stays
above ``log(ridge / (1 + ridge))`` ≈ -6.9.
"""


class DiversityConfig(BaseModel):
    """How a candidate list is diversified (see :mod:`lmrec.diversity`)."""

    model_config = ConfigDict(extra="forbid")

    method: DiversityMethod = "mmr"
    """``"mmr"`` (Maximal Marginal Relevance) or ``"dpp"`` (greedy DPP MAP inference)."""
    lam: float = Field(default=0.0, ge=0.0, le=1.0)
    """λ, the weight of diversity: 0 keeps the relevance order, 1 weighs only dissimilarity
    to the items already picked (the first pick is still the most relevant item)."""
    candidates: int = Field(default=100, gt=0)
    """How many of the retrieval model's best items (history excluded) are re-ranked."""
    max_per_category: int | None = Field(default=None, gt=0)
    """At most this many items of any one category in the list; ``None`` for no cap."""

    @property
    def active(self) -> bool:
        """Whether re-ranking changes anything (``λ > 0`` or a cap)."""
        return self.lam > 0.0 or self.max_per_category is not None


def diversity_config(
    method: str = "mmr",
    lam: float = 0.0,
    candidates: int = 100,
    max_per_category: int | None = None,
) -> DiversityConfig:
    """A validated :class:`DiversityConfig`.

    Raises:
        ConfigError: A value is invalid; the message names the field and the value.
    """
    return build_config(
        DiversityConfig,
        None,
        method=method,
        lam=lam,
        candidates=candidates,
        max_per_category=max_per_category,
    )


# ----------------------------------------------------------------------------- helpers
def _check_k_lam(k: int, lam: float) -> None:
    if int(k) != k or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    if not 0.0 <= lam <= 1.0:  # also rejects NaN
        raise ConfigError(f"lam must be between 0 and 1, got {lam!r}")


def _check_candidates(
    candidates: np.ndarray, relevance: np.ndarray, n_items: int | None
) -> tuple[np.ndarray, np.ndarray]:
    cands = np.asarray(candidates, dtype=np.int64).reshape(-1)
    rel = np.asarray(relevance, dtype=np.float64).reshape(-1)
    if len(cands) != len(rel):
        raise ValueError(f"{len(rel)} relevance values for {len(cands)} candidates")
    if not np.isfinite(rel).all():
        raise ValueError("relevance must be finite for every candidate")
    if len(np.unique(cands)) != len(cands):
        raise ValueError("candidates must not repeat an item")
    if len(cands) and (cands.min() < 0 or (n_items is not None and cands.max() >= n_items)):
        raise ValueError(f"candidate item indices must lie in [0, {n_items}), got {cands}")
    return cands, rel


def _plain_order(cands: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Positions of the candidates by relevance, ties to the lower item index."""
    return np.lexsort((cands, -rel))


def _rescale(rel: np.ndarray) -> np.ndarray:
    """Min-max rescaling to ``[0, 1]``; all zeros when every value is equal."""
    low, high = float(rel.min()), float(rel.max())
    if high <= low:
        return np.zeros_like(rel)
    return (rel - low) / (high - low)


def _unit_vectors(item_vectors: np.ndarray, items: np.ndarray) -> np.ndarray:
    vectors = np.asarray(item_vectors)
    if vectors.ndim != 2:
        raise ValueError(f"item_vectors must be 2-D (n_items, dim), got shape {vectors.shape}")
    rows = vectors[items].astype(np.float64)  # only the candidates' rows, not the catalog
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    # A zero vector (an item without categories) is similar to nothing.
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


class _CategoryCap:
    """Counts picked items per category; an item is open while all its categories are."""

    def __init__(
        self,
        items: np.ndarray,
        item_categories: Sequence[Sequence[str]] | None,
        max_per_category: int | None,
    ) -> None:
        if max_per_category is not None and (
            int(max_per_category) != max_per_category or max_per_category < 1
        ):
            raise ConfigError(
                f"max_per_category must be a positive integer, got {max_per_category!r}"
            )
        if max_per_category is not None and item_categories is None:
            raise ConfigError("max_per_category needs item_categories")
        self.limit = max_per_category
        self.counts: dict[str, int] = {}
        self.categories: list[tuple[str, ...]] = []
        if max_per_category is not None:
            assert item_categories is not None
            if len(items) and int(items.max()) >= len(item_categories):
                raise ValueError(
                    f"item_categories has {len(item_categories)} entries, candidates go up "
                    f"to item {int(items.max())}"
                )
            self.categories = [tuple(dict.fromkeys(item_categories[int(i)])) for i in items]
        self.open = np.ones(len(items), dtype=bool)

    def add(self, position: int) -> None:
        if self.limit is None:
            return
        for cat in self.categories[position]:
            self.counts[cat] = self.counts.get(cat, 0) + 1
            if self.counts[cat] >= self.limit:
                for p, cats in enumerate(self.categories):
                    if cat in cats:
                        self.open[p] = False


class _Gain(Protocol):
    """The diversity term of a greedy re-ranker, per candidate, given the items picked."""

    def values(self) -> np.ndarray: ...

    def update(self, position: int) -> None: ...


class _MMRGain:
    """``-max cos(i, picked)``; 0 before the first pick."""

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = unit
        self.max_sim = np.full(len(unit), -np.inf)
        self.any = False

    def values(self) -> np.ndarray:
        return -self.max_sim if self.any else np.zeros(len(self.unit))

    def update(self, position: int) -> None:
        self.max_sim = np.maximum(self.max_sim, self.unit @ self.unit[position])
        self.any = True


class _DPPGain:
    """``log d²(i)``: the log conditional variance of item i in the kernel ``S``.

    Chen et al.'s fast greedy MAP: ``d²`` and the rows ``c`` of the incremental Cholesky
    factor are updated in ``O(n · t)`` per pick instead of recomputing determinants.
    """

    def __init__(self, unit: np.ndarray, k: int) -> None:
        self.unit = unit
        n = len(unit)
        self.c = np.zeros((n, min(k, n)))
        self.d2 = np.ones(n)
        self.t = 0

    def _kernel_row(self, j: int) -> np.ndarray:
        row = self.unit @ self.unit[j]
        row[j] = 1.0 + DPP_RIDGE  # a zero vector still has unit self-similarity
        return row / (1.0 + DPP_RIDGE)

    def values(self) -> np.ndarray:
        return np.log(np.maximum(self.d2, 1e-300))

    def update(self, position: int) -> None:
        if self.t >= self.c.shape[1]:
            return
        dj = float(np.sqrt(max(self.d2[position], 1e-300)))
        cj = self.c[position, : self.t]
        e = (self._kernel_row(position) - self.c[:, : self.t] @ cj) / dj
        self.c[:, self.t] = e
        self.d2 = self.d2 - e**2
        self.d2[position] = 0.0
        self.t += 1


def _greedy(
    cands: np.ndarray,
    rel: np.ndarray,
    k: int,
    lam: float,
    method: DiversityMethod | None,
    item_vectors: np.ndarray | None,
    item_categories: Sequence[Sequence[str]] | None,
    max_per_category: int | None,
) -> np.ndarray:
    """Pick up to ``k`` candidates maximising ``(1 - λ) · rel + λ · gain``.

    The candidates are first put in plain relevance order and ``np.argmax`` takes the first
    of equal objectives, so ties go to the more relevant, then lower-index item, and λ = 0
    reproduces the plain order exactly (the rescaled relevance never increases along it).
    """
    order = _plain_order(cands, rel)
    cands = cands[order]
    cap = _CategoryCap(cands, item_categories, max_per_category)
    if len(cands) == 0:
        return cands
    rel = _rescale(rel[order])
    gain: _Gain | None = None
    if method is not None and lam > 0.0:
        assert item_vectors is not None
        unit = _unit_vectors(item_vectors, cands)
        gain = _MMRGain(unit) if method == "mmr" else _DPPGain(unit, k)
    free = np.ones(len(cands), dtype=bool)
    picks: list[int] = []
    while len(picks) < min(k, len(cands)):
        objective = (1.0 - lam) * rel + lam * gain.values() if gain is not None else rel.copy()
        objective[~(free & cap.open)] = -np.inf
        j = int(np.argmax(objective))
        if objective[j] == -np.inf:
            break  # the cap closed every remaining candidate
        picks.append(j)
        free[j] = False
        cap.add(j)
        if gain is not None:
            gain.update(j)
    return cands[np.asarray(picks, dtype=np.int64)]


# ----------------------------------------------------------------------------- re-rankers
def mmr_rerank(
    candidates: np.ndarray,
    relevance: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    lam: float,
    *,
    item_categories: Sequence[Sequence[str]] | None = None,
    max_per_category: int | None = None,
) -> np.ndarray:
    """Maximal Marginal Relevance re-ranking of a candidate list.

    The next item maximises ``(1 - λ) · rel(i) - λ · max_{j picked} cos(v_i, v_j)``, where
    ``rel`` is ``relevance`` min-max rescaled to ``[0, 1]`` within the candidates (so λ does
    not depend on the model's score scale) and the maximum over no picks is 0. λ = 0 gives
    the plain relevance order (ties to the lower item index); λ = 1 takes the most relevant
    item, then always the item least similar to those picked.

    Args:
        candidates: Item indices (distinct), in any order.
        relevance: One finite score per candidate; higher is better.
        item_vectors: ``(n_items, dim)`` vectors of the whole catalog, indexed by item.
        k: Length of the list; fewer when there are fewer candidates or the cap binds.
        lam: λ in ``[0, 1]``, the weight of diversity.
        item_categories: Per catalog item, its categories (needed with a cap).
        max_per_category: At most this many items per category; an item counts towards each
            of its categories and is skipped while any of them is full.

    Returns:
        int64 item indices, best first.

    Raises:
        ConfigError: ``k``, ``lam`` or ``max_per_category`` is out of range, or a cap is
            asked for without ``item_categories``.
        ValueError: The inputs' shapes disagree, a relevance is not finite, a candidate
            repeats or lies outside the catalog.
    """
    _check_k_lam(k, lam)
    n_items = len(item_vectors)
    cands, rel = _check_candidates(candidates, relevance, n_items)
    return _greedy(cands, rel, k, lam, "mmr", item_vectors, item_categories, max_per_category)


def dpp_rerank(
    candidates: np.ndarray,
    relevance: np.ndarray,
    item_vectors: np.ndarray,
    k: int,
    lam: float,
    *,
    item_categories: Sequence[Sequence[str]] | None = None,
    max_per_category: int | None = None,
) -> np.ndarray:
    """Greedy MAP re-ranking with a determinantal point process (Chen et al., 2018).

    The kernel is ``L = diag(q) S diag(q)``: ``S`` the cosine similarity of the item vectors
    (with a small ridge, see :data:`DPP_RIDGE`) and the quality ``q_i = exp(α · rel(i))``
    with ``rel`` the relevance min-max rescaled to ``[0, 1]`` within the candidates and
    ``α = (1 - λ) / (2λ)`` (Chen et al.'s ``θ / (2(1 - θ))`` with ``θ = 1 - λ``). Each greedy
    step adds the item that most increases ``log det L_Y``, i.e. maximises
    ``2α · rel(i) + log d²(i)`` — equivalently ``(1 - λ) · rel(i) + λ · log d²(i)``, where
    ``d²(i)`` is the conditional variance of item ``i`` in ``S`` given the picked items,
    kept by the incremental Cholesky update of the fast greedy algorithm. Working with this
    form never forms ``exp(α)`` (which overflows for small λ). λ = 0 (α = ∞) gives the plain
    relevance order; λ = 1 (α = 0) takes the most relevant item, then maximises the volume
    ``det S_Y`` alone.

    Args:
        candidates: Item indices (distinct), in any order.
        relevance: One finite score per candidate; higher is better.
        item_vectors: ``(n_items, dim)`` vectors of the whole catalog, indexed by item.
        k: Length of the list; fewer when there are fewer candidates or the cap binds.
        lam: λ in ``[0, 1]``, the weight of diversity.
        item_categories: Per catalog item, its categories (needed with a cap).
        max_per_category: At most this many items per category (see :func:`mmr_rerank`).

    Returns:
        int64 item indices, best first, each at most once.

    Raises:
        ConfigError: ``k``, ``lam`` or ``max_per_category`` is out of range, or a cap is
            asked for without ``item_categories``.
        ValueError: The inputs' shapes disagree, a relevance is not finite, a candidate
            repeats or lies outside the catalog.
    """
    _check_k_lam(k, lam)
    n_items = len(item_vectors)
    cands, rel = _check_candidates(candidates, relevance, n_items)
    return _greedy(cands, rel, k, lam, "dpp", item_vectors, item_categories, max_per_category)


def cap_per_category(
    candidates: np.ndarray,
    relevance: np.ndarray,
    k: int,
    item_categories: Sequence[Sequence[str]],
    max_per_category: int,
) -> np.ndarray:
    """The plain relevance order with at most ``max_per_category`` items per category.

    Args:
        candidates: Item indices (distinct), in any order.
        relevance: One finite score per candidate; higher is better.
        k: Length of the list; fewer when the cap closes every remaining candidate.
        item_categories: Per catalog item, its categories.
        max_per_category: The cap (see :func:`mmr_rerank`).

    Returns:
        int64 item indices, best first (ties to the lower item index).

    Raises:
        ConfigError: ``k`` or ``max_per_category`` is out of range.
        ValueError: The inputs' shapes disagree or a relevance is not finite.
    """
    _check_k_lam(k, 0.0)
    cands, rel = _check_candidates(candidates, relevance, None)
    return _greedy(cands, rel, k, 0.0, None, None, item_categories, max_per_category)


def diversify(
    candidates: np.ndarray,
    relevance: np.ndarray,
    k: int,
    config: DiversityConfig,
    item_vectors: np.ndarray | None = None,
    item_categories: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Re-rank candidates as ``config`` says (its ``candidates`` field is not used here).

    With ``λ = 0`` no item vectors are needed: the result is the plain order, capped when
    ``config.max_per_category`` is set.

    Raises:
        ConfigError: ``λ > 0`` without ``item_vectors``, or see :func:`mmr_rerank`.
    """
    if config.lam == 0.0:
        if config.max_per_category is None:
            _check_k_lam(k, 0.0)
            cands, rel = _check_candidates(candidates, relevance, None)
            return cands[_plain_order(cands, rel)][:k]
        if item_categories is None:
            raise ConfigError("max_per_category needs item_categories")
        return cap_per_category(candidates, relevance, k, item_categories, config.max_per_category)
    if item_vectors is None:
        raise ConfigError(f"diversity (lam={config.lam}) needs item vectors")
    rerank = mmr_rerank if config.method == "mmr" else dpp_rerank
    return rerank(
        candidates,
        relevance,
        item_vectors,
        k,
        config.lam,
        item_categories=item_categories,
        max_per_category=config.max_per_category,
    )


class Scorer(Protocol):
    """A retrieval model: scores of the whole catalog per user."""

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Shape ``(len(users), n_items)``."""
        ...


class DiversifiedScorer:
    """A retrieval model whose best candidates are re-ranked for diversity.

    :meth:`score` returns full-catalog scores in which, per row, the re-ranked list (built
    from the top ``config.candidates`` items, history and non-finite scores excluded) gets
    descending scores above every other item, and every other item keeps its retrieval
    score below them — the same trick as :func:`lmrec.models.ctr.rerank_scores` — so the
    :class:`~lmrec.evaluation.Evaluator` measures the diversified lists directly. A
    history item keeps the rank it had in the plain order (see :meth:`_keep_history_ranks`),
    so a target the user already had (a repeat) counts as it does without re-ranking. With
    ``λ = 0`` and no cap the retrieval scores pass through unchanged.

    Args:
        retrieval: Anything with ``score(users, histories)`` over the whole catalog.
        item_vectors: ``(n_items, dim)`` vectors the similarity is computed on; may be
            ``None`` when ``config.lam`` is 0.
        config: Method, λ, number of candidates and cap.
        item_categories: Per catalog item, its categories (needed with a cap).
        depth: Build only the first ``depth`` positions of each list greedily; the other
            candidates follow in relevance order. The greedy picks do not depend on the
            list length, so metrics at cut-offs up to ``depth`` are the same as with
            ``None`` (every candidate re-ranked), for a fraction of the work.

    Raises:
        ConfigError: ``λ > 0`` without item vectors, a cap without categories, or
            ``depth`` below 1.
    """

    def __init__(
        self,
        retrieval: Scorer,
        item_vectors: np.ndarray | None,
        config: DiversityConfig | None = None,
        item_categories: Sequence[Sequence[str]] | None = None,
        depth: int | None = None,
    ) -> None:
        self.config = config if config is not None else DiversityConfig()
        if depth is not None and depth < 1:
            raise ConfigError(f"depth must be a positive integer, got {depth!r}")
        self.depth = depth
        if self.config.lam > 0.0 and item_vectors is None:
            raise ConfigError(f"diversity (lam={self.config.lam}) needs item vectors")
        if self.config.max_per_category is not None and item_categories is None:
            raise ConfigError("max_per_category needs item_categories")
        self.retrieval = retrieval
        self.item_vectors = None if item_vectors is None else np.asarray(item_vectors)
        self.item_categories = item_categories
        base = getattr(retrieval, "name", None) or type(retrieval).__name__
        cap = f",cap{self.config.max_per_category}" if self.config.max_per_category else ""
        self.name = f"{base}+{self.config.method}@{self.config.lam:g}{cap}"

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Diversified full-catalog scores, shape ``(len(users), n_items)``, float64.

        Raises:
            ValueError: The retrieval scores do not match the histories or item vectors.
        """
        scores = np.asarray(self.retrieval.score(users, histories))
        if not self.config.active:
            return scores
        if scores.ndim != 2 or len(scores) != len(histories):
            raise ValueError(
                f"retrieval scores of shape {scores.shape} do not match {len(histories)} histories"
            )
        if self.item_vectors is not None and len(self.item_vectors) != scores.shape[1]:
            raise ValueError(
                f"item_vectors has {len(self.item_vectors)} rows for {scores.shape[1]} items"
            )
        # float64: integer steps above the rest stay exact whatever the retrieval scale.
        out = scores.astype(np.float64, copy=True)
        for row, history in enumerate(histories):
            cands = top_candidates(scores[row], history, self.config.candidates)
            if len(cands) == 0:
                continue
            ranked = diversify(
                cands,
                scores[row, cands],
                len(cands) if self.depth is None else min(self.depth, len(cands)),
                self.config,
                self.item_vectors,
                self.item_categories,
            )
            others = np.ones(out.shape[1], dtype=bool)
            others[ranked] = False
            rest = out[row, others]
            finite = rest[np.isfinite(rest)]
            base = float(finite.max()) + 1.0 if len(finite) else 0.0
            out[row, ranked] = base + np.arange(len(ranked), 0, -1, dtype=np.float64)
            self._keep_history_ranks(out, row, scores[row], history, cands, len(ranked), base)
        return out

    @staticmethod
    def _keep_history_ranks(
        out: np.ndarray,
        row: int,
        retrieval: np.ndarray,
        history: np.ndarray,
        cands: np.ndarray,
        n_ranked: int,
        base: float,
    ) -> None:
        """Give each history item the rank among the list that it had in the plain order.

        History items are never in a list, but the evaluator still ranks a target that is
        also in the history (a repeat purchase) by its own score against the other items.
        Re-ranking does not change that score's meaning, so such an item is slotted between
        the same list positions as before (ties against it, as the evaluator counts them);
        left at its retrieval score, below the list, every repeat target would be lost.
        """
        hist = np.asarray(history, dtype=np.int64)
        if len(hist) == 0:
            return
        own = retrieval[hist].astype(np.float64)
        ok = np.isfinite(own)
        hist, own = hist[ok], own[ok]
        above = (retrieval[cands][None, :] >= own[:, None]).sum(axis=1)  # plain rank - 1
        inside = above < n_ranked
        out[row, hist[inside]] = base + (n_ranked - above[inside]) + 0.5
