"""Ranking, CTR and beyond-accuracy metrics as pure, vectorised numpy functions.

Ranking metrics work in two steps: :func:`target_ranks` turns a score matrix into the 0-based
rank of every target among the user's candidate items, then ``recall_at_k``, ``ndcg_at_k``,
``mrr_at_k`` and ``hit_rate_at_k`` turn those ranks into one value per user. Keeping the ranks
lets one pass over the scores serve every cut-off ``k``.

Conventions:

- The candidates of a user are the whole catalog minus the user's known history, plus the
  user's targets. A target the user has already seen (repeat consumption) is thus still
  ranked, with its own score, against the unseen items; the other history items never
  compete with it.
- Ties are broken pessimistically: a target is placed after every non-target candidate with
  an equal score, so a model that scores everything the same gets no credit.
- A NaN score counts as ``-inf``: the item sits at the very bottom, tied with other ``-inf``.
- Targets tied with each other share a rank. Recall and NDCG then place them in consecutive
  list positions (rank, rank + 1, ...): with binary relevance their order within the tie
  does not matter, and no more than ``k`` targets can fall within the top ``k``.

Beyond-accuracy metrics take top-k lists as an int array ``(n_users, k)``; the entry ``-1``
marks an empty slot (a user with fewer than ``k`` candidates) and is ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Upper bound on the elements of one temporary array: keeps memory flat for big catalogs.
_CHUNK_ELEMENTS = 1 << 22

__all__ = [
    "auc",
    "catalog_coverage",
    "gauc",
    "gini_index",
    "hit_rate_at_k",
    "intra_list_diversity",
    "log_loss",
    "long_tail_share",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "recall_at_k",
    "target_ranks",
]


# -- full-ranking ranks --------------------------------------------------------------------
def target_ranks(
    scores: np.ndarray,
    targets: Sequence[np.ndarray],
    exclude: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """The pessimistic 0-based rank of every target among each user's candidate items.

    For a user with scores ``s``, targets ``T`` and candidates ``C = (items - exclude) | T``,
    the rank of a target ``t`` is::

        #{j in C - T : s_j >= s_t} + #{j in T - {t} : s_j > s_t}

    Non-target candidates win ties against a target (pessimistic); targets do not push each
    other down on ties, so a perfect scorer ranks ``|T|`` targets at ``0 .. |T|-1``. A target
    that is also in ``exclude`` stays a candidate for itself (see the module docstring).

    Args:
        scores: Scores, shape ``(n_users, n_items)``; NaN counts as ``-inf``.
        targets: Per user, the target item indices. Duplicates are dropped (first kept).
        exclude: Per user, the item indices that are not candidates (the known history).

    Returns:
        Per user, an int64 array of ranks aligned with that user's distinct targets in their
        given order (empty for a user without targets).

    Raises:
        ValueError: When ``scores`` is not 2-D, the lengths disagree, or an index is outside
            ``0 .. n_items-1``.
    """
    if np.ndim(scores) != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {np.shape(scores)}")
    n_users, n_items = np.shape(scores)
    if len(targets) != n_users or len(exclude) != n_users:
        raise ValueError(
            f"scores has {n_users} rows but targets has {len(targets)} and exclude "
            f"{len(exclude)} entries"
        )
    uniq = [_distinct_in_order(t) for t in targets]
    t_len = np.fromiter((len(t) for t in uniq), dtype=np.int64, count=n_users)
    t_row = np.repeat(np.arange(n_users, dtype=np.int64), t_len)
    t_col = _concat(uniq)
    e_len = np.fromiter((len(np.ravel(e)) for e in exclude), dtype=np.int64, count=n_users)
    e_row = np.repeat(np.arange(n_users, dtype=np.int64), e_len)
    e_col = _concat([np.ravel(e) for e in exclude])
    _check_indices(t_col, n_items, "target")
    _check_indices(e_col, n_items, "excluded")

    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    # One working copy: NaN -> -inf, then non-candidates and targets blanked out with NaN,
    # which compares False with everything and so drops out of the ">=" counts below.
    masked = np.array(scores, dtype=dtype, copy=True)
    masked[np.isnan(masked)] = -np.inf
    t_score = masked[t_row, t_col]
    masked[e_row, e_col] = np.nan
    masked[t_row, t_col] = np.nan

    beaten_by_others = np.empty(len(t_col), dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_items))
    for start in range(0, len(t_col), chunk):
        stop = start + chunk
        rows = masked[t_row[start:stop]]
        beaten_by_others[start:stop] = (rows >= t_score[start:stop, None]).sum(axis=1)
    ranks = beaten_by_others + _count_greater_in_group(t_row, t_score)
    return np.split(ranks, np.cumsum(t_len)[:-1]) if n_users else []


def _distinct_in_order(values: np.ndarray) -> np.ndarray:
    flat = np.ravel(np.asarray(values)).astype(np.int64, copy=False)
    if len(flat) < 2:
        return flat
    _, first = np.unique(flat, return_index=True)
    return flat[np.sort(first)]


def _concat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    if not arrays:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in arrays])


def _check_indices(indices: np.ndarray, n_items: int, what: str) -> None:
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        bad = indices[(indices < 0) | (indices >= n_items)][0]
        raise ValueError(f"{what} item index {int(bad)} is outside 0..{n_items - 1}")


def _count_greater_in_group(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each element, how many elements of its group (sorted int ids) have a larger value."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    _, dense = np.unique(values, return_inverse=True)
    dense = dense.reshape(-1).astype(np.int64)
    width = int(dense.max()) + 1
    key = groups * width + dense
    sorted_key = np.sort(key)
    group_end = np.searchsorted(sorted_key, (groups + 1) * width, side="left")
    return group_end - np.searchsorted(sorted_key, key, side="right")


# -- metrics from ranks --------------------------------------------------------------------
def _flatten_ranks(
    ranks: Sequence[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    lens = np.fromiter((len(np.ravel(r)) for r in ranks), dtype=np.int64, count=len(ranks))
    flat = _concat(list(ranks))
    owner = np.repeat(np.arange(len(ranks), dtype=np.int64), lens)
    return flat, owner, lens


def _positions(flat: np.ndarray, owner: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """List positions of the targets: tied targets fill consecutive slots from their rank.

    Per user, with ranks sorted ascending, ``p_i = max(r_i, p_{i-1} + 1)``; for ranks from
    :func:`target_ranks` this moves each member of a tie among targets one slot further.
    Returned in sorted order per user (recall and NDCG only need the set of positions).
    """
    if len(flat) == 0:
        return flat
    order = np.lexsort((flat, owner))
    ranks = flat[order]
    local = np.arange(len(ranks)) - np.repeat(np.cumsum(lens) - lens, lens)
    # p_i = i + max_{j <= i}(r_j - j), segmented per user by a per-user offset that dominates.
    span = int(ranks.max()) + int(lens.max()) + 2
    shifted = ranks - local + owner * span
    return local + np.maximum.accumulate(shifted) - owner * span


def hit_rate_at_k(ranks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per user, 1.0 when at least one target ranks within the top ``k``, else 0.0.

    Args:
        ranks: Per user, the 0-based target ranks from :func:`target_ranks`.
        k: The cut-off.

    Returns:
        Float64 array, one value per user.
    """
    flat, owner, _ = _flatten_ranks(ranks, k)
    hits = np.bincount(owner, weights=(flat < k), minlength=len(ranks))
    return (hits > 0).astype(np.float64)


def recall_at_k(ranks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per user, the share of targets within the top ``k``, over ``min(|T|, k)``.

    The denominator is capped at ``k`` so that a perfect ranking scores 1.0 even for users
    with more than ``k`` targets (the same cap as the ideal DCG of :func:`ndcg_at_k`). With a
    single target Recall@K equals HR@K. Because of the cap, Recall@K of a user with several
    targets can drop as ``k`` grows. Targets tied with each other take consecutive
    positions (see the module docstring). A user without targets scores 0.0.

    Args:
        ranks: Per user, the 0-based target ranks from :func:`target_ranks`.
        k: The cut-off.

    Returns:
        Float64 array, one value per user.
    """
    flat, owner, lens = _flatten_ranks(ranks, k)
    hits = np.bincount(owner, weights=(_positions(flat, owner, lens) < k), minlength=len(ranks))
    denom = np.minimum(lens, k)
    return np.divide(hits, denom, out=np.zeros(len(ranks)), where=denom > 0)


def ndcg_at_k(ranks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per user, NDCG@K with binary relevance.

    ``DCG = sum over targets with position p < k of 1 / log2(p + 2)``, where the position is
    the rank, moved down one slot per earlier target tied with it (see the module
    docstring); the ideal DCG places ``min(|T|, k)`` targets at ``0, 1, ...``. With several
    targets NDCG@K is not monotone in ``k``: the ideal DCG grows with ``k``. A user without
    targets scores 0.0.

    Args:
        ranks: Per user, the 0-based target ranks from :func:`target_ranks`.
        k: The cut-off.

    Returns:
        Float64 array in ``[0, 1]``, one value per user.
    """
    flat, owner, lens = _flatten_ranks(ranks, k)
    positions = _positions(flat, owner, lens)
    inside = positions < k
    gains = np.zeros(len(flat))
    gains[inside] = 1.0 / np.log2(positions[inside] + 2.0)
    dcg = np.bincount(owner, weights=gains, minlength=len(ranks))
    ideal_table = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])
    idcg = ideal_table[np.minimum(lens, k)]
    return np.divide(dcg, idcg, out=np.zeros(len(ranks)), where=idcg > 0)


def mrr_at_k(ranks: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per user, ``1 / (r + 1)`` for the best-ranked target ``r`` when ``r < k``, else 0.0.

    Args:
        ranks: Per user, the 0-based target ranks from :func:`target_ranks`.
        k: The cut-off.

    Returns:
        Float64 array, one value per user.
    """
    flat, owner, _ = _flatten_ranks(ranks, k)
    best = np.full(len(ranks), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, owner, flat)
    inside = best < k
    out = np.zeros(len(ranks))
    out[inside] = 1.0 / (best[inside] + 1.0)
    return out


# -- CTR metrics ---------------------------------------------------------------------------
def _binary_labels(labels: np.ndarray) -> np.ndarray:
    arr = np.ravel(np.asarray(labels))
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"labels must be 0/1 or bool, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(f"labels must be 0/1, got {arr[bad][0]!r}")
    return arr.astype(np.float64)


def _finite_scores(scores: np.ndarray, n: int, what: str) -> np.ndarray:
    arr = np.ravel(np.asarray(scores, dtype=np.float64))
    if len(arr) != n:
        raise ValueError(f"labels has {n} entries but {what} has {len(arr)}")
    return np.where(np.isnan(arr), -np.inf, arr)


def _grouped_auc(
    codes: np.ndarray, n_groups: int, labels: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the Mann-Whitney AUC with average ranks for ties (NaN with one class).

    Returns:
        ``(auc, size)`` per group.
    """
    _, dense = np.unique(scores, return_inverse=True)
    dense = dense.reshape(-1).astype(np.int64)
    width = int(dense.max()) + 1 if len(dense) else 1
    key = codes * width + dense
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_codes, sorted_labels = key[order], codes[order], labels[order]

    size = np.bincount(codes, minlength=n_groups)
    group_first = np.cumsum(size) - size
    # Blocks of equal (group, score) are ties; each member gets the block's mean rank.
    new_block = np.concatenate([[True], sorted_key[1:] != sorted_key[:-1]])
    block_first = np.flatnonzero(new_block)
    block_size = np.diff(np.append(block_first, len(sorted_key)))
    block_of = np.cumsum(new_block) - 1
    first_in_group = block_first[block_of] - group_first[sorted_codes]
    mean_rank = first_in_group + (block_size[block_of] + 1) / 2.0

    n_pos = np.bincount(sorted_codes, weights=sorted_labels, minlength=n_groups)
    n_neg = size - n_pos
    rank_sum = np.bincount(sorted_codes, weights=mean_rank * sorted_labels, minlength=n_groups)
    both = (n_pos > 0) & (n_neg > 0)
    result = np.full(n_groups, np.nan)
    result[both] = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2.0) / (
        n_pos[both] * n_neg[both]
    )
    return result, size


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic; tied scores count one half.

    Equals the share of (positive, negative) pairs where the positive scores higher, ties
    counting 0.5. NaN scores count as ``-inf``.

    Args:
        labels: 0/1 or bool labels.
        scores: Scores, same length; higher means more likely positive.

    Returns:
        The AUC in ``[0, 1]``.

    Raises:
        ValueError: When the lengths differ, a label is not 0/1, or only one class is present.
    """
    y = _binary_labels(labels)
    s = _finite_scores(scores, len(y), "scores")
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("AUC needs both positive and negative labels, got only one class")
    result, _ = _grouped_auc(np.zeros(len(y), dtype=np.int64), 1, y, s)
    return float(result[0])


def gauc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Group AUC: the per-group AUC averaged with the group's impression count as weight.

    Groups (usually users) with only one class have no AUC and are left out.

    Args:
        groups: Group key per impression (any sortable values).
        labels: 0/1 or bool labels.
        scores: Scores, same length.

    Returns:
        The weighted mean AUC.

    Raises:
        ValueError: When the lengths differ, a label is not 0/1, or no group has both classes.
    """
    y = _binary_labels(labels)
    s = _finite_scores(scores, len(y), "scores")
    g = np.ravel(np.asarray(groups))
    if len(g) != len(y):
        raise ValueError(f"labels has {len(y)} entries but groups has {len(g)}")
    if len(y) == 0:
        raise ValueError("GAUC needs at least one group with both classes, got no impressions")
    uniq, codes = np.unique(g, return_inverse=True)
    per_group, size = _grouped_auc(codes.reshape(-1).astype(np.int64), len(uniq), y, s)
    valid = ~np.isnan(per_group)
    if not valid.any():
        raise ValueError("GAUC needs at least one group with both classes, found none")
    return float(np.average(per_group[valid], weights=size[valid]))


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log), probabilities clipped to ``[eps, 1 - eps]``.

    Args:
        labels: 0/1 or bool labels.
        probs: Predicted probabilities of the positive class.
        eps: Clipping bound that keeps the loss finite.

    Returns:
        The mean log loss.

    Raises:
        ValueError: When the lengths differ, a label is not 0/1, or there are no labels.
    """
    y = _binary_labels(labels)
    p = np.ravel(np.asarray(probs, dtype=np.float64))
    if len(p) != len(y):
        raise ValueError(f"labels has {len(y)} entries but probs has {len(p)}")
    if len(y) == 0:
        raise ValueError("log loss needs at least one label")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


# -- beyond accuracy -----------------------------------------------------------------------
def _check_topk(topk: np.ndarray, n_items: int) -> np.ndarray:
    arr = np.asarray(topk)
    if arr.ndim != 2:
        raise ValueError(f"top-k lists must be 2-D (n_users, k), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"top-k lists must hold integer item indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -1 or arr.max() >= n_items):
        bad = arr[(arr < -1) | (arr >= n_items)][0]
        raise ValueError(f"top-k item index {int(bad)} is outside 0..{n_items - 1}")
    return arr


def _recommendation_counts(topk: np.ndarray, n_items: int) -> np.ndarray:
    arr = _check_topk(topk, n_items)
    return np.bincount(arr[arr >= 0], minlength=n_items)


def catalog_coverage(topk: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one top-k list.

    Args:
        topk: Item indices, shape ``(n_users, k)``; ``-1`` marks an empty slot.
        n_items: Catalog size.

    Returns:
        Coverage in ``[0, 1]``.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    return float(np.count_nonzero(_recommendation_counts(topk, n_items)) / n_items)


def gini_index(topk: np.ndarray, n_items: int) -> float:
    """Gini coefficient of how often each catalog item is recommended.

    Items never recommended count with zero, so 0.0 means every item is recommended equally
    often and ``(n_items - 1) / n_items`` means one item fills every slot.

    Args:
        topk: Item indices, shape ``(n_users, k)``; ``-1`` marks an empty slot.
        n_items: Catalog size.

    Returns:
        The Gini index; 0.0 when nothing is recommended.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    counts = np.sort(_recommendation_counts(topk, n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    i = np.arange(1, n_items + 1)
    return float(np.sum((2 * i - n_items - 1) * counts) / (n_items * total))


def intra_list_diversity(topk: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean pairwise cosine distance ``1 - cos(a, b)`` within each list, averaged over users.

    A zero vector has cosine 0 with everything. Lists with fewer than two items are left
    out of the average.

    Args:
        topk: Item indices, shape ``(n_users, k)``; ``-1`` marks an empty slot.
        item_vectors: One vector per catalog item, shape ``(n_items, dim)``.

    Returns:
        The mean ILD; 0.0 when no list has two items.
    """
    vectors = np.asarray(item_vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ValueError(f"item_vectors must be 2-D (n_items, dim), got shape {vectors.shape}")
    arr = _check_topk(topk, len(vectors))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    n_users, k = arr.shape
    per_user = np.zeros(n_users)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, k * vectors.shape[1]))
    for start in range(0, n_users, chunk):
        block = arr[start : start + chunk]
        valid = block >= 0
        emb = unit[np.where(valid, block, 0)] * valid[..., None]
        # sum_{i != j} cos_ij = |sum_i e_i|^2 - sum_i |e_i|^2, without the k x k matrix.
        all_pairs = np.square(emb.sum(axis=1)).sum(axis=1)
        self_pairs = np.square(emb).sum(axis=(1, 2))
        m = valid.sum(axis=1).astype(np.float64)
        n_pairs = m * (m - 1)
        dist = n_pairs - (all_pairs - self_pairs)
        per_user[start : start + chunk] = np.divide(
            dist, n_pairs, out=np.full(len(block), np.nan), where=n_pairs > 0
        )
    scored = per_user[~np.isnan(per_user)]
    return float(scored.mean()) if len(scored) else 0.0


def novelty(topk: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(pop / n_users)`` of the recommended items.

    ``item_popularity`` counts the users who interacted with each item. An item nobody
    interacted with is treated as seen once, giving the largest finite value
    ``log2(n_users)``; a popularity above ``n_users`` counts as ``n_users`` (novelty 0).
    Each list is averaged first, then the lists are averaged over users.

    Args:
        topk: Item indices, shape ``(n_users, k)``; ``-1`` marks an empty slot.
        item_popularity: Users per catalog item, shape ``(n_items,)``.
        n_users: The number of users the popularity was counted over.

    Returns:
        The mean novelty in bits; 0.0 when nothing is recommended.
    """
    pop = np.ravel(np.asarray(item_popularity, dtype=np.float64))
    if n_users < 1:
        raise ValueError(f"n_users must be positive, got {n_users}")
    arr = _check_topk(topk, len(pop))
    info = -np.log2(np.clip(pop, 1.0, float(n_users)) / n_users)
    valid = arr >= 0
    per_slot = np.where(valid, info[np.where(valid, arr, 0)], 0.0)
    m = valid.sum(axis=1)
    has = m > 0
    if not has.any():
        return 0.0
    return float(np.mean(per_slot.sum(axis=1)[has] / m[has]))


def long_tail_share(
    topk: np.ndarray, item_popularity: np.ndarray, head_share: float = 0.2
) -> float:
    """Share of recommended slots filled with items outside the popular head.

    The head is the ``floor(head_share * n_items)`` most popular items; ties in popularity
    at its edge go to the lower item index.

    Args:
        topk: Item indices, shape ``(n_users, k)``; ``-1`` marks an empty slot.
        item_popularity: Popularity per catalog item, shape ``(n_items,)``.
        head_share: The fraction of the catalog that forms the head, in ``[0, 1]``.

    Returns:
        The long-tail share in ``[0, 1]``; 0.0 when nothing is recommended.
    """
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1], got {head_share}")
    pop = np.ravel(np.asarray(item_popularity, dtype=np.float64))
    arr = _check_topk(topk, len(pop))
    n_head = math.floor(round(head_share * len(pop), 9))
    head = np.zeros(len(pop), dtype=bool)
    head[np.argsort(-pop, kind="stable")[:n_head]] = True
    slots = arr[arr >= 0]
    if len(slots) == 0:
        return 0.0
    return float(np.mean(~head[slots]))
