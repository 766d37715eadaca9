"""The CTR profile's top categories (``profile_categories``), off by default and backward
compatible with catalogs and configs saved before it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lmrec.data import load_dataset
from lmrec.data.schema import Dataset, InteractionData
from lmrec.models.ctr import CTRConfig, CTRModel, profile_text
from lmrec.models.ctr._catalog import CTRCatalog


@pytest.fixture(scope="module")
def dataset(movielens_like: Path) -> Dataset:
    return load_dataset(movielens_like, use_cache=False)


@pytest.fixture(scope="module")
def catalog(dataset: Dataset) -> CTRCatalog:
    return CTRCatalog.from_dataset(dataset)


def test_profile_text_shows_categories_before_titles() -> None:
    text = profile_text(["Heat (1995)"], {"age": "24"}, ["Drama", "Sci-Fi"])
    assert text == "age: 24; likes: Drama, Sci-Fi; recent: Heat (1995)"
    assert profile_text(["Heat (1995)"], {"age": "24"}, []) == profile_text(
        ["Heat (1995)"], {"age": "24"}
    )
    assert profile_text([], None, ["Drama"]) == "likes: Drama"


def test_default_config_keeps_the_old_profile(catalog: CTRCatalog) -> None:
    config = CTRConfig()
    assert config.profile_categories == 0
    assert config.history_items == config.profile_items
    assert CTRConfig(profile_categories=2, profile_window=30).history_items == 30
    items = np.array([40, 3, 2])  # newest first
    old = profile_text([catalog.item_titles[i] for i in items], catalog.attributes_of(0))
    assert catalog.profile(0, items) == old
    assert catalog.profile(0, items, None, 0) == old


def test_profile_categories_weigh_the_window_and_cut_the_titles(catalog: CTRCatalog) -> None:
    item_map = catalog.item_map
    action = [item_map.index(str(i)) for i in (1, 2, 3)]  # Action (items 1..30)
    love = item_map.index("40")  # Romance
    items = np.array([love, *action])  # newest first
    text = catalog.profile(0, items, titles=1, categories=1)
    assert "likes: Action" in text
    assert text.endswith("recent: " + catalog.item_titles[love])


def test_catalog_round_trip_and_old_catalogs(catalog: CTRCatalog, tmp_path: Path) -> None:
    catalog.save(tmp_path)
    again = CTRCatalog.load(tmp_path)
    assert again.item_categories == catalog.item_categories
    data = json.loads((tmp_path / "catalog.json").read_text())
    del data["item_categories"]  # a catalog saved before categories were kept
    (tmp_path / "catalog.json").write_text(json.dumps(data))
    old = CTRCatalog.load(tmp_path)
    assert old.item_categories is None
    items = np.array([0, 1])
    assert old.profile(0, items, titles=1, categories=2) == catalog.profile(0, items[:1])


def test_examples_and_scoring_read_the_whole_window(
    dataset: Dataset, catalog: CTRCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = CTRModel(profile_items=2, profile_categories=1, profile_window=6)
    train = InteractionData.from_frame(dataset.interactions, dataset.user_map(), dataset.item_map())
    examples = model.training_examples(train)
    assert examples.profiles.shape[1] == 6
    assert (examples.profiles[:, 5] >= 0).any()  # long histories fill the whole window

    seen: list[str] = []

    class RecordingPairs:
        def pairs(self, profiles: Sequence[str], items: np.ndarray) -> list[list[int]]:
            seen.extend(profiles)
            return [[0] for _ in profiles]

    model.catalog = catalog
    model.pairs = RecordingPairs()  # type: ignore[assignment]
    monkeypatch.setattr(model, "_logits", lambda ids, show=False: np.zeros(len(ids)))
    history = np.array([catalog.item_map.index(str(i)) for i in (1, 2, 3, 4, 5)])
    model.score_candidates(np.array([0]), [history], [np.array([50])])
    [text] = seen
    assert "likes: Action" in text
    assert text.count(";") == text.count("; ") and text.split("recent: ")[1].count("; ") == 1
