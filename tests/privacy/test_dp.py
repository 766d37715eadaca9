"""DP-SGD: exact per-sample gradients, the noise plan and accountant, private fits, config."""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

from contract import N_ITEMS, planted_data

from lmrec.config import parse_config
from lmrec.errors import ConfigError
from lmrec.evaluation.task import EvalTask
from lmrec.models.ctr._model import CTRHead
from lmrec.models.ctr._training import VectorTask
from lmrec.models.text import TextSeqRecommender
from lmrec.models.text._model import TextSeqModule, TextSeqNetwork
from lmrec.models.text._training import TextSequenceTask
from lmrec.privacy.dp import (
    DPConfig,
    DPTrainer,
    describe_privacy,
    per_sample_gradients,
    plan_noise,
    poisson_rows,
    spent_epsilon,
)
from lmrec.training import TrainerConfig, trainer_for
from lmrec.training.trainer import EncoderTrainer

pytest.importorskip("opacus")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- exact per-sample gradients -------------------------------------------------------------
def tiny_text_task(id_fusion: bool) -> TextSequenceTask:
    torch.manual_seed(0)
    n_items = 12
    module = TextSeqModule(
        n_items=n_items,
        text_dim=6,
        dim=8,
        n_layers=1,
        n_heads=2,
        ffn_dim=8,
        max_len=7,
        dropout=0.1,
        adaptor_dropout=0.1,
        id_fusion=id_fusion,
        id_dropout=0.3,
        cosine=True,
        temperature=0.1,
    )
    module.text_vectors.normal_()
    network = TextSeqNetwork(module, None)
    network.eval()  # no dropout: one-by-one losses must see the same function
    start = module.start_token
    # Users of lengths 1, 3, 4 and 7 (different length buckets), left-padded.
    rows = [[start], [start, 3, 5], [start, 1, 2, 9], [4, 7, 2, 8, 11, 6, 1]]
    targets_rows = [[2], [2, 4, 6], [0, 1, 8, 10], [6, 1, 7, 10, 5, 0, 3]]
    inputs = np.zeros((4, 7), dtype=np.int64)
    targets = np.full((4, 7), -100, dtype=np.int64)
    for j, (r, t) in enumerate(zip(rows, targets_rows, strict=True)):
        inputs[j, 7 - len(r) :] = r
        targets[j, 7 - len(t) :] = t
    return TextSequenceTask(network, inputs, targets, batch_size=4, fresh_items=4)


@pytest.mark.parametrize("id_fusion", [False, True])
def test_text_seq_per_sample_gradients_equal_one_by_one(id_fusion: bool) -> None:
    """The vmapped per-user gradients equal the gradients of each user's loss alone, also
    for the adaptor and id embeddings, whose item table every user of a batch shares."""
    task = tiny_text_task(id_fusion)
    network = task.module
    batch = task.sample_batch(np.arange(4), torch.Generator())
    groups = task.sample_groups(batch)
    assert len(groups) == 3  # users are grouped by length: {1}, {3, 4}, {7}
    lengths = (task.inputs != 0).sum(dim=1)
    order = [0, 1, 2, 3]  # the groups in turn hold users 0 | 1, 2 | 3
    per_user: dict[str, list[torch.Tensor]] = {}
    for shared, samples in groups:
        grads, _ = per_sample_gradients(network, task.sample_loss, shared, samples)
        for name, g in grads.items():
            per_user.setdefault(name, []).extend(g)
    named = dict(network.named_parameters())
    assert set(per_user) == {n for n, p in named.items() if p.requires_grad}
    for k, u in enumerate(order):
        width = int(lengths[u])
        one = (task.inputs[u : u + 1, -width:], task.targets[u : u + 1, -width:])
        network.zero_grad()
        task.loss(one).backward()  # the plain training loss of this user alone
        for name, p in named.items():
            expected = p.grad if p.grad is not None else torch.zeros_like(p)
            torch.testing.assert_close(per_user[name][k], expected, rtol=1e-4, atol=1e-6)


def test_ctr_head_per_sample_gradients_equal_one_by_one() -> None:
    torch.manual_seed(0)
    head = CTRHead(dim=6, hidden=5, dropout=0.0)
    vectors, targets = torch.randn(5, 6), torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    task = VectorTask(head, vectors, targets, batch_size=5, objective="bce")
    [(shared, samples)] = task.sample_groups(task.sample_batch(np.arange(5), torch.Generator()))
    grads, losses = per_sample_gradients(head, task.sample_loss, shared, samples, chunk_size=2)
    for i in range(5):
        head.zero_grad()
        loss = task.loss((vectors[i : i + 1], targets[i : i + 1]))
        loss.backward()
        assert float(losses[i]) == pytest.approx(loss.item(), rel=1e-5)
        for name, p in head.named_parameters():
            assert p.grad is not None
            torch.testing.assert_close(grads[name][i], p.grad, rtol=1e-4, atol=1e-6)


def test_lora_hooks_per_sample_gradients_equal_one_by_one() -> None:
    """The CTR cross-encoder with LoRA uses Opacus' hooks: rows are examples there."""
    from opacus import GradSampleModule

    from lmrec.models.ctr._model import CrossEncoderCTR
    from lmrec.text.config import TextEncoderConfig
    from lmrec.text.encoder import ItemTextEncoder
    from lmrec.text.tuning import TunableEncoder, TuningConfig

    torch.manual_seed(0)
    encoder = TunableEncoder(
        ItemTextEncoder(TextEncoderConfig(max_length=16)),
        TuningConfig(strategy="lora", lora_r=2, lora_dropout=0.0),
    )
    network = CrossEncoderCTR(encoder, CTRHead(encoder.encoder.dim, 8, dropout=0.0))
    network.train()  # Opacus records activations in training mode only
    for module in network.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # so that one-by-one passes see the same function
    for p in network.parameters():
        if p.requires_grad:  # LoRA's B starts at zero; move it so every gradient is non-trivial
            p.data.add_(0.05 * torch.randn_like(p))
    ids, mask = encoder.encoder.tokenize(["space opera [SEP] alien", "love story", "robots"])
    targets = torch.tensor([1.0, 0.0, 1.0])
    wrapped = GradSampleModule(network, batch_first=True, loss_reduction="mean", strict=False)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(wrapped(ids, mask), targets)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        loss.backward()
    trainable = {n: p for n, p in network.named_parameters() if p.requires_grad}
    sampled = {n: p.grad_sample.clone() for n, p in trainable.items()}  # type: ignore[attr-defined]
    wrapped.remove_hooks()
    for i in range(3):
        network.zero_grad()
        one = torch.nn.functional.binary_cross_entropy_with_logits(
            network(ids[i : i + 1, : int(mask[i].sum())], mask[i : i + 1, : int(mask[i].sum())]),
            targets[i : i + 1],
        )
        one.backward()
        for name, p in trainable.items():
            assert p.grad is not None
            torch.testing.assert_close(sampled[name][i], p.grad, rtol=1e-3, atol=1e-5)


# -- noise plan and accounting --------------------------------------------------------------
def test_noise_for_a_target_epsilon_spends_at_most_the_target() -> None:
    dp = DPConfig(target_epsilon=3.0)
    plan = plan_noise(dp, n_samples=1000, batch_size=50, planned_steps=400)
    assert plan.delta == pytest.approx(1e-3)  # 1 / N by default
    assert plan.sample_rate == pytest.approx(0.05)
    spent = spent_epsilon(plan.noise_multiplier, plan.sample_rate, 400, plan.delta, "rdp")
    assert 2.9 < spent <= 3.0
    # Less noise is needed for a larger budget; fewer steps spend less.
    looser = plan_noise(DPConfig(target_epsilon=8.0), 1000, 50, 400)
    assert looser.noise_multiplier < plan.noise_multiplier
    assert spent_epsilon(plan.noise_multiplier, 0.05, 100, 1e-3, "rdp") < spent
    prv = spent_epsilon(plan.noise_multiplier, 0.05, 400, 1e-3, "prv")
    assert 0.5 * spent < prv < 1.5 * spent


def test_given_noise_multiplier_and_edge_cases() -> None:
    plan = plan_noise(DPConfig(noise_multiplier=1.1, delta=1e-5), 200, 20, 10)
    assert (plan.noise_multiplier, plan.delta, plan.sample_rate) == (1.1, 1e-5, 0.1)
    assert spent_epsilon(0.0, 0.1, 10, 1e-5, "rdp") == math.inf
    assert spent_epsilon(1.0, 0.1, 0, 1e-5, "rdp") == 0.0
    with pytest.raises(ConfigError, match="no privacy units"):
        plan_noise(DPConfig(noise_multiplier=1.0), 0, 20, 10)


def test_poisson_rows_sample_each_unit_independently() -> None:
    generator = torch.Generator().manual_seed(0)
    sizes = [len(poisson_rows(1000, 0.1, generator)) for _ in range(200)]
    assert 95 < np.mean(sizes) < 105 and np.std(sizes) > 5  # binomial, not a fixed size
    rows = poisson_rows(1000, 0.1, generator)
    assert np.all(np.diff(rows) > 0) and rows.max() < 1000


# -- configuration --------------------------------------------------------------------------
def test_dp_config_needs_exactly_one_noise_source() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.dp.*target_epsilon or noise_multiplier"):
        parse_config({"model": {"type": "text_seq", "trainer": {"dp": {}}}})
    both = {"target_epsilon": 1.0, "noise_multiplier": 1.0}
    with pytest.raises(ConfigError, match="both"):
        parse_config({"model": {"type": "text_seq", "trainer": {"dp": both}}})
    with pytest.raises(ConfigError, match=r"trainer\.dp\.max_grad_norm"):
        parse_config(
            {
                "model": {
                    "type": "text_seq",
                    "trainer": {"dp": {"noise_multiplier": 1.0, "max_grad_norm": 0}},
                }
            }
        )
    with pytest.raises(ConfigError, match=r"trainer\.dp\.accountant"):
        parse_config(
            {
                "model": {
                    "type": "text_seq",
                    "trainer": {"dp": {"noise_multiplier": 1.0, "accountant": "gdp"}},
                }
            }
        )
    off = parse_config({"model": {"type": "text_seq", "trainer": {"dp": {"enabled": False}}}})
    assert not off.model.trainer.private  # type: ignore[union-attr]
    assert isinstance(trainer_for(off.model.trainer), EncoderTrainer)  # type: ignore[union-attr]
    on = TrainerConfig(dp=DPConfig(target_epsilon=2.0))
    assert isinstance(trainer_for(on), DPTrainer)


SMALL = {
    "dim": 16,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 12,
    "dropout": 0.1,
    "adaptor_dropout": 0.0,
}


def _texts() -> list[str]:
    half = N_ITEMS // 2
    return [
        f"{'space robot galaxy' if i < half else 'love wedding kiss'} {i}" for i in range(N_ITEMS)
    ]


def test_unsupported_strategy_and_two_stages_raise() -> None:
    trainer = {"epochs": 1, "dp": {"noise_multiplier": 1.0}}
    model = TextSeqRecommender(SMALL, trainer=trainer, tuning={"strategy": "full"})
    model.set_item_texts(_texts())
    with pytest.raises(ConfigError, match=r"tuning\.strategy.*'full'"):
        model.fit(planted_data()[0])
    model = TextSeqRecommender(
        SMALL, trainer=trainer, tuning={"strategy": "lora"}, encoder_trainer={"epochs": 1}
    )
    model.set_item_texts(_texts())
    with pytest.raises(ConfigError, match="encoder_trainer"):
        model.fit(planted_data()[0])


# -- private fits ---------------------------------------------------------------------------
def test_private_text_seq_fit_reports_user_level_epsilon(tmp_path: Path) -> None:
    from lmrec.models.base import FitOptions

    train, held = planted_data()
    trainer = {
        "epochs": 4,
        "batch_size": 8,
        "lr": 0.01,
        "patience": None,
        "seed": 1,
        "dp": {"target_epsilon": 2.0, "max_grad_norm": 0.5},
    }
    model = TextSeqRecommender(SMALL, trainer=trainer)
    model.set_item_texts(_texts())
    report = model.fit(
        train, EvalTask.from_interactions(train, held), FitOptions(work_dir=tmp_path)
    )
    p = report.privacy
    n_users = sum(1 for s in train.sequences() if len(s))
    assert p["unit"] == "user" and p["n_units"] == n_users
    assert p["delta"] == pytest.approx(1 / n_users)
    assert p["steps"] == p["planned_steps"] == 4 * -(-n_users // 8)
    assert 1.9 < p["epsilon"] <= 2.0
    assert p["sample_rate"] == pytest.approx(8 / n_users)
    assert report.to_dict()["privacy"] == p
    assert "ε = 1.9" in describe_privacy(p) or "ε = 2" in describe_privacy(p)
    # The trainer's hooks and per-sample state are gone; the model scores as usual.
    assert model.module is not None
    assert not any(hasattr(q, "grad_sample") for q in model.module.parameters())
    scores = model.score(np.array([0]), [train.sequences()[0]])
    assert np.isfinite(scores).all()


def test_private_fit_without_validation_selection_keeps_last_epoch() -> None:
    train, held = planted_data()
    trainer = {
        "epochs": 2,
        "batch_size": 8,
        "patience": None,
        "dp": {"noise_multiplier": 1.0, "select_on_validation": False},
    }
    model = TextSeqRecommender(SMALL, trainer=trainer)
    model.set_item_texts(_texts())
    report = model.fit(train, EvalTask.from_interactions(train, held))
    assert report.best_epoch is None and report.epochs == 2
    assert report.privacy["selected_on_validation"] is False


def test_noise_changes_the_result_and_the_seed_reproduces_it() -> None:
    train = planted_data()[0]

    def weights(noise: float, secure: bool = False) -> torch.Tensor:
        dp = {"noise_multiplier": noise, "secure_rng": secure}
        model = TextSeqRecommender(SMALL, trainer={"epochs": 1, "batch_size": 8, "dp": dp})
        model.set_item_texts(_texts())
        model.fit(train)
        assert model.module is not None
        return model.module.adaptor.weight.detach().clone()

    quiet, loud = weights(0.5), weights(5.0)
    assert not torch.allclose(quiet, loud)
    torch.testing.assert_close(weights(0.5), quiet)  # same seed, same noise
    assert not torch.allclose(weights(0.5, secure=True), quiet)


def test_private_ctr_head_fit_is_example_level(movielens_like: Path) -> None:
    from lmrec.data import Dataset
    from lmrec.data.registry import load_dataset
    from lmrec.data.splitting import encode_split, leave_one_out_split
    from lmrec.models.ctr import CTRModel

    data = load_dataset(movielens_like, use_cache=False)
    data = Dataset(
        data.name,
        data.interactions.drop(columns=["rating"]),
        data.items,
        data.users,
        data.text_fields,
    )
    split = encode_split(leave_one_out_split(data.interactions), data)
    trainer = {"epochs": 2, "batch_size": 16, "patience": None, "dp": {"noise_multiplier": 0.8}}
    model = CTRModel(
        {"profile_items": 2, "max_length": 32, "max_examples": 64, "head_hidden": 16},
        trainer=trainer,
    )
    report = model.fit(data, split.train)
    p = report.privacy
    assert p["unit"] == "example" and p["n_units"] == 64
    assert p["steps"] == 2 * 4 and np.isfinite(p["epsilon"]) and p["epsilon"] > 0
    with pytest.raises(ConfigError, match=r"tuning\.strategy"):
        CTRModel(trainer=trainer, tuning={"strategy": "prefix"}).fit(data, split.train)


def test_private_text_seq_fit_with_lora_trains_the_adapters() -> None:
    train = planted_data()[0]
    trainer = {
        "epochs": 1,
        "batch_size": 8,
        "lr": 0.01,
        "patience": None,
        "seed": 1,
        "dp": {"noise_multiplier": 1.0, "max_grad_norm": 1.0},
    }
    model = TextSeqRecommender(
        {**SMALL, "fresh_items": 8},
        trainer=trainer,
        tuning={"strategy": "lora", "lora_r": 2, "lr_scale": 1.0},
    )
    model.set_item_texts(_texts())
    report = model.fit(train)
    p = report.privacy
    assert p["unit"] == "user" and p["steps"] >= 1 and np.isfinite(p["epsilon"])
    tuned = model.tuned_encoder()
    assert tuned is not None
    lora = {k: v for k, v in tuned.trainable_state_dict().items() if "lora_B" in k}
    assert lora and any(float(v.abs().sum()) > 0 for v in lora.values())  # B starts at zero
    assert np.isfinite(model.score(np.array([0]), [train.sequences()[0]])).all()
