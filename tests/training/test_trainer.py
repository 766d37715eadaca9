"""The shared trainer: schedule, decay groups, clipping, early stopping, resume, logs, seeds."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lmrec.errors import ConfigError
from lmrec.training import (
    CHECKPOINT_FILE,
    RunOptions,
    Trainer,
    TrainerConfig,
    TrainingTask,
    WeightAverage,
    parameter_groups,
    seed_everything,
    shard_indices,
    warmup_linear_decay,
)


class _Net(nn.Module):
    """Embedding + Linear + LayerNorm + dropout: every parameter kind the trainer treats."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.proj = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, 1)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.norm(self.proj(self.emb(idx)))))
        return self.head(h).squeeze(-1)


class _RegressionTask:
    """Predict a fixed random target per index; batches shuffled by the given generator."""

    def __init__(self, seed: int = 0, n: int = 40, batch_size: int = 8) -> None:
        seed_everything(seed)
        self.module: nn.Module = _Net()
        self.x = torch.arange(n) % 10
        self.y = torch.randn(10, generator=torch.Generator().manual_seed(0))[self.x]
        self.batch_size = batch_size
        self.seen_modules: list[nn.Module] = []

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        perm = torch.randperm(len(self.x), generator=generator)
        for start in range(0, len(perm), self.batch_size):
            yield perm[start : start + self.batch_size]

    def num_batches(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        self.seen_modules.append(self.module)
        return torch.mean((self.module(self.x[batch]) - self.y[batch]) ** 2)

    def mse(self) -> float:
        with torch.no_grad():
            return float(torch.mean((self.module(self.x) - self.y) ** 2))


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_task_satisfies_protocol() -> None:
    assert isinstance(_RegressionTask(), TrainingTask)


# -- schedule -------------------------------------------------------------------------------
def test_warmup_then_linear_decay_values() -> None:
    f = warmup_linear_decay(2, 10)
    assert [f(s) for s in range(11)] == pytest.approx(
        [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]
    )
    g = warmup_linear_decay(0, 4)
    assert [g(s) for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_trainer_schedule_reaches_peak_and_decays_to_zero() -> None:
    config = TrainerConfig(epochs=2, lr=0.1, warmup_ratio=0.25)
    trainer = Trainer(config)
    optimizer = trainer.make_optimizer(_Net())
    scheduler = trainer.make_scheduler(optimizer, total_steps=8)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.05, 0.1] + [0.1 * k / 6 for k in range(6, 0, -1)])
    assert optimizer.param_groups[0]["lr"] == 0.0

    task = _RegressionTask(n=16, batch_size=4)  # 4 steps per epoch, 8 in all
    report = Trainer(config).fit(task)
    assert [r["lr"] for r in report.history] == pytest.approx([0.1 * 5 / 6, 0.1 / 6])


# -- weight decay ---------------------------------------------------------------------------
def test_weight_decay_only_on_layer_weights() -> None:
    net = _Net()
    groups = parameter_groups(net, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(net.proj.weight), id(net.head.weight)}
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))


def test_tied_embedding_is_not_decayed() -> None:
    emb = nn.Embedding(5, 3)
    out = nn.Linear(3, 5, bias=False)
    out.weight = emb.weight
    groups = parameter_groups(nn.ModuleList([out, emb]), 0.1)
    assert all(g["weight_decay"] == 0.0 for g in groups)
    assert sum(len(g["params"]) for g in groups) == 1


def test_decay_embeddings_option_decays_tables_but_not_norms() -> None:
    emb = nn.Embedding(5, 3)
    norm = nn.LayerNorm(3)
    out = nn.Linear(3, 5, bias=False)
    out.weight = emb.weight
    groups = parameter_groups(nn.ModuleList([out, emb, norm]), 0.1, decay_embeddings=True)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(emb.weight)}


def test_decay_shrinks_layer_weights_but_not_embeddings() -> None:
    class ZeroGrad(_RegressionTask):
        def loss(self, batch: torch.Tensor) -> torch.Tensor:
            return 0.0 * self.module(self.x[batch]).sum()

    task = ZeroGrad()
    before = _params(task.module)
    Trainer(TrainerConfig(epochs=1, lr=0.1, weight_decay=0.5, patience=None)).fit(task)
    after = _params(task.module)
    assert after["proj.weight"].abs().sum() < before["proj.weight"].abs().sum()
    assert torch.equal(after["emb.weight"], before["emb.weight"])
    assert torch.equal(after["norm.weight"], before["norm.weight"])
    assert torch.equal(after["proj.bias"], before["proj.bias"])


# -- clipping -------------------------------------------------------------------------------
class _SGDTrainer(Trainer):
    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(module.parameters(), lr=self.config.lr)


class _LinearTask:
    """loss = 3 * w0 + 4 * w1: the gradient is (3, 4), norm 5, at every step."""

    def __init__(self) -> None:
        self.module: nn.Module = nn.Linear(2, 1, bias=False)
        nn.init.zeros_(self.module.weight)

    def batches(self, epoch: int, generator: torch.Generator) -> list[torch.Tensor]:
        return [torch.tensor([[3.0, 4.0]])]

    def num_batches(self) -> int:
        return 1

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        return self.module(batch).sum()


@pytest.mark.parametrize(("clip", "expected"), [(1.0, [-0.6, -0.8]), (None, [-3.0, -4.0])])
def test_grad_clipping_bounds_the_step(clip: float | None, expected: list[float]) -> None:
    task = _LinearTask()
    config = TrainerConfig(epochs=2, lr=1.0, grad_clip=clip, patience=None)
    _SGDTrainer(config).fit(task)  # 2 steps: lr 1.0 then 0.5
    w = task.module.weight.detach().squeeze(0)
    assert w.tolist() == pytest.approx([1.5 * e for e in expected])


# -- early stopping -------------------------------------------------------------------------
def test_early_stopping_stops_and_restores_best_state() -> None:
    task = _RegressionTask()
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.2, 0.9, 0.9])
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
        snapshots[epoch] = _params(task.module)

    config = TrainerConfig(epochs=7, lr=0.05, patience=2)
    report = Trainer(config).fit(task, lambda: {"ndcg@10": next(scripted)}, on_epoch_end)
    assert report.epochs == 4
    assert report.best_epoch == 2
    assert report.best_valid == {"ndcg@10": 0.3}
    assert [r["valid_ndcg@10"] for r in report.history] == [0.1, 0.3, 0.2, 0.25]
    assert _same(_params(task.module), snapshots[2])
    assert not _same(snapshots[4], snapshots[2])


def test_eval_every_validates_on_schedule_and_after_last_epoch() -> None:
    calls: list[int] = []
    trainer = Trainer(TrainerConfig(epochs=5, eval_every=2, patience=None))

    def validate() -> dict[str, float]:
        calls.append(trainer.epoch)
        return {"ndcg@10": float(trainer.epoch)}

    report = trainer.fit(_RegressionTask(), validate)
    assert calls == [2, 4, 5]
    assert report.best_epoch == 5
    assert "valid_ndcg@10" not in report.history[0]


def test_missing_monitor_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ndcg@10"):
        Trainer(TrainerConfig(epochs=1)).fit(_RegressionTask(), lambda: {"recall@10": 0.1})


# -- checkpoints, resume, logs --------------------------------------------------------------
class _Interrupt(Exception):
    pass


class _SteppedTask(_RegressionTask):
    """Records the global step of every ``after_step`` call."""

    def __init__(self) -> None:
        super().__init__(n=20, batch_size=8)  # 3 batches per epoch
        self.steps: list[int] = []

    def after_step(self, global_step: int) -> None:
        self.steps.append(global_step)


def test_after_step_hook_gets_the_global_step_count(tmp_path: Path) -> None:
    config = TrainerConfig(epochs=3, lr=0.05, patience=None)
    task = _SteppedTask()
    Trainer(config).fit(task)
    assert task.steps == list(range(1, 10))

    # A resumed run continues the count where the checkpoint left it.
    options = RunOptions(checkpoint_dir=tmp_path)
    first = _SteppedTask()

    def crash(epoch: int, record: dict[str, float]) -> None:
        if epoch == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        Trainer(config, options).fit(first, on_epoch_end=crash)
    assert first.steps == [1, 2, 3]
    resumed = _SteppedTask()
    options.resume = True
    Trainer(config, options).fit(resumed)
    assert resumed.steps == list(range(4, 10))


def test_the_hook_does_not_change_training() -> None:
    plain, hooked = _RegressionTask(seed=0, n=20, batch_size=8), _SteppedTask()
    assert _same(_params(plain.module), _params(hooked.module))
    config = TrainerConfig(epochs=2, lr=0.05, patience=None)
    Trainer(config).fit(plain)
    Trainer(config).fit(hooked)
    assert hooked.steps == list(range(1, 7))
    assert _same(_params(plain.module), _params(hooked.module))


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_after_interruption_matches_uninterrupted_run(
    tmp_path: Path, ema_decay: float | None
) -> None:
    config = TrainerConfig(epochs=5, lr=0.05, warmup_ratio=0.2, patience=None, ema_decay=ema_decay)

    full = _RegressionTask(seed=1)
    full_trainer = Trainer(config)
    full_report = full_trainer.fit(full, lambda: {"ndcg@10": -full.mse()})

    options = RunOptions(checkpoint_dir=tmp_path / "ckpt", log_path=tmp_path / "log.jsonl")
    first = _RegressionTask(seed=1)

    def crash(epoch: int, record: dict[str, float]) -> None:
        if epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        Trainer(config, options).fit(first, lambda: {"ndcg@10": -first.mse()}, crash)
    assert (tmp_path / "ckpt" / CHECKPOINT_FILE).exists()

    resumed = _RegressionTask(seed=99)  # a different initialisation, overwritten by the resume
    options.resume = True
    report = Trainer(config, options).fit(resumed, lambda: {"ndcg@10": -resumed.mse()})

    assert _same(_params(resumed.module), _params(full.module))
    assert report.epochs == 5 and report.best_epoch == full_report.best_epoch
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in report.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in full_report.history]
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4, 5]


def test_resume_of_a_finished_run_trains_nothing(tmp_path: Path) -> None:
    options = RunOptions(checkpoint_dir=tmp_path)
    config = TrainerConfig(epochs=2, patience=None)
    task = _RegressionTask()
    Trainer(config, options).fit(task)
    done = _params(task.module)
    again = _RegressionTask(seed=5)
    options.resume = True
    report = Trainer(config, options).fit(again)
    assert report.epochs == 2 and len(report.history) == 2
    assert _same(_params(again.module), done)


def test_resume_with_other_hyperparameters_is_refused(tmp_path: Path) -> None:
    Trainer(TrainerConfig(epochs=1), RunOptions(checkpoint_dir=tmp_path)).fit(_RegressionTask())
    with pytest.raises(ConfigError, match="lr"):
        Trainer(
            TrainerConfig(epochs=1, lr=0.5), RunOptions(checkpoint_dir=tmp_path, resume=True)
        ).fit(_RegressionTask())


def test_resume_with_another_checkpoint_key_is_refused(tmp_path: Path) -> None:
    config = TrainerConfig(epochs=1)
    Trainer(config, RunOptions(checkpoint_dir=tmp_path)).fit(
        _RegressionTask(), checkpoint_key={"data": "a"}
    )
    resume = RunOptions(checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ConfigError, match="data='a'"):
        Trainer(config, resume).fit(_RegressionTask(), checkpoint_key={"data": "b"})
    report = Trainer(config, resume).fit(_RegressionTask(), checkpoint_key={"data": "a"})
    assert report.epochs == 1


def test_jsonl_log_has_one_line_per_epoch(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "train.jsonl"
    scores = iter([0.2, 0.1, 0.4])
    Trainer(TrainerConfig(epochs=3, patience=None), RunOptions(log_path=log)).fit(
        _RegressionTask(), lambda: {"ndcg@10": next(scores), "recall@10": 0.5}
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["valid_ndcg@10"] for r in rows] == [0.2, 0.1, 0.4]
    for r in rows:
        assert set(r) == {"epoch", "loss", "lr", "seconds", "valid_ndcg@10", "valid_recall@10"}
        assert r["loss"] > 0 and r["seconds"] >= 0 and r["lr"] > 0


def test_loss_decreases_and_seeds_reproduce() -> None:
    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        task = _RegressionTask(seed=0)
        report = Trainer(TrainerConfig(epochs=4, lr=0.05, seed=seed, patience=None)).fit(task)
        return _params(task.module), [r["loss"] for r in report.history]

    a, losses = run(3)
    b, _ = run(3)
    c, _ = run(4)
    assert losses[-1] < losses[0]
    assert _same(a, b)
    assert not _same(a, c)


def test_missing_tensorboard_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    task = _RegressionTask()
    before = _params(task.module)
    with pytest.raises(ConfigError, match="tensorboard"):
        Trainer(TrainerConfig(epochs=1), RunOptions(tensorboard_dir=tmp_path)).fit(task)
    assert _same(_params(task.module), before)


def test_non_finite_loss_raises() -> None:
    class Exploding(_RegressionTask):
        def loss(self, batch: torch.Tensor) -> torch.Tensor:
            return super().loss(batch) * float("nan")

    with pytest.raises(FloatingPointError, match="epoch 1"):
        Trainer(TrainerConfig(epochs=1)).fit(Exploding())


def test_config_ranges_are_validated() -> None:
    for bad in ({"lr": 0.0}, {"warmup_ratio": 1.0}, {"patience": 0}, {"epochs": 0}, {"x": 1}):
        with pytest.raises(ValueError):
            TrainerConfig.model_validate(bad)


# -- distributed ----------------------------------------------------------------------------
def test_shard_indices_cover_everything_evenly() -> None:
    shards = [shard_indices(10, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(np.concatenate(shards).tolist()) == set(range(10))
    assert shard_indices(5, 0, 1).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        shard_indices(5, 3, 3)


def test_single_process_group_wraps_module_in_ddp(tmp_path: Path) -> None:
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        task = _RegressionTask()
        raw = task.module
        report = Trainer(TrainerConfig(epochs=2, patience=None)).fit(task, lambda: {"ndcg@10": 0.0})
    finally:
        dist.destroy_process_group()
    assert all(isinstance(m, nn.parallel.DistributedDataParallel) for m in task.seen_modules)
    assert task.module is raw
    assert report.epochs == 2


def test_encoder_trainer_gives_the_encoder_its_own_learning_rate() -> None:
    from lmrec.training.trainer import EncoderTrainer

    class WithEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
            self.head = nn.Linear(4, 1)

    module = WithEncoder()
    trainer = EncoderTrainer(TrainerConfig(lr=0.01, weight_decay=0.1), encoder_lr_scale=0.1)
    optimizer = trainer.make_optimizer(module)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert len(lr_of) == sum(1 for _ in module.parameters())
    assert all(lr_of[id(p)] == pytest.approx(0.001) for p in module.encoder.parameters())
    assert all(lr_of[id(p)] == pytest.approx(0.01) for p in module.head.parameters())
    assert decay_of[id(module.encoder[0].weight)] == 0.1
    assert decay_of[id(module.encoder[1].weight)] == 0.0  # LayerNorm: never decayed
    plain = EncoderTrainer(TrainerConfig(lr=0.01)).make_optimizer(nn.Linear(2, 2))
    assert all(g["lr"] == 0.01 for g in plain.param_groups)


def test_weight_average_by_hand() -> None:
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    average = WeightAverage(net, decay=0.5)
    with torch.no_grad():
        net.weight.fill_(1.0)
    average.update()  # d = min(0.5, 2 / 11) = 2/11
    expected = 9 / 11
    assert float(average.shadow["weight"]) == pytest.approx(expected)
    with torch.no_grad():
        net.weight.fill_(3.0)
    for _ in range(20):
        average.update()  # d reaches 0.5 from the fourth update on
    assert 2.99 < float(average.shadow["weight"]) < 3.0
    with average.applied():
        assert net.weight.detach().item() == pytest.approx(average.shadow["weight"].item())
    assert net.weight.detach().item() == 3.0  # the module's own weights are back


def test_ema_decay_validates_and_returns_the_average() -> None:
    task = _RegressionTask()
    trainer = Trainer(TrainerConfig(epochs=4, lr=0.05, ema_decay=0.9, patience=None))
    seen: list[tuple[bool, float]] = []

    def validate() -> dict[str, float]:
        average = trainer._average
        assert average is not None
        held = all(torch.equal(p, average.shadow[n]) for n, p in task.module.named_parameters())
        seen.append((held, -task.mse()))
        return {"ndcg@10": -task.mse() if trainer.epoch != 3 else 1.0}

    report = trainer.fit(task, validate)
    assert [held for held, _ in seen] == [True] * 4
    assert report.best_epoch == 3
    plain = _RegressionTask()
    Trainer(TrainerConfig(epochs=4, lr=0.05, patience=None)).fit(plain)
    # Training itself is unchanged: the average differs from the plain run's last weights.
    assert not _same(_params(task.module), _params(plain.module))


def test_ema_without_validation_ends_on_the_average() -> None:
    task = _RegressionTask()
    trainer = Trainer(TrainerConfig(epochs=3, lr=0.05, ema_decay=0.99, patience=None))
    trainer.fit(task)
    average = trainer._average
    assert average is not None and average.steps == 3 * task.num_batches()
    for name, param in task.module.named_parameters():
        assert torch.equal(param, average.shadow[name])
