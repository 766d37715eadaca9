"""``new_item_boost``: items without a training interaction get a per-user score boost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from contract import N_ITEMS, planted_data, planted_frames
from test_text_seq import planted_texts, small_model

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError, ModelFileError
from lmrec.models import load_model
from lmrec.models.text import TextSeqRecommender
from lmrec.models.text._content import boost_new_items

NEW_TEXTS = {
    "new-a": "title: alien spaceship remastered; genres: Sci-Fi",
    "new-b": "title: a summer wedding; genres: Romance",
}


@pytest.fixture(scope="module")
def fitted() -> TextSeqRecommender:
    model = small_model()
    model.fit(planted_data()[0])
    return model


def _grown(model: TextSeqRecommender, tmp_path: Path, boost: float) -> TextSeqRecommender:
    model.save(tmp_path / "copy")
    loaded = load_model(tmp_path / "copy")
    assert isinstance(loaded, TextSeqRecommender)
    loaded.add_items(NEW_TEXTS)
    loaded.set_new_item_boost(boost)
    return loaded


def _histories() -> list[np.ndarray]:
    seqs = planted_data()[0].sequences()
    return [seqs[0], seqs[1], np.array([3, 25]), np.zeros(0, dtype=np.int64)]


def test_boost_adds_standard_deviations_to_new_items_only(
    fitted: TextSeqRecommender, tmp_path: Path
) -> None:
    plain = _grown(fitted, tmp_path, 0.0)
    boosted = _grown(fitted, tmp_path, 0.7)
    assert not fitted.new_items().any()  # every planted item has a training interaction
    new = boosted.new_items()
    assert new.tolist() == [False] * N_ITEMS + [True, True]
    users = np.arange(4)
    base = plain.score(users, _histories())
    scores = boosted.score(users, _histories())
    np.testing.assert_array_equal(scores[:, :N_ITEMS], base[:, :N_ITEMS])
    expected = base[:, N_ITEMS:] + 0.7 * base.std(axis=1, keepdims=True)
    np.testing.assert_allclose(scores[:, N_ITEMS:], expected, rtol=1e-5, atol=1e-5)
    assert (scores[:, N_ITEMS:] > base[:, N_ITEMS:]).all()


def test_a_large_boost_puts_new_items_first_in_top_items(
    fitted: TextSeqRecommender, tmp_path: Path
) -> None:
    model = _grown(fitted, tmp_path, 5.0)
    model.fast_top_min_items = 0  # the dot-product shortcut must step aside for the boost
    users, histories = np.arange(4), _histories()
    tops = model.top_items(users, histories, n=5)
    scores = model.score(users, histories)
    for (items, values), row in zip(tops, scores, strict=True):
        assert set(items[:2].tolist()) == {N_ITEMS, N_ITEMS + 1}
        order = np.argsort(-row, kind="stable")[:5]
        np.testing.assert_array_equal(items, order)
        np.testing.assert_allclose(values, row[order], rtol=1e-6)


def test_boost_and_new_items_survive_save_and_load(
    fitted: TextSeqRecommender, tmp_path: Path
) -> None:
    model = _grown(fitted, tmp_path, 0.5)
    model.save(tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    assert isinstance(loaded, TextSeqRecommender)
    assert loaded.config.new_item_boost == 0.5
    np.testing.assert_array_equal(loaded.new_items(), model.new_items())
    users = np.arange(4)
    np.testing.assert_array_equal(
        loaded.score(users, _histories()), model.score(users, _histories())
    )


def test_an_item_without_training_interactions_counts_as_new() -> None:
    train = planted_frames()[0]
    unused = [f"unused-{j}" for j in range(2)]
    items = IdMap([*sorted(train["item_id"].unique().tolist()), *unused], "item")
    users = IdMap(sorted(train["user_id"].unique().tolist()), "user")
    data = InteractionData.from_frame(train, users, items)
    model = TextSeqRecommender(small_model().config, new_item_boost=1.0)
    model.set_item_texts([*planted_texts(), *NEW_TEXTS.values()])
    model.fit(data)
    assert model.new_items()[-2:].all() and not model.new_items()[:-2].any()


def test_runs_saved_without_the_mask_treat_every_known_item_as_trained(
    fitted: TextSeqRecommender, tmp_path: Path
) -> None:
    fitted.save(tmp_path / "old")
    (tmp_path / "old" / "trained_items.npy").unlink()
    old = load_model(tmp_path / "old")
    assert isinstance(old, TextSeqRecommender) and old.trained_items is None
    assert not old.new_items().any()
    old.add_items(NEW_TEXTS)
    assert old.new_items().tolist() == [False] * N_ITEMS + [True, True]


def test_a_corrupt_mask_file_is_named(fitted: TextSeqRecommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "bad")
    np.save(tmp_path / "bad" / "trained_items.npy", np.ones(3, dtype=bool))
    with pytest.raises(ModelFileError, match=r"trained_items\.npy should hold"):
        load_model(tmp_path / "bad")
    (tmp_path / "bad" / "trained_items.npy").write_text("not numpy")
    with pytest.raises(ModelFileError, match=r"not a readable \.npy"):
        load_model(tmp_path / "bad")


@pytest.mark.parametrize("bad", [-0.1, 5.5, "lots"])
def test_invalid_boosts_are_refused(fitted: TextSeqRecommender, bad: object) -> None:
    with pytest.raises(ConfigError, match="new_item_boost"):
        fitted.set_new_item_boost(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="new_item_boost"):
        TextSeqRecommender(new_item_boost=bad)


def test_boost_helper_leaves_rows_without_new_items_alone() -> None:
    scores = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]], dtype=np.float32)
    none = np.zeros(3, dtype=bool)
    np.testing.assert_array_equal(boost_new_items(scores.copy(), none, 2.0), scores)
    out = boost_new_items(scores.copy(), np.array([True, False, False]), 2.0)
    np.testing.assert_allclose(out[:, 0], scores[:, 0] + 2.0 * scores.std(axis=1))
    np.testing.assert_array_equal(out[:, 1:], scores[:, 1:])
