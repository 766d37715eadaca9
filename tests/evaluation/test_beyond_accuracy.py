"""Coverage, Gini, intra-list diversity, novelty and long-tail share by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmrec.evaluation.metrics import (
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    long_tail_share,
    novelty,
)


def test_coverage_counts_distinct_recommended_items() -> None:
    topk = np.array([[0, 1], [0, 2], [0, 1]])
    assert catalog_coverage(topk, 5) == pytest.approx(3 / 5)
    # Empty slots (-1) are not items.
    assert catalog_coverage(np.array([[0, -1], [-1, -1]]), 4) == pytest.approx(1 / 4)


def test_gini_by_hand() -> None:
    # Counts over 5 items: [3, 2, 1, 0, 0]; sorted [0, 0, 1, 2, 3], total 6. Weights
    # (2i - n - 1) = -4, -2, 0, 2, 4 give 0 + 0 + 0 + 4 + 12 = 16; Gini = 16 / (5 * 6).
    topk = np.array([[0, 1], [0, 2], [0, 1]])
    assert gini_index(topk, 5) == pytest.approx(16 / 30)
    equal = np.array([[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]])
    assert gini_index(equal, 5) == 0.0
    assert gini_index(np.array([[0], [0]]), 4) == pytest.approx(3 / 4)
    assert gini_index(np.full((2, 3), -1), 4) == 0.0


def test_intra_list_diversity_by_hand() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [0.0, 0.0]])
    # Orthogonal: distance 1. Items 0 and 2: cos = 1/sqrt(2).
    assert intra_list_diversity(np.array([[0, 1]]), vectors) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 2]]), vectors) == pytest.approx(1 - 1 / math.sqrt(2))
    three = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert intra_list_diversity(np.array([[0, 1, 2]]), vectors) == pytest.approx(three)
    # Averaged over users; a list with a single item (after -1 slots) is left out.
    topk = np.array([[0, 1, -1], [0, 2, -1], [2, -1, -1]])
    expected = (1 + (1 - 1 / math.sqrt(2))) / 2
    assert intra_list_diversity(topk, vectors) == pytest.approx(expected)
    # A zero vector has cosine 0 with everything; identical items have distance 0.
    assert intra_list_diversity(np.array([[3, 0]]), vectors) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[2, 2]]), vectors) == pytest.approx(0.0)


def test_novelty_by_hand() -> None:
    popularity = np.array([8, 4, 1, 0])
    # -log2(pop / 8): 0, 1, 3, and 3 for the unseen item (treated as seen once).
    topk = np.array([[0, 1], [2, 3]])
    assert novelty(topk, popularity, 8) == pytest.approx((0.5 + 3.0) / 2)
    assert novelty(np.array([[1, -1]]), popularity, 8) == pytest.approx(1.0)


def test_long_tail_share_by_hand() -> None:
    popularity = np.array([50, 10, 30, 5, 1, 0, 7, 2, 9, 4])
    # Head = the 2 most popular of 10 items: 0 and 2. Slots: 0 1 2 | 3 4 0 -> 3 of 6 in tail.
    topk = np.array([[0, 1, 2], [3, 4, 0]])
    assert long_tail_share(topk, popularity) == pytest.approx(0.5)
    assert long_tail_share(topk, popularity, head_share=0.0) == 1.0
    assert long_tail_share(topk, popularity, head_share=1.0) == 0.0
    with pytest.raises(ValueError, match="head_share"):
        long_tail_share(topk, popularity, head_share=1.5)


def test_bad_lists_are_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        catalog_coverage(np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="index 3 is outside"):
        gini_index(np.array([[0, 3]]), 3)
