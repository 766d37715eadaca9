"""Full-ranking ranks and the metrics built on them, checked against hand-computed values."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmrec.evaluation.metrics import (
    hit_rate_at_k,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    target_ranks,
)

RANK_METRICS = (ndcg_at_k, recall_at_k, mrr_at_k, hit_rate_at_k)


def ranks_of(scores: list[float], targets: list[int], history: list[int]) -> list[int]:
    out = target_ranks(np.array([scores]), [np.array(targets)], [np.array(history, dtype=int)])
    return out[0].tolist()


# -- target_ranks by hand ------------------------------------------------------------------
def test_single_target_pessimistic_rank_with_a_tie() -> None:
    # Items 0..4; the target (item 3, score 0.5) is beaten by 0 (0.9) and 2 (0.7) and tied
    # with item 1 (0.5), which wins the tie: rank 3.
    scores = [0.9, 0.5, 0.7, 0.5, 0.1]
    assert ranks_of(scores, [3], []) == [3]
    # Item 0 in the history leaves the candidates: rank 2, NDCG = 1/log2(4) = 0.5.
    ranks = target_ranks(np.array([scores]), [np.array([3])], [np.array([0])])
    assert ranks[0].tolist() == [2]
    assert ndcg_at_k(ranks, 5)[0] == pytest.approx(0.5)
    assert mrr_at_k(ranks, 5)[0] == pytest.approx(1 / 3)
    assert hit_rate_at_k(ranks, 2)[0] == 0.0
    assert hit_rate_at_k(ranks, 3)[0] == 1.0
    # Items 0 and 1 in the history: rank 1, NDCG = 1/log2(3).
    ranks = target_ranks(np.array([scores]), [np.array([3])], [np.array([0, 1])])
    assert ranks[0].tolist() == [1]
    assert ndcg_at_k(ranks, 5)[0] == pytest.approx(1 / math.log2(3))
    assert mrr_at_k(ranks, 5)[0] == pytest.approx(0.5)


def test_history_item_with_the_top_score_does_not_push_the_target_down() -> None:
    assert ranks_of([10.0, 1.0, 0.0, 0.5], [1], [0]) == [0]
    assert ranks_of([10.0, 1.0, 0.0, 0.5], [1], []) == [1]


def test_target_in_history_stays_a_candidate_for_itself() -> None:
    scores = [0.2, 0.9, 0.8, 0.1]
    # Target 1 is in the history; item 2 (also history) is not a candidate: rank 0.
    assert ranks_of(scores, [1], [1, 2]) == [0]
    # Target 3 (history) competes with the unseen items 0 and 1 only: rank 2.
    assert ranks_of(scores, [3], [2, 3]) == [2]


def test_all_equal_scores_give_the_last_candidate_rank() -> None:
    # Six items, one in the history: five candidates, the target is placed last (rank 4).
    assert ranks_of([0.3] * 6, [3], [0]) == [4]
    assert ranks_of([0.0] * 6, [2], []) == [5]


def test_nan_counts_as_minus_infinity_and_loses_ties() -> None:
    scores = [float("nan"), -math.inf, 0.3, -math.inf]
    # Target 1 (-inf): items 0 (NaN = -inf), 2 and 3 (-inf) are all >= it.
    assert ranks_of(scores, [1], []) == [3]
    assert ranks_of(scores, [0], []) == [3]
    assert ranks_of(scores, [2], []) == [0]


def test_multi_target_ranks_and_metrics_by_hand() -> None:
    scores = [0.9, 0.8, 0.8, 0.6, 0.5, 0.1]
    # Targets 1 and 2 (0.8) are beaten only by item 0; they tie with each other without
    # penalty. Target 4 (0.5) is beaten by the non-targets 0, 3 and the targets 1, 2.
    ranks = target_ranks(np.array([scores]), [np.array([1, 2, 4])], [np.array([], dtype=int)])
    assert ranks[0].tolist() == [1, 1, 4]

    # In the list the tied targets take positions 1 and 2 (either order): positions 1, 2, 4.
    dcg5 = 1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(6)
    idcg5 = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranks, 5)[0] == pytest.approx(dcg5 / idcg5)
    assert ndcg_at_k(ranks, 2)[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(ranks, 1)[0] == 0.0
    assert recall_at_k(ranks, 1)[0] == 0.0
    assert recall_at_k(ranks, 2)[0] == pytest.approx(1 / 2)  # denominator min(|T|, k) = 2
    assert recall_at_k(ranks, 3)[0] == pytest.approx(2 / 3)
    assert recall_at_k(ranks, 5)[0] == pytest.approx(3 / 3)
    assert mrr_at_k(ranks, 5)[0] == pytest.approx(1 / 2)
    assert mrr_at_k(ranks, 1)[0] == 0.0
    assert hit_rate_at_k(ranks, 1)[0] == 0.0
    assert hit_rate_at_k(ranks, 2)[0] == 1.0


def test_ranks_keep_target_order_and_drop_duplicates() -> None:
    scores = [0.1, 0.9, 0.5, 0.7]
    assert ranks_of(scores, [2, 1, 2], []) == [2, 0]


def test_metrics_from_ranks_by_hand() -> None:
    ranks = [np.array([0]), np.array([3]), np.array([10]), np.array([], dtype=np.int64)]
    np.testing.assert_allclose(ndcg_at_k(ranks, 5), [1.0, 1 / math.log2(5), 0.0, 0.0])
    np.testing.assert_allclose(mrr_at_k(ranks, 5), [1.0, 0.25, 0.0, 0.0])
    np.testing.assert_allclose(hit_rate_at_k(ranks, 5), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(recall_at_k(ranks, 5), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(recall_at_k(ranks, 3), [1.0, 0.0, 0.0, 0.0])


def test_ndcg_is_not_monotone_in_k_with_several_targets() -> None:
    # The ideal DCG grows with k while a far second target adds nothing: by design.
    ranks = [np.array([0, 7])]
    assert ndcg_at_k(ranks, 1)[0] == 1.0
    assert ndcg_at_k(ranks, 2)[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))


@pytest.mark.parametrize(
    ("scores", "targets", "exclude", "message"),
    [
        (np.zeros(5), [np.array([1])], [np.array([0])], "2-D"),
        (np.zeros((1, 5)), [np.array([5])], [np.array([0])], "target item index 5"),
        (np.zeros((1, 5)), [np.array([1])], [np.array([-1])], "excluded item index -1"),
        (np.zeros((2, 5)), [np.array([1])], [np.array([0])] * 2, "2 rows"),
    ],
)
def test_target_ranks_rejects_bad_input(
    scores: np.ndarray, targets: list[np.ndarray], exclude: list[np.ndarray], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        target_ranks(scores, targets, exclude)


def test_bad_k_is_rejected() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        ndcg_at_k([np.array([0])], 0)


# -- property tests ------------------------------------------------------------------------
@st.composite
def ranking_problems(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Small integer-valued score matrices (many ties), targets and histories."""
    n_items = draw(st.integers(2, 12))
    n_users = draw(st.integers(1, 4))
    scores = np.array(
        draw(st.lists(st.integers(-3, 3), min_size=n_items * n_users, max_size=n_items * n_users)),
        dtype=np.float64,
    ).reshape(n_users, n_items)
    items = st.integers(0, n_items - 1)
    targets = [
        np.array(draw(st.lists(items, min_size=1, max_size=4, unique=True))) for _ in range(n_users)
    ]
    histories = [
        np.array(draw(st.lists(items, max_size=n_items - 1, unique=True)), dtype=np.int64)
        for _ in range(n_users)
    ]
    return scores, targets, histories


@settings(max_examples=60, deadline=None)
@given(ranking_problems(), st.integers(1, 15))
def test_metrics_lie_in_unit_interval(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], k: int
) -> None:
    ranks = target_ranks(*problem)
    for fn in RANK_METRICS:
        values = fn(ranks, k)
        assert values.shape == (len(ranks),)
        assert np.all((values >= 0) & (values <= 1 + 1e-12))


@settings(max_examples=60, deadline=None)
@given(ranking_problems())
def test_single_target_metrics_are_monotone_in_k(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]],
) -> None:
    scores, targets, histories = problem
    ranks = target_ranks(scores, [t[:1] for t in targets], histories)
    for fn in RANK_METRICS:
        previous = np.zeros(len(ranks))
        for k in range(1, scores.shape[1] + 2):
            current = fn(ranks, k)
            assert np.all(current >= previous - 1e-12)
            previous = current
    np.testing.assert_array_equal(recall_at_k(ranks, 3), hit_rate_at_k(ranks, 3))


@settings(max_examples=60, deadline=None)
@given(ranking_problems(), st.integers(1, 15))
def test_recall_is_one_when_every_target_ranks_inside_k(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], k: int
) -> None:
    ranks = target_ranks(*problem)
    # Targets sharing the worst rank fill consecutive slots: the last one sits at
    # max(rank) + (ties at max(rank)) - 1, and recall@k is 1 exactly when that is inside k.
    last = np.array([r.max() + (r == r.max()).sum() - 1 for r in ranks])
    inside = last < k
    recall = recall_at_k(ranks, k)
    assert np.all(recall[inside] == 1.0)
    assert np.all(hit_rate_at_k(ranks, k)[inside] == 1.0)
    fits = np.array([len(r) <= k for r in ranks])
    assert np.all(recall[~inside & fits] < 1.0)
    single = np.array([len(r) == 1 for r in ranks])
    np.testing.assert_array_equal(inside[single], [bool(r[0] < k) for r in ranks if len(r) == 1])


@settings(max_examples=60, deadline=None)
@given(ranking_problems(), st.integers(1, 15))
def test_a_perfect_scorer_gets_one(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], k: int
) -> None:
    scores, targets, histories = problem
    perfect = np.zeros_like(scores)
    for u, t in enumerate(targets):
        perfect[u, t] = 1.0
    ranks = target_ranks(perfect, targets, histories)
    for r, t in zip(ranks, targets, strict=True):
        assert sorted(r.tolist()) == [0] * len(t)
    for fn in RANK_METRICS:
        np.testing.assert_array_equal(fn(ranks, k), 1.0)


@settings(max_examples=60, deadline=None)
@given(ranking_problems(), st.integers(-1000, 1000))
def test_adding_a_constant_changes_nothing(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], shift: int
) -> None:
    scores, targets, histories = problem
    before = target_ranks(scores, targets, histories)
    after = target_ranks(scores + shift, targets, histories)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(ranking_problems(), st.randoms(use_true_random=False))
def test_permuting_items_consistently_changes_nothing(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]], rnd: random.Random
) -> None:
    scores, targets, histories = problem
    n_items = scores.shape[1]
    new_index = np.array(rnd.sample(range(n_items), n_items))
    permuted = np.empty_like(scores)
    permuted[:, new_index] = scores
    before = target_ranks(scores, targets, histories)
    after = target_ranks(
        permuted, [new_index[t] for t in targets], [new_index[h] for h in histories]
    )
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(ranking_problems())
def test_ranks_match_the_definition_brute_force(
    problem: tuple[np.ndarray, list[np.ndarray], list[np.ndarray]],
) -> None:
    scores, targets, histories = problem
    ranks = target_ranks(scores, targets, histories)
    for u in range(len(scores)):
        s, t, h = scores[u], set(targets[u].tolist()), set(histories[u].tolist())
        for pos, target in enumerate(targets[u]):
            expected = sum(
                1 for j in range(len(s)) if j not in h and j not in t and s[j] >= s[target]
            ) + sum(1 for j in t if j != target and s[j] > s[target])
            assert ranks[u][pos] == expected


def test_targets_tied_with_each_other_fill_consecutive_positions() -> None:
    # Targets 1 and 2 share the top score: both get rank 0, but only one fits the top 1.
    ranks = target_ranks(
        np.array([[0.5, 0.9, 0.9, 0.1]]), [np.array([1, 2])], [np.array([], dtype=int)]
    )
    assert ranks[0].tolist() == [0, 0]
    assert ndcg_at_k(ranks, 1)[0] == 1.0
    assert recall_at_k(ranks, 1)[0] == 1.0
    assert ndcg_at_k(ranks, 2)[0] == pytest.approx(1.0)
    # Tied at rank 1 behind item 0: positions 1 and 2.
    ranks = [np.array([1, 1])]
    assert recall_at_k(ranks, 2)[0] == pytest.approx(1 / 2)
    assert ndcg_at_k(ranks, 3)[0] == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    )
