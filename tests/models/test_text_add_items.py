"""Adding items to fitted models from their text: text models place them, id models refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from contract import N_ITEMS, planted_data, planted_frames
from test_text_seq import planted_texts, small_model

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError, DataError, NotFittedError
from lmrec.models import load_model
from lmrec.models.baselines import ItemKNNRecommender, PopularityRecommender
from lmrec.models.text import TextMeanRecommender, TextSeqRecommender

SCI_FI_USER = 0  # even users consume items 0-19 (Sci-Fi texts), odd ones items 20-39


@pytest.fixture(scope="module")
def frozen() -> TextSeqRecommender:
    model = small_model()
    model.fit(planted_data()[0])
    return model


@pytest.fixture(scope="module")
def fused() -> TextSeqRecommender:
    model = small_model(id_fusion=True, id_dropout=0.5)
    model.fit(planted_data()[0])
    return model


def _copy(model: TextSeqRecommender, tmp_path: Path) -> TextSeqRecommender:
    model.save(tmp_path / "copy")
    loaded = load_model(tmp_path / "copy")
    assert isinstance(loaded, TextSeqRecommender)
    return loaded


def test_new_item_with_an_items_text_gets_its_vector(
    frozen: TextSeqRecommender, tmp_path: Path
) -> None:
    model = _copy(frozen, tmp_path)
    texts = planted_texts()
    added = model.add_items({"new-a": texts[3], "new-b": texts[25]})
    assert added.added == ["new-a", "new-b"] and added.updated == []
    assert model.item_map is not None and model.item_map.to_list()[-2:] == ["new-a", "new-b"]
    assert model.n_items == N_ITEMS + 2 and model.item_texts is not None
    assert model.item_texts[-2:] == [texts[3], texts[25]]
    vectors = model.item_vectors()
    np.testing.assert_allclose(vectors[N_ITEMS], vectors[3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vectors[N_ITEMS + 1], vectors[25], rtol=1e-5, atol=1e-6)
    # Scored like the items they copy, and after the old items nothing moved.
    seqs = planted_data()[0].sequences()
    scores = model.score(np.array([SCI_FI_USER]), [seqs[SCI_FI_USER]])
    before = frozen.score(np.array([SCI_FI_USER]), [seqs[SCI_FI_USER]])
    assert scores.shape == (1, N_ITEMS + 2)
    np.testing.assert_allclose(scores[0, :N_ITEMS], before[0], rtol=1e-5, atol=1e-5)
    assert scores[0, N_ITEMS] == pytest.approx(scores[0, 3], abs=1e-4)
    assert scores[0, N_ITEMS] > scores[0, N_ITEMS + 1]  # the Sci-Fi user prefers the Sci-Fi copy


def test_new_items_survive_save_and_load(frozen: TextSeqRecommender, tmp_path: Path) -> None:
    model = _copy(frozen, tmp_path)
    model.add_items({"new-a": "title: alien spaceship remastered; genres: Sci-Fi"})
    model.save(tmp_path / "grown")
    loaded = load_model(tmp_path / "grown")
    assert loaded.item_map is not None and "new-a" in loaded.item_map
    history = [np.array([0, 1, 2])]
    np.testing.assert_array_equal(
        loaded.score(np.array([-1]), history), model.score(np.array([-1]), history)
    )


def test_fused_model_gives_new_items_a_zero_id_embedding(
    fused: TextSeqRecommender, tmp_path: Path
) -> None:
    model = _copy(fused, tmp_path)
    assert model.module is not None and model.module.id_embedding is not None
    learned = model.module.id_embedding.weight[3].detach().clone()
    model.add_items({"new-a": planted_texts()[3]})
    module = model.module
    assert module.id_embedding is not None
    ids = module.id_embedding.weight
    assert ids.shape[0] == N_ITEMS + 1 and module.text_vectors.shape[0] == N_ITEMS + 1
    assert torch.count_nonzero(ids[N_ITEMS]) == 0
    assert torch.equal(ids[3], learned)
    # Its vector is the text part alone: the copied item's vector minus its id embedding.
    vectors = model.item_vectors()
    np.testing.assert_allclose(vectors[N_ITEMS], vectors[3] - learned.numpy(), rtol=1e-5, atol=1e-5)
    assert module.start_token == N_ITEMS + 2
    assert np.isfinite(model.score(np.array([-1]), [np.array([0, N_ITEMS])])).all()


def test_known_id_gets_new_text_and_keeps_its_index(
    fused: TextSeqRecommender, tmp_path: Path
) -> None:
    model = _copy(fused, tmp_path)
    assert model.module is not None and model.module.id_embedding is not None
    learned = model.module.id_embedding.weight[3].detach().clone()
    romance = planted_texts()[25]
    added = model.add_items({"i3": romance})
    assert added.updated == ["i3"] and added.added == []
    assert model.n_items == N_ITEMS and model.item_texts is not None
    assert model.item_texts[3] == romance
    np.testing.assert_allclose(
        model.module.text_vectors[3].numpy(), model.module.text_vectors[25].numpy(), atol=1e-6
    )
    assert torch.equal(model.module.id_embedding.weight[3], learned)


def test_items_without_training_interactions_get_zero_id_embeddings() -> None:
    train, _ = planted_frames()
    unseen = {"i5", "i30"}
    train = train[~train["item_id"].isin(unseen)]
    full = planted_data()[0]
    data = InteractionData.from_frame(train, full.user_map, full.item_map)
    model = small_model(id_fusion=True, id_dropout=0.5)
    model.fit(data)
    assert model.module is not None and model.module.id_embedding is not None
    norms = model.module.id_embedding.weight.norm(dim=1)
    assert norms[5] == 0 and norms[30] == 0
    assert bool((norms[[i for i in range(N_ITEMS) if i not in (5, 30)]] > 0).all())


def test_text_mean_adds_items() -> None:
    model = TextMeanRecommender()
    model.set_item_texts(planted_texts())
    model.fit(planted_data()[0])
    model.add_items({"new-a": planted_texts()[7]})
    assert model.item_vectors is not None and model.item_vectors.shape[0] == N_ITEMS + 1
    assert np.linalg.norm(model.item_vectors[-1]) == pytest.approx(1.0, abs=1e-5)
    scores = model.score(np.array([-1]), [np.array([0, 1, 2])])
    assert scores[0, N_ITEMS] == pytest.approx(scores[0, 7], abs=1e-5)


def test_tuned_encoder_encodes_new_items(tmp_path: Path) -> None:
    model = small_model(
        tuning={"strategy": "top_k", "top_k": 1, "lr_scale": 0.1},
        fresh_items=8,
        trainer={"epochs": 1, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
    )
    model.fit(planted_data()[0])
    model.save(tmp_path / "tuned")
    loaded = load_model(tmp_path / "tuned")
    assert isinstance(loaded, TextSeqRecommender) and loaded.tuned is None
    loaded.add_items({"new-a": planted_texts()[3]})
    assert loaded.module is not None
    cached = loaded.module.text_vectors.numpy()
    np.testing.assert_allclose(cached[N_ITEMS], cached[3], atol=1e-5)
    frozen_vector = loaded.frozen_vectors([planted_texts()[3]])[0]
    assert not np.allclose(cached[N_ITEMS], frozen_vector, atol=1e-4)


def test_bad_texts_and_unfitted_models_raise(frozen: TextSeqRecommender) -> None:
    with pytest.raises(DataError, match=r"item 'x': text must be a non-empty string, got '  '"):
        frozen.add_items({"x": "  "})
    with pytest.raises(DataError, match="text must be a non-empty string, got 3"):
        frozen.add_items({"x": 3})  # type: ignore[dict-item]
    with pytest.raises(DataError, match="item id must be a non-empty string"):
        frozen.add_items({"": "title: x"})
    assert frozen.n_items == N_ITEMS  # nothing changed
    with pytest.raises(NotFittedError):
        TextSeqRecommender().add_items({"x": "title: x"})


@pytest.mark.parametrize("model_class", [PopularityRecommender, ItemKNNRecommender])
def test_id_models_cannot_add_items_from_text(model_class: type) -> None:
    model = model_class()
    model.fit(planted_data()[0])
    with pytest.raises(ConfigError, match=r"cannot add items from text.*text_seq or text_mean"):
        model.add_items({"new-a": "title: alien spaceship"})
    assert isinstance(model.item_map, IdMap) and len(model.item_map) == N_ITEMS
