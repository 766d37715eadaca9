"""AUC, GAUC and log loss against hand counts and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmrec.evaluation.metrics import auc, gauc, log_loss


def pair_count_auc(labels: list[int], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y == 1]
    neg = [s for y, s in zip(labels, scores, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_by_hand_with_a_tie() -> None:
    labels = [1, 0, 1, 0, 1, 0]
    scores = [0.9, 0.8, 0.4, 0.4, 0.3, 0.1]
    # Positive 0.9 beats all three negatives (3); positive 0.4 beats 0.1 and ties 0.4
    # (1.5); positive 0.3 beats 0.1 (1): 5.5 of 9 pairs.
    assert auc(np.array(labels), np.array(scores)) == pytest.approx(5.5 / 9)
    assert auc(np.array(labels, dtype=bool), np.array(scores)) == pytest.approx(5.5 / 9)


def test_auc_extremes_and_nan() -> None:
    assert auc(np.array([0, 0, 1]), np.array([0.1, 0.2, 0.3])) == 1.0
    assert auc(np.array([1, 0, 0]), np.array([0.1, 0.2, 0.3])) == 0.0
    assert auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    # NaN counts as -inf: the positive loses to the negative.
    assert auc(np.array([1, 0]), np.array([np.nan, 0.0])) == 0.0


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([], [], "only one class"),
        ([1, 0], [0.1], "2 entries but scores has 1"),
        ([1, 2], [0.1, 0.2], "labels must be 0/1"),
    ],
)
def test_auc_rejects_bad_input(labels: list[int], scores: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        auc(np.array(labels), np.array(scores))


def test_gauc_by_hand() -> None:
    groups = ["a", "a", "a", "b", "b", "b", "b", "c", "c"]
    labels = [1, 0, 0, 1, 1, 0, 0, 1, 1]
    scores = [0.5, 0.6, 0.2, 0.9, 0.3, 0.4, 0.1, 0.7, 0.2]
    # a: the positive 0.5 beats 0.2, loses to 0.6 -> 1/2, 3 impressions.
    # b: 0.9 beats both (2), 0.3 beats 0.1 (1) -> 3/4, 4 impressions.
    # c: positives only -> left out.
    expected = (3 * 0.5 + 4 * 0.75) / 7
    assert gauc(np.array(groups), np.array(labels), np.array(scores)) == pytest.approx(expected)
    # Integer group ids give the same.
    codes = np.array([7, 7, 7, 3, 3, 3, 3, 9, 9])
    assert gauc(codes, np.array(labels), np.array(scores)) == pytest.approx(expected)


def test_gauc_needs_a_group_with_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        gauc(np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="groups has 2"):
        gauc(np.array([0, 0]), np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]))


def test_log_loss_by_hand() -> None:
    labels = np.array([1, 0, 1])
    probs = np.array([0.8, 0.4, 1.0])  # the last is clipped to 1 - 1e-7
    expected = -(math.log(0.8) + math.log(0.6) + math.log(1 - 1e-7)) / 3
    assert log_loss(labels, probs) == pytest.approx(expected, rel=1e-12)
    # A certain, wrong prediction costs -log(eps), not infinity.
    assert log_loss(np.array([1]), np.array([0.0]), eps=1e-3) == pytest.approx(-math.log(1e-3))
    with pytest.raises(ValueError, match="probs has 2"):
        log_loss(labels, np.array([0.1, 0.2]))


@st.composite
def labelled_scores(draw: st.DrawFn, distinct: bool) -> tuple[list[int], list[float]]:
    n = draw(st.integers(2, 30))
    labels = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    if 0 not in labels or 1 not in labels:
        labels[0], labels[1] = 0, 1
    values = st.integers(-50, 50) if distinct else st.integers(-3, 3)
    scores = draw(st.lists(values, min_size=n, max_size=n, unique=distinct))
    return labels, [float(s) for s in scores]


@settings(max_examples=80, deadline=None)
@given(labelled_scores(distinct=False))
def test_auc_equals_the_brute_force_pair_count(data: tuple[list[int], list[float]]) -> None:
    labels, scores = data
    assert auc(np.array(labels), np.array(scores)) == pytest.approx(pair_count_auc(labels, scores))


@settings(max_examples=80, deadline=None)
@given(labelled_scores(distinct=True))
def test_auc_of_negated_scores_is_one_minus_auc(data: tuple[list[int], list[float]]) -> None:
    labels, scores = data
    y, s = np.array(labels), np.array(scores)
    assert auc(y, s) == pytest.approx(1 - auc(y, -s))


@settings(max_examples=60, deadline=None)
@given(labelled_scores(distinct=False), st.data())
def test_gauc_equals_weighted_brute_force(
    data: tuple[list[int], list[float]], more: st.DataObject
) -> None:
    labels, scores = data
    groups = more.draw(st.lists(st.integers(0, 3), min_size=len(labels), max_size=len(labels)))
    total, weight = 0.0, 0
    for g in set(groups):
        ys = [y for y, gg in zip(labels, groups, strict=True) if gg == g]
        ss = [s for s, gg in zip(scores, groups, strict=True) if gg == g]
        if 0 in ys and 1 in ys:
            total += len(ys) * pair_count_auc(ys, ss)
            weight += len(ys)
    if weight == 0:
        with pytest.raises(ValueError):
            gauc(np.array(groups), np.array(labels), np.array(scores))
    else:
        got = gauc(np.array(groups), np.array(labels), np.array(scores))
        assert got == pytest.approx(total / weight)
