"""The pipeline: retrieval → optional ranking → top-k, by user or by history, saved as a run."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmrec.errors import ConfigError, ModelFileError, UnknownIdError
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
from contract import planted_data


class FavouriteRanker:
    """A ranker stub that likes one item best and otherwise follows item index."""

    def __init__(self, favourite: int) -> None:
        self.favourite = favourite
        self.calls = 0

    def score_candidates(
        self, users: np.ndarray, histories: Sequence[np.ndarray], candidates: Sequence[Any]
    ) -> list[np.ndarray]:
        self.calls += 1
        out = []
        for cands in candidates:
            c = np.asarray(cands)
            p = 0.5 - c / 1000.0
            p[c == self.favourite] = 0.99
            out.append(p.astype(np.float32))
        return out


@pytest.fixture(scope="module")
def knn() -> ItemKNNRecommender:
    model = ItemKNNRecommender()
    model.fit(planted_data()[0])
    return model


def test_recommend_by_user_matches_the_model(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn, catalog={"i3": {"title": "Three", "categories": ["A"]}})
    recs = pipeline.recommend("u1", k=5)
    assert [r.item_id for r in recs] == [r.item_id for r in knn.recommend("u1", k=5)]
    assert [r.rank for r in recs] == [1, 2, 3, 4, 5]
    seen = set(knn.item_map.decode(knn.history_of("u1")))  # type: ignore[union-attr]
    assert not seen & {r.item_id for r in recs}


def test_recommend_by_history_of_item_ids(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn)
    recs = pipeline.recommend(history=["i0", "i2", "i4"], k=10)
    assert len(recs) == 10
    assert not {"i0", "i2", "i4"} & {r.item_id for r in recs}
    # the history is from group A (items 0-19): so are most recommendations
    assert sum(int(r.item_id[1:]) < 20 for r in recs) >= 8


def test_bad_requests_raise_clear_errors(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn)
    with pytest.raises(UnknownIdError, match="nope"):
        pipeline.recommend(history=["i1", "nope"])
    with pytest.raises(UnknownIdError, match="ghost"):
        pipeline.recommend("ghost")
    with pytest.raises(ConfigError, match="user_id or a history"):
        pipeline.recommend()
    with pytest.raises(ConfigError, match="k must be"):
        pipeline.recommend("u1", k=0)
    with pytest.raises(ConfigError, match="top_n"):
        Pipeline(knn, top_n=0)


def test_ranker_reorders_only_the_top_n(knn: ItemKNNRecommender) -> None:
    plain = Pipeline(knn).recommend("u0", k=20)
    favourite = int(plain[7].item_id[1:])
    outside = int(plain[15].item_id[1:])
    ranked = Pipeline(knn, FavouriteRanker(favourite), top_n=10).recommend("u0", k=20)  # type: ignore[arg-type]
    assert ranked[0].item_id == f"i{favourite}"
    assert ranked[0].score == pytest.approx(0.99)
    assert {r.item_id for r in ranked[:10]} == {r.item_id for r in plain[:10]}
    assert ranked[0].retrieval_score == pytest.approx(plain[7].score)
    # a good ranker score cannot lift an item from outside the top-N
    beyond = Pipeline(knn, FavouriteRanker(outside), top_n=10).recommend("u0", k=20)  # type: ignore[arg-type]
    assert beyond[0].item_id != f"i{outside}"


def test_save_and_load_round_trip(knn: ItemKNNRecommender, tmp_path: Path) -> None:
    catalog = {"i3": {"title": "Three", "categories": ["A"]}}
    Pipeline(knn, top_n=7, catalog=catalog).save(tmp_path / "run")
    loaded = Pipeline.load(tmp_path / "run")
    assert loaded.top_n == 7 and loaded.ranker is None
    assert loaded.catalog == catalog
    assert [r.item_id for r in loaded.recommend("u2", k=5)] == [
        r.item_id for r in Pipeline(knn).recommend("u2", k=5)
    ]


def test_load_without_model_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="holds no model"):
        Pipeline.load(tmp_path)


def test_excluded_items_are_never_recommended(knn: ItemKNNRecommender) -> None:
    groups = {
        f"i{j}": {"title": f"I{j}", "categories": ["A" if j < 20 else "B"]} for j in range(40)
    }
    pipeline = Pipeline(knn, catalog=groups)
    plain = [r.item_id for r in pipeline.recommend("u1", k=10)]
    gone = set(plain[:3]) | {"not-an-item"}
    kept = pipeline.recommend("u1", k=10, exclude=gone)
    # the rest move up in order (the boundary of the plain top 10 may hold ties)
    assert [r.item_id for r in kept[:6]] == plain[3:9]
    assert [r.rank for r in kept] == list(range(1, 11)) and not gone & {r.item_id for r in kept}
    spread = pipeline.recommend("u1", k=10, exclude=gone, diversity=0.5)
    assert not gone & {r.item_id for r in spread}
