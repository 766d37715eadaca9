"""Explanations: leave-one-out contributions of history items, shared attributes, sentences."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmrec.attributes import ItemAttributes
from lmrec.errors import ConfigError
from lmrec.explain import (
    Contribution,
    Explainer,
    Explanation,
    distinct_recent,
    sentence,
    verb_for,
    without,
)
from lmrec.models.base import BaseRecommender
from lmrec.models.baselines import ItemKNNRecommender, PopularityRecommender, SASRecRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
from contract import N_ITEMS, planted_data

TINY_SASREC = {
    "dim": 16,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 12,
    "dropout": 0.1,
    "trainer": {"epochs": 3, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
}


def planted_catalog() -> dict[str, dict[str, object]]:
    """Items i0..i39: group A (0-19) and B (20-39); every fifth item is also "Rare"."""
    catalog: dict[str, dict[str, object]] = {}
    for i in range(N_ITEMS):
        cats = ["A" if i < N_ITEMS // 2 else "B"] + (["Rare"] if i % 5 == 0 else [])
        word = "castle" if i % 4 == 0 else "river"
        catalog[f"i{i}"] = {"title": f"Film {i} {word} (19{i + 50})", "categories": cats}
    return catalog


@pytest.fixture(scope="module")
def knn() -> ItemKNNRecommender:
    model = ItemKNNRecommender()
    model.fit(planted_data()[0])
    return model


@pytest.fixture(scope="module")
def sasrec() -> SASRecRecommender:
    model = SASRecRecommender(TINY_SASREC)
    model.fit(planted_data()[0])
    return model


def attributes_of(model: BaseRecommender) -> ItemAttributes:
    assert model.item_map is not None
    return ItemAttributes.from_catalog(model.item_map.ids, planted_catalog(), max_df=0.5)


def test_occlusion_weights_are_the_real_score_drops(sasrec: SASRecRecommender) -> None:
    history = sasrec.history_of("u3")
    history = np.concatenate([history, history[:2]])  # repeats: an item leaves entirely
    items = np.array([1, 5, 21, 33])
    occ = Explainer(sasrec, attributes_of(sasrec)).contributions(3, history, items)
    assert sorted(occ.history_items.tolist()) == sorted(set(history.tolist()))
    full = sasrec.score(np.array([3]), [history])[0].astype(np.float64)
    for j, item in enumerate(occ.history_items):
        reduced = sasrec.score(np.array([3]), [without(history, int(item))])[0]
        np.testing.assert_allclose(occ.drops[j], full[items] - reduced[items], atol=1e-5)
    np.testing.assert_allclose(occ.base, full[items], atol=1e-5)


def test_item_knn_fast_path_equals_occlusion(knn: ItemKNNRecommender) -> None:
    history = knn.history_of("u4")
    items = np.arange(N_ITEMS)
    attrs = attributes_of(knn)
    fast = Explainer(knn, attrs).contributions(-1, history, items)
    slow = Explainer(knn, attrs, fast_paths=False).contributions(-1, history, items)
    assert fast.method == "similarity" and slow.method == "occlusion"
    np.testing.assert_array_equal(fast.history_items, slow.history_items)
    np.testing.assert_allclose(fast.drops, slow.drops, atol=1e-5)


@pytest.mark.parametrize("which", ["knn", "sasrec"])
def test_explanations_cite_only_history_items(which: str, request: pytest.FixtureRequest) -> None:
    model: BaseRecommender = request.getfixturevalue(which)
    pipeline = Pipeline(model, catalog=planted_catalog())  # type: ignore[arg-type]
    n_cited = 0
    for user in ("u0", "u1", "u6", "u9"):
        history = set(model.item_map.decode(model.history_of(user)))  # type: ignore[union-attr]
        for rec in pipeline.recommend(user, k=10, explain=True):
            e = rec.explanation
            assert e is not None and e.item_id == rec.item_id
            assert set(e.cited) <= history
            weights = [c.weight for c in e.because]
            assert all(w > 0 for w in weights) and weights == sorted(weights, reverse=True)
            assert sum(c.share for c in e.because) <= 1 + 1e-9
            assert len(e.because) <= 3
            n_cited += len(e.because)
    assert n_cited > 0
    # an ad-hoc history: only its items are cited
    ad_hoc = ["i2", "i7", "i11"]
    for e in pipeline.explain(["i3", "i25"], history=ad_hoc):
        assert set(e.cited) <= set(ad_hoc)


def test_shared_attributes_come_from_the_cited_items(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn, catalog=planted_catalog())
    [e] = pipeline.explain(["i10"], history=["i0", "i5", "i4"])  # i10: A, Rare, river
    assert e.cited and set(e.cited) <= {"i0", "i5", "i4"}
    cited_cats = {c for i in e.cited for c in planted_catalog()[i]["categories"]}  # type: ignore[attr-defined]
    assert e.categories and set(e.categories) <= {"A", "Rare"} & cited_cats
    assert e.sentence.startswith("Because you liked Film ")
    own = {"A", "Rare", "film", "river"}
    for c in e.because:
        info = planted_catalog()[c.item_id]
        assert set(c.shared) <= own & {*info["categories"], "film", "castle", "river"}  # type: ignore[misc]


def test_a_model_that_ignores_the_history_cites_nothing() -> None:
    pop = PopularityRecommender()
    pop.fit(planted_data()[0])
    pipeline = Pipeline(pop, catalog=planted_catalog())
    recs = pipeline.recommend(history=["i1", "i2"], k=3, explain=True)
    for rec in recs:
        assert rec.explanation is not None and rec.explanation.because == []
        assert rec.explanation.sentence.startswith("Matches your history as a whole")
    [empty] = pipeline.explain(["i3"], history=[])
    assert empty.sentence == "Recommended without a history to draw on"


def test_sentence_names_the_strongest_items_and_shared_attributes() -> None:
    e = Explanation(
        item_id="x",
        title="Aliens (1986)",
        score=1.0,
        because=[
            Contribution("1", "Alien (1979)", 0.8, 0.5, ["Sci-Fi", "alien"]),
            Contribution("2", "Blade Runner (1982)", 0.4, 0.25, ["Sci-Fi"]),
            Contribution("3", "Heat (1995)", 0.3, 0.2, ["Drama"]),
        ],
        categories=["Drama", "Sci-Fi"],  # Drama: only the third, unnamed item has it
        keywords=["alien"],
    )
    assert (
        sentence(e, "watched")
        == "Because you watched Alien (1979) and Blade Runner (1982) — Sci-Fi"
    )
    e.because[1].weight = 0.1  # under a quarter of the first: not named
    e.categories = []
    assert sentence(e, "bought") == "Because you bought Alien (1979) — alien"
    assert verb_for("ml-100k") == "watched"
    assert verb_for("amazon-scientific") == "bought"
    assert verb_for("steam") == "liked"


def test_recommend_json_carries_the_explanation(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn, catalog=planted_catalog())
    plain = pipeline.recommend("u2", k=5)
    explained = pipeline.recommend("u2", k=5, explain=True)
    assert [r.item_id for r in plain] == [r.item_id for r in explained]
    assert plain[0].to_dict()["explanation"] is None
    d = explained[0].to_dict()["explanation"]
    assert d["item_id"] == explained[0].item_id
    assert {"because", "categories", "keywords", "sentence", "method"} <= set(d)
    assert d["because"][0]["weight"] > 0


def test_history_helpers_and_bad_options(knn: ItemKNNRecommender) -> None:
    assert distinct_recent(np.array([3, 1, 3, 2])).tolist() == [2, 3, 1]
    assert without(np.array([3, 1, 3, 2]), 3).tolist() == [1, 2]
    with pytest.raises(ConfigError, match="max_items"):
        Explainer(knn, attributes_of(knn), max_items=0)
    with pytest.raises(ConfigError, match="user_id or a history"):
        Pipeline(knn).explain(["i1"])
