"""Most-popular baseline: the contract plus hand-checked ordering."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from contract import RecommenderContract

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError
from lmrec.models.base import BaseRecommender
from lmrec.models.baselines import PopConfig, PopularityRecommender


class TestPopContract(RecommenderContract):
    learns = False

    def make_model(self) -> BaseRecommender:
        return PopularityRecommender()


def _data(pairs: list[tuple[str, str]], items: list[str]) -> InteractionData:
    frame = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    frame["timestamp"] = np.arange(len(frame), dtype=np.int64)
    users = IdMap(sorted(frame["user_id"].unique()), "user")
    return InteractionData.from_frame(frame, users, IdMap(items, "item"))


def test_orders_by_count_then_index() -> None:
    # counts: a=1, b=3, c=1, d=3, e=0
    pairs = [("x", "b"), ("y", "b"), ("z", "b"), ("x", "d"), ("y", "d"), ("z", "d")]
    pairs += [("x", "a"), ("y", "c")]
    model = PopularityRecommender()
    model.fit(_data(pairs, ["a", "b", "c", "d", "e"]))
    np.testing.assert_array_equal(model.item_counts, [1, 3, 1, 3, 0])
    scores = model.score(np.array([0, -1]), [np.array([1]), np.array([], dtype=np.int64)])
    assert (scores[0] == scores[1]).all()  # the same for every user
    assert list(np.argsort(-scores[0], kind="stable")) == [1, 3, 0, 2, 4]
    assert len(np.unique(scores[0])) == 5  # ties broken in the scores, not left to chance
    recs = model.recommend("z", k=5, exclude_seen=False)
    assert [r.item_id for r in recs] == ["b", "d", "a", "c", "e"]
    assert [r.item_id for r in model.recommend("y", k=5)] == ["a", "e"]


def test_config() -> None:
    assert PopularityRecommender().config_dict() == {"type": "pop"}
    with pytest.raises(ConfigError, match="neighbors"):
        PopularityRecommender({"neighbors": 3})
    assert PopularityRecommender(PopConfig()).config == PopConfig()
