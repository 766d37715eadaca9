"""Item-kNN baseline: the contract plus hand-computed similarities."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from contract import N_ITEMS, RecommenderContract, planted_data

from lmrec.errors import ConfigError
from lmrec.models.base import BaseRecommender
from lmrec.models.baselines import ItemKNNConfig, ItemKNNRecommender
from lmrec.models.baselines.itemknn import item_similarities


class TestItemKNNContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return ItemKNNRecommender(neighbors=20)


# 4 users x 3 items: item counts n = (3, 2, 2); co-counts: (0,1)=2, (0,2)=2, (1,2)=1.
MATRIX = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=np.float32))


def test_cosine_by_hand() -> None:
    w = item_similarities(MATRIX, neighbors=10).toarray()
    s01, s02, s12 = 2 / np.sqrt(6), 2 / np.sqrt(6), 1 / 2
    expected = np.array([[0, s01, s02], [s01, 0, s12], [s02, s12, 0]])
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_shrinkage_by_hand() -> None:
    w = item_similarities(MATRIX, neighbors=10, shrinkage=1.0).toarray()
    assert w[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1), rel=1e-6)
    assert w[1, 2] == pytest.approx(1 / (2 + 1), rel=1e-6)


def test_keeps_top_neighbors_per_target_item() -> None:
    w = item_similarities(MATRIX, neighbors=1).toarray()
    # each column (target item) keeps its single most similar item; items 1 and 2 tie as
    # neighbours of item 0 and the lower index wins
    assert (np.count_nonzero(w, axis=0) == 1).all()
    assert w[1, 0] > 0 and w[0, 1] > 0 and w[0, 2] > 0


def test_normalize_columns_sum_to_one() -> None:
    w = item_similarities(MATRIX, neighbors=10, normalize=True).toarray()
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-6)


def test_duplicate_interactions_count_once() -> None:
    doubled = MATRIX.copy()
    doubled.data[:] = 3.0
    np.testing.assert_allclose(
        item_similarities(doubled, 10).toarray(), item_similarities(MATRIX, 10).toarray()
    )


def test_score_is_sum_of_history_similarities() -> None:
    train, _ = planted_data()
    model = ItemKNNRecommender(neighbors=5)
    model.fit(train)
    w = model.similarity.toarray()  # type: ignore[union-attr]
    hist = np.array([0, 3, 7])
    scores = model.score(np.array([-1]), [hist])[0]
    np.testing.assert_allclose(scores, w[hist].sum(axis=0), rtol=1e-6)
    assert (np.count_nonzero(w, axis=0) <= 5).all()
    assert scores.shape == (N_ITEMS,)


def test_config_validation() -> None:
    assert ItemKNNRecommender().config == ItemKNNConfig()
    with pytest.raises(ConfigError, match=r"neighbors.*0"):
        ItemKNNRecommender(neighbors=0)
    with pytest.raises(ConfigError, match="shrinkage"):
        ItemKNNRecommender({"shrinkage": -1.0})
    with pytest.raises(ConfigError, match="bogus"):
        ItemKNNRecommender(bogus=1)
