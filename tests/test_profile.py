"""User profiles: recency-weighted categories and keywords, recent vs long-term views."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmrec.attributes import ItemAttributes, display_title, keyword_tokens
from lmrec.errors import ConfigError
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.pipeline import Pipeline
from lmrec.profile import build_profile, recency_weights, top_categories, weighted_terms

sys.path.insert(0, str(Path(__file__).parent / "models"))
from contract import planted_data


def catalog_attributes() -> ItemAttributes:
    """Items 0-5 Drama (0, 1 also Romance), items 6-9 Sci-Fi; titles share a few words."""
    catalog = {
        str(i): {
            "title": f"{'Space' if i >= 6 else 'Love'} Story {i} (19{80 + i})",
            "categories": (["Drama", "Romance"] if i < 2 else ["Drama"]) if i < 6 else ["Sci-Fi"],
        }
        for i in range(10)
    }
    return ItemAttributes.from_catalog([str(i) for i in range(10)], catalog, max_df=0.6)


def test_recency_weights_halve_every_half_life() -> None:
    w = recency_weights(5, half_life=2.0)
    np.testing.assert_allclose(w, [0.25, 0.5**1.5, 0.5, 0.5**0.5, 1.0])
    np.testing.assert_array_equal(recency_weights(3, None), [1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match="half_life"):
        recency_weights(3, 0.0)


def test_weighted_terms_sum_to_one_and_split_an_items_weight() -> None:
    terms = weighted_terms([["A", "B"], ["A"], ["C"]], [1.0, 1.0, 2.0])
    assert [t.name for t in terms] == ["C", "A", "B"]  # C 2, A 1.5, B 0.5
    np.testing.assert_allclose([t.weight for t in terms], [0.5, 0.375, 0.125])
    assert [t.items for t in terms] == [1, 2, 1]
    assert weighted_terms([[], []], [1.0, 1.0]) == []


def test_profile_separates_recent_from_long_term_taste() -> None:
    attrs = catalog_attributes()
    # Long Drama past, then three recent Sci-Fi items.
    history = [0, 1, 2, 3, 4, 5, 0, 2, 6, 7, 8]
    profile = build_profile(history, attrs, user_id="u", half_life=2.0, recent=3, top=5)
    assert profile.n_items == 11
    assert [t.name for t in profile.recent.categories] == ["Sci-Fi"]
    assert profile.long_term.categories[0].name == "Drama"
    # recency decay puts the recent taste first overall
    assert profile.overall.categories[0].name == "Sci-Fi"
    for view in (profile.overall, profile.recent, profile.long_term):
        assert sum(t.weight for t in view.categories) == pytest.approx(1.0)
        weights = [t.weight for t in view.categories]
        assert weights == sorted(weights, reverse=True)
    assert profile.trending[0] == "Sci-Fi"
    assert profile.recent_titles[:2] == ["Space Story 8 (1988)", "Space Story 7 (1987)"]
    assert [t.name for t in profile.long_term.keywords][:2] == ["love", "space"]
    summary = profile.summary()
    assert summary.startswith("Sci-Fi ") and "lately: Sci-Fi" in summary
    assert profile.to_dict()["overall"]["categories"][0]["name"] == "Sci-Fi"


def test_empty_history_and_bad_options() -> None:
    attrs = catalog_attributes()
    empty = build_profile([], attrs)
    assert empty.summary() == "no history yet" and empty.overall.categories == []
    with pytest.raises(ConfigError, match="recent"):
        build_profile([1], attrs, recent=0)


def test_top_categories_weigh_recent_items_more() -> None:
    newest_first = [["Sci-Fi"], ["Drama"], ["Drama"]]
    assert top_categories(newest_first, 1, half_life=0.5) == ["Sci-Fi"]
    assert top_categories(newest_first, 1, half_life=None) == ["Drama"]
    assert top_categories(newest_first, 0) == []


def test_keywords_skip_stopwords_numbers_and_common_words() -> None:
    assert keyword_tokens("The Lord of the Rings (1978) 3 screws, 1kg") == ["lord", "ring", "screw"]
    catalog = {
        "a": {"title": "Industrial & Scientific filament red"},
        "b": {"title": "Industrial & Scientific filament blue"},
        "c": {"title": "Industrial & Scientific nozzle red"},
    }
    attrs = ItemAttributes.from_catalog(["a", "b", "c"], catalog, max_df=0.7)
    assert attrs.keywords[0] == ["filament", "red"] or attrs.keywords[0] == ["red", "filament"]
    assert "industrial" not in attrs.idf and "blue" not in attrs.idf  # everywhere / once
    assert display_title("A long product name. More text.", 60) == "A long product name"
    assert display_title("word " * 30, 20).endswith("…")


def test_pipeline_profile_by_user_and_by_history() -> None:
    knn = ItemKNNRecommender()
    knn.fit(planted_data()[0])
    catalog = {
        f"i{i}": {"title": f"Item {i}", "categories": ["A" if i < 20 else "B"]} for i in range(40)
    }
    pipeline = Pipeline(knn, catalog=catalog)
    profile = pipeline.profile("u0")  # even users: group A
    assert profile.user_id == "u0" and [t.name for t in profile.overall.categories] == ["A"]
    mixed = pipeline.profile(history=["i1", "i25", "i30"], recent=2)
    assert mixed.overall.categories[0].name == "B"
    assert mixed.recent.n_items == 2
