"""Text recommenders: the contract, the text path, fine-tuned encoders and persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from contract import N_ITEMS, N_USERS, RecommenderContract, planted_data

from lmrec.data.schema import InteractionData
from lmrec.errors import ConfigError
from lmrec.models import build_model, load_model
from lmrec.models.base import BaseRecommender
from lmrec.models.text import TextMeanRecommender, TextSeqConfig, TextSeqRecommender
from lmrec.models.text._model import TextSeqNetwork

GROUP_A = ["alien spaceship", "galaxy war", "robot planet", "space station", "star fleet"]
GROUP_B = ["love letter", "wedding day", "romantic dinner", "first kiss", "summer romance"]


def planted_texts() -> list[str]:
    """Item texts that mirror the contract's two taste groups (items 0-19 and 20-39)."""
    half = N_ITEMS // 2
    return [
        f"title: {(GROUP_A if i < half else GROUP_B)[i % 5]} {i}; genres: "
        f"{'Sci-Fi' if i < half else 'Romance'}"
        for i in range(N_ITEMS)
    ]


SMALL = {
    "dim": 16,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 12,
    "dropout": 0.1,
    "adaptor_dropout": 0.0,
    "trainer": {"epochs": 20, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
}


def small_model(**overrides: object) -> TextSeqRecommender:
    model = TextSeqRecommender(SMALL, **overrides)
    model.set_item_texts(planted_texts())
    return model


class TestTextSeqContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return small_model()


class TestTextSeqFusionContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return small_model(id_fusion=True, id_dropout=0.3)


class TestTextMeanContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        model = TextMeanRecommender()
        model.set_item_texts(planted_texts())
        return model


@pytest.fixture(scope="module")
def fitted() -> TextSeqRecommender:
    model = small_model()
    model.fit(planted_data()[0])
    return model


def test_fit_without_texts_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="set_item_texts"):
        TextSeqRecommender(SMALL).fit(planted_data()[0])


def test_fit_with_wrong_number_of_texts_raises() -> None:
    model = TextSeqRecommender(SMALL)
    model.set_item_texts(planted_texts()[:-1])
    with pytest.raises(ConfigError, match="39 item texts"):
        model.fit(planted_data()[0])


def test_non_string_text_raises() -> None:
    with pytest.raises(TypeError, match="item text 1"):
        TextSeqRecommender(SMALL).set_item_texts(["a", 3])  # type: ignore[list-item]


def test_bad_config_names_field() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        TextSeqRecommender(dim=15, n_heads=2)
    with pytest.raises(ConfigError, match="strategy"):
        TextSeqRecommender(tuning={"strategy": "magic"})


def test_items_with_the_same_text_score_alike(fitted: TextSeqRecommender) -> None:
    """Without id embeddings an item is its text: equal texts give equal vectors."""
    texts = planted_texts()
    texts[7] = texts[3]
    model = small_model()
    model.set_item_texts(texts)
    model.fit(planted_data()[0])
    vectors = model.item_vectors()
    np.testing.assert_allclose(vectors[7], vectors[3], rtol=1e-6)
    scores = model.score(np.array([0]), [np.array([0, 1, 2])])
    assert scores[0, 7] == pytest.approx(scores[0, 3], rel=1e-6)


def test_id_dropout_only_in_training() -> None:
    model = small_model(id_fusion=True, id_dropout=0.5)
    model.fit(planted_data()[0])
    module = model.module
    assert module is not None
    module.eval()
    assert torch.equal(module.item_table(), module.item_table())
    module.train()
    torch.manual_seed(0)
    assert not torch.equal(module.item_table(), module.item_table())
    module.eval()


def test_score_is_batch_and_padding_invariant(fitted: TextSeqRecommender) -> None:
    seqs = planted_data()[0].sequences()
    together = fitted.score(np.arange(3), [seqs[0], seqs[1][:2], np.array([], dtype=np.int64)])
    alone = fitted.score(np.array([1]), [seqs[1][:2]])
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-5, atol=1e-5)


def test_build_and_load_through_registry(fitted: TextSeqRecommender, tmp_path: Path) -> None:
    assert isinstance(build_model(TextSeqConfig()), TextSeqRecommender)
    fitted.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TextSeqRecommender)
    assert loaded.item_texts == fitted.item_texts


@pytest.mark.parametrize("strategy", ["top_k", "lora"])
def test_tuned_encoder_trains_and_round_trips(strategy: str, tmp_path: Path) -> None:
    model = small_model(
        tuning={"strategy": strategy, "top_k": 1, "lr_scale": 0.1},
        fresh_items=8,
        trainer={"epochs": 2, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
    )
    base = TextSeqRecommender(SMALL)
    base_vectors = base.frozen_vectors(planted_texts())
    model.fit(planted_data()[0])
    assert model.module is not None and model.tuned is not None
    cached = model.module.text_vectors.numpy().copy()
    # The encoder moved, and the cache holds its final vectors (refreshed after training).
    assert not np.allclose(cached, base_vectors, atol=1e-4)
    np.testing.assert_allclose(model.tuned.encode(planted_texts()), cached, atol=1e-5)

    model.save(tmp_path / "m")
    loaded = TextSeqRecommender.load(tmp_path / "m")
    seqs = planted_data()[0].sequences()
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(
        loaded.score(users, [seqs[u] for u in users]),
        model.score(users, [seqs[u] for u in users]),
    )
    tuned = loaded.tuned_encoder()
    assert tuned is not None
    np.testing.assert_allclose(tuned.encode(planted_texts()), cached, atol=1e-5)


def test_fresh_items_get_gradients_and_others_come_from_cache() -> None:
    model = small_model(tuning={"strategy": "lora"}, trainer={"epochs": 1, "patience": None})
    model.fit(planted_data()[0])
    assert model.module is not None and model.tuned is not None
    network = TextSeqNetwork(model.module, model.tuned)
    network.train()
    texts = planted_texts()
    fresh = torch.tensor([2, 5])
    ids, mask = model.tuned.encoder.tokenize([texts[2], texts[5]])
    tokens = torch.tensor([[model.module.start_token, 3, 6]])
    hidden, table = network(tokens, fresh, ids, mask)
    hidden[:, -1].sum().backward()
    lora = [p for n, p in model.tuned.named_parameters() if p.requires_grad]
    assert lora and any(p.grad is not None and p.grad.abs().sum() > 0 for p in lora)
    model.module.eval()
    cached_table = model.module.item_table()
    np.testing.assert_allclose(table[0].detach().numpy(), cached_table[0].detach().numpy())


def test_warm_start_trains_in_two_stages(tmp_path: Path) -> None:
    from lmrec.evaluation.task import EvalTask
    from lmrec.models.base import FitOptions

    train, held = planted_data()
    model = small_model(
        tuning={"strategy": "lora", "lr_scale": 0.1},
        fresh_items=8,
        trainer={"epochs": 3, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
        encoder_trainer={"epochs": 2, "batch_size": 16, "lr": 0.001, "patience": None},
    )
    report = model.fit(
        train, EvalTask.from_interactions(train, held), FitOptions(work_dir=tmp_path)
    )
    assert report.epochs == 5
    assert [r["stage"] for r in report.history] == [1.0, 1.0, 1.0, 2.0, 2.0]
    assert report.best_epoch is not None and 1 <= report.best_epoch <= 5
    assert (tmp_path / "checkpoints" / "encoder").is_dir()
    assert (tmp_path / "train_log-encoder.jsonl").exists()
    assert model.module is not None and model.tuned is not None
    # Whichever stage won, the cached vectors are the kept encoder's.
    np.testing.assert_allclose(
        model.tuned.encode(planted_texts()), model.module.text_vectors.numpy(), atol=1e-5
    )


def test_init_from_a_saved_model_skips_the_first_stage(
    fitted: TextSeqRecommender, tmp_path: Path
) -> None:
    from lmrec.evaluation.task import EvalTask

    fitted.save(tmp_path / "frozen")
    train, held = planted_data()
    valid = EvalTask.from_interactions(train, held)
    model = small_model(
        init_from=str(tmp_path / "frozen"),
        tuning={"strategy": "lora"},
        fresh_items=8,
        encoder_trainer={"epochs": 1, "batch_size": 16, "lr": 0.001, "patience": None},
    )
    report = model.fit(train, valid)
    assert report.epochs == 1
    assert [r["stage"] for r in report.history] == [2.0]
    assert model.module is not None and fitted.module is not None
    # Before any encoder step the loaded weights are the frozen model's.
    start = small_model(init_from=str(tmp_path / "frozen"), trainer={"epochs": 1})
    start._initialise_from(model.module, tmp_path / "frozen")
    for name, value in fitted.module.state_dict().items():
        if name != "text_vectors":
            assert torch.equal(model.module.state_dict()[name], value)
    with pytest.raises(ConfigError, match="does not match"):
        small_model(init_from=str(tmp_path / "frozen"), dim=32).fit(train)
    with pytest.raises(ConfigError, match="holds no saved text_seq model"):
        small_model(init_from=str(tmp_path / "nothing")).fit(train)


def test_module_is_causal_and_shapes_are_right() -> None:
    from lmrec.models.text._model import TextSeqModule

    torch.manual_seed(0)
    module = TextSeqModule(
        n_items=10,
        text_dim=6,
        dim=8,
        n_layers=2,
        n_heads=2,
        ffn_dim=16,
        max_len=6,
        dropout=0.0,
        adaptor_dropout=0.0,
        id_fusion=True,
        id_dropout=0.5,
        cosine=True,
        temperature=0.1,
    ).eval()
    module.text_vectors.copy_(torch.randn(10, 6))
    table = module.item_table()
    assert table.shape == (10, 8)
    tokens = torch.tensor([[0, 11, 3, 4, 5], [0, 0, 11, 3, 9]])
    hidden = module(tokens, table)
    assert hidden.shape == (2, 5, 8)
    changed = tokens.clone()
    changed[0, 4] = 7
    again = module(changed, table)
    torch.testing.assert_close(again[0, :4], hidden[0, :4])  # earlier slots never see later ones
    assert not torch.allclose(again[0, 4], hidden[0, 4])
    logits = module.logits(hidden[:, -1], table)
    assert logits.shape == (2, 10)
    assert logits.abs().max() <= 1.0 / 0.1 + 1e-5  # cosine / temperature is bounded


def test_items_without_training_interactions_are_not_softmax_candidates() -> None:
    train = planted_data()[0]
    held_out = 7
    keep = train.items != held_out
    train = InteractionData(
        train.user_map, train.item_map, train.users[keep], train.items[keep], train.timestamps[keep]
    )
    config = {**SMALL, "trainer": {**SMALL["trainer"], "epochs": 3}}
    texts = planted_texts()
    other = list(texts)
    other[held_out] = "a completely different text about cooking pasta"
    runs = []
    for item_texts in (texts, other):
        model = TextSeqRecommender(config)
        model.set_item_texts(item_texts)
        model.fit(train)
        runs.append(model.score(np.array([0]), [np.array([1, 2, 3])])[0])
    # The held-out item's text reaches no loss, so training is the same; only its own score
    # differs (a cold item's text still scores it).
    others = np.arange(N_ITEMS) != held_out
    np.testing.assert_allclose(runs[0][others], runs[1][others], rtol=1e-5, atol=1e-6)
    assert runs[0][held_out] != runs[1][held_out]
