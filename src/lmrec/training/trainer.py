"""The shared training loop: AdamW, warm-up + linear decay, clipping, early stopping, resume.

A model family describes *what* to train as a :class:`TrainingTask` (its module, its batches
and its loss); :class:`Trainer` owns *how*: optimizer, schedule, seeds, validation, the best
state, checkpoints and logs. The loop avoids anything that breaks per-sample gradients
(Opacus) and runs unchanged under ``torchrun``: when a process group is initialised the
module is wrapped in ``DistributedDataParallel`` and only rank 0 writes files or progress bars.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from lmrec.errors import ConfigError, ModelFileError
from lmrec.models.base import FitReport
from lmrec.training._support import (
    WeightAverage,
    _epoch_generator,
    _rng_state,
    _set_rng_state,
    _to_device,
    parameter_groups,
    rank_and_world,
    seed_everything,
    warmup_linear_decay,
)
from lmrec.training._support import shard_indices as shard_indices  # re-exported
from lmrec.training.config import RunOptions, TrainerConfig

CHECKPOINT_FILE = "last.pt"
"""Name of the checkpoint inside ``RunOptions.checkpoint_dir``."""

_CHECKPOINT_FORMAT = 1

ValidateFn = Callable[[], dict[str, float]]
"""Returns validation metrics (``{"ndcg@10": 0.07}``); higher ``monitor`` is better."""

CheckpointValue = str | int | float | bool | None
"""A value of ``checkpoint_key``: plain data, so checkpoints load with ``weights_only``."""

EpochCallback = Callable[[int, dict[str, float]], None]
"""Called after each epoch (and its checkpoint) with the epoch number and its log record."""


@runtime_checkable
class TrainingTask(Protocol):
    """What a model family hands to :class:`Trainer`.

    While :meth:`Trainer.fit` runs under DDP, ``module`` is replaced by its
    ``DistributedDataParallel`` wrapper (and restored afterwards), so ``loss`` must run the
    forward pass through ``self.module(...)`` for gradients to be synchronised. A task may
    also define ``after_step(global_step)``, called after every optimizer step (see
    :data:`AfterStep`).
    """

    module: nn.Module

    def batches(self, epoch: int, generator: torch.Generator) -> Iterable[Any]:
        """The batches of one epoch, shuffled with ``generator`` (seeded per epoch)."""
        ...

    def num_batches(self) -> int:
        """How many batches :meth:`batches` yields per epoch (sets the schedule length)."""
        ...

    def loss(self, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch (already on the training device)."""
        ...


AfterStep = Callable[[int], None]
"""Optional ``after_step(global_step)`` method of a :class:`TrainingTask`: when the task has
one, the trainer calls it after every optimizer and scheduler step with the 1-based number
of steps taken so far in the whole run (e.g. AdaLoRA's rank reallocation)."""


# -- the trainer ----------------------------------------------------------------------------
class Trainer:
    """Trains a :class:`TrainingTask` with AdamW; see the module docstring.

    Subclasses may override :meth:`wrap_module`, :meth:`make_optimizer`,
    :meth:`make_scheduler`, :meth:`epoch_batches` and :meth:`compute_gradients` (as the
    DP-SGD trainer :class:`lmrec.privacy.dp.DPTrainer` does: Opacus's private optimizer,
    Poisson-sampled batches, per-sample gradients).

    Args:
        config: Hyperparameters.
        options: Runtime options (device, checkpoint and log files, resume).
    """

    def __init__(
        self, config: TrainerConfig | None = None, options: RunOptions | None = None
    ) -> None:
        self.config = config if config is not None else TrainerConfig()
        self.options = options if options is not None else RunOptions()
        self.device = torch.device(self.options.device)
        self.rank, self.world = rank_and_world()
        self.epoch = 0
        self.history: list[dict[str, float]] = []
        self._task: TrainingTask | None = None
        self._raw: nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._scheduler: LambdaLR | None = None
        self._reset_progress()

    def _reset_progress(self) -> None:
        self._checkpoint_key: dict[str, CheckpointValue] = {}
        self.epoch = 0
        self.history = []
        self.stopped = False
        self.best_score = -float("inf")
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.seconds_to_best: float | None = None
        self.bad_evals = 0
        self.elapsed = 0.0
        self._average: WeightAverage | None = None

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and progress bars (rank 0)."""
        return self.rank == 0

    # -- overridable construction hooks -------------------------------------------------------
    def wrap_module(self, module: nn.Module) -> nn.Module:
        """The module that runs the forward pass: DDP-wrapped inside a process group."""
        if dist.is_available() and dist.is_initialized():
            ids = [self.device.index] if self.device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(module, device_ids=ids)
        return module

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        """AdamW over :func:`parameter_groups` of the unwrapped module."""
        return torch.optim.AdamW(
            parameter_groups(module, self.config.weight_decay, self.config.decay_embeddings),
            lr=self.config.lr,
        )

    def make_scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> LambdaLR:
        """Linear warm-up over ``warmup_ratio`` of ``total_steps``, then linear decay to 0."""
        warmup = min(round(self.config.warmup_ratio * total_steps), total_steps - 1)
        return LambdaLR(optimizer, warmup_linear_decay(warmup, total_steps))

    def epoch_batches(self, task: TrainingTask, epoch: int) -> Iterable[Any]:
        """The batches of ``epoch`` (1-based), shuffled by a generator seeded from it."""
        return task.batches(epoch, _epoch_generator(self.config.seed, epoch))

    # -- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        task: TrainingTask,
        validate: ValidateFn | None = None,
        on_epoch_end: EpochCallback | None = None,
        checkpoint_key: Mapping[str, CheckpointValue] | None = None,
    ) -> FitReport:
        """Train until ``epochs`` or early stopping; leave the module in its best state.

        Args:
            task: Module, batches and loss.
            validate: Returns validation metrics; called (in eval mode, without gradients)
                every ``eval_every`` epochs and after the last one. ``None`` disables early
                stopping and keeps the final state.
            on_epoch_end: Called after each epoch's checkpoint and log line; an exception
                raised there interrupts training (the checkpoint is already written).
            checkpoint_key: What else must match for a checkpoint to be resumed, e.g. the
                model's hyperparameters and a hash of the training data; stored in each
                checkpoint and compared, like the trainer config, on resume.

        Returns:
            Epochs, seconds, the best epoch and its metrics, and one record per epoch.

        Raises:
            ConfigError: When ``monitor`` is not among the validation metrics, or a resumed
                checkpoint was written with other hyperparameters or another
                ``checkpoint_key``.
            ModelFileError: When the checkpoint cannot be read or does not fit the module.
            FloatingPointError: When the loss becomes NaN or infinite.
        """
        writer = self._open_tensorboard()
        self._setup(task)
        self._checkpoint_key = dict(checkpoint_key or {})
        try:
            if self.options.resume:
                self._restore()
            self._rewrite_log()
            while self.epoch < self.config.epochs and not self.stopped:
                record = self.train_epoch()
                if validate is not None and (
                    self.epoch % self.config.eval_every == 0 or self.epoch == self.config.epochs
                ):
                    with self._averaged():  # the average is what is validated and kept
                        metrics = self._validate(validate)
                        record.update({f"valid_{k}": v for k, v in metrics.items()})
                        self._track_best(metrics)
                self.history.append(record)
                self._save_checkpoint()
                self._append_log(record)
                if writer is not None:
                    for key, value in record.items():
                        if key != "epoch":
                            writer.add_scalar(key.replace("_", "/", 1), value, self.epoch)
                    writer.flush()
                if on_epoch_end is not None:
                    on_epoch_end(self.epoch, record)
            if self.best_state is not None:
                self._raw_module().load_state_dict(self.best_state)
            elif self._average is not None:
                self._average.copy_to_module()
        finally:
            task.module = self._raw_module()
            if writer is not None:
                writer.close()
        return FitReport(
            train_seconds=self.elapsed,
            epochs=self.epoch,
            best_epoch=self.best_epoch,
            seconds_to_best=self.seconds_to_best,
            best_valid=dict(self.best_metrics),
            history=[dict(r) for r in self.history],
        )

    def train_epoch(self) -> dict[str, float]:
        """Run one epoch over the task's batches; return ``epoch``, ``loss``, ``lr``, ``seconds``.

        ``loss`` is the mean batch loss, ``lr`` the learning rate of the epoch's last step.
        """
        task = self._require_task()
        assert self._optimizer is not None and self._scheduler is not None
        start = time.perf_counter()
        self.epoch += 1
        task.module.train()
        total, steps = 0.0, 0
        params = [p for g in self._optimizer.param_groups for p in g["params"]]
        lr = self._optimizer.param_groups[0]["lr"]
        after_step: AfterStep | None = getattr(task, "after_step", None)
        steps_before = (self.epoch - 1) * task.num_batches()
        bar = tqdm(
            total=task.num_batches(),
            desc=f"epoch {self.epoch}",
            leave=False,
            disable=not (self.config.show_progress and self.is_main),
        )
        with bar:
            for batch in self.epoch_batches(task, self.epoch):
                value = self.compute_gradients(task, _to_device(batch, self.device), params)
                if not np.isfinite(value):
                    raise FloatingPointError(f"loss is {value} at epoch {self.epoch}, step {steps}")
                lr = self._optimizer.param_groups[0]["lr"]
                self._optimizer.step()
                self._scheduler.step()
                if self._average is not None:
                    self._average.update()
                total += value
                steps += 1
                if after_step is not None:
                    after_step(steps_before + steps)
                bar.update(1)
                bar.set_postfix(loss=f"{total / steps:.4f}")
        seconds = time.perf_counter() - start
        self.elapsed += seconds
        return {
            "epoch": float(self.epoch),
            "loss": total / max(steps, 1),
            "lr": float(lr),
            "seconds": seconds,
        }

    def compute_gradients(
        self, task: TrainingTask, batch: Any, params: list[nn.Parameter]
    ) -> float:
        """Replace the gradients of ``params`` by those of one batch; return the batch loss.

        Backpropagates ``task.loss(batch)`` and clips the global gradient norm to
        ``grad_clip``. A non-finite loss is returned before any gradient is touched. The
        DP-SGD trainer (:class:`lmrec.privacy.dp.DPTrainer`) overrides this with per-sample
        gradients.
        """
        assert self._optimizer is not None
        loss = task.loss(batch)
        value = float(loss.detach())
        if not np.isfinite(value):
            return value
        self._optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        return value

    # -- internals ----------------------------------------------------------------------------
    def _require_task(self) -> TrainingTask:
        if self._task is None:
            raise RuntimeError("Trainer.train_epoch() runs inside fit(); call fit() first")
        return self._task

    def _raw_module(self) -> nn.Module:
        assert self._raw is not None
        return self._raw

    def _setup(self, task: TrainingTask) -> None:
        self._reset_progress()
        seed_everything(self.config.seed)
        n_batches = task.num_batches()
        if n_batches < 1:
            raise ConfigError("the training task yields no batches (is the training set empty?)")
        self._raw = task.module.to(self.device)
        task.module = self.wrap_module(self._raw)
        self._task = task
        self._optimizer = self.make_optimizer(self._raw)
        self._scheduler = self.make_scheduler(self._optimizer, self.config.epochs * n_batches)
        if self.config.ema_decay is not None:
            self._average = WeightAverage(self._raw, self.config.ema_decay)

    def _averaged(self) -> AbstractContextManager[None]:
        return nullcontext() if self._average is None else self._average.applied()

    def _validate(self, validate: ValidateFn) -> dict[str, float]:
        module = self._raw_module()
        module.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in validate().items()}
        module.train()
        if self.world > 1:  # every rank must take the same early-stopping decision
            shared: list[Any] = [metrics]
            dist.broadcast_object_list(shared, src=0)
            metrics = shared[0]
        if self.config.monitor not in metrics:
            raise ConfigError(
                f"TrainerConfig.monitor {self.config.monitor!r} is not among the validation "
                f"metrics {sorted(metrics)}"
            )
        return metrics

    def _track_best(self, metrics: dict[str, float]) -> None:
        score = metrics[self.config.monitor]
        if score > self.best_score:  # NaN never improves
            self.best_score = score
            self.best_epoch = self.epoch
            self.best_metrics = dict(metrics)
            self.seconds_to_best = self.elapsed
            self.best_state = {
                k: v.detach().to("cpu", copy=True)
                for k, v in self._raw_module().state_dict().items()
            }
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            if self.config.patience is not None and self.bad_evals >= self.config.patience:
                self.stopped = True

    # -- checkpoints --------------------------------------------------------------------------
    def _checkpoint_path(self) -> Path | None:
        d = self.options.checkpoint_dir
        return None if d is None else d / CHECKPOINT_FILE

    def _save_checkpoint(self) -> None:
        path = self._checkpoint_path()
        if path is None or not self.is_main:
            return
        assert self._optimizer is not None and self._scheduler is not None
        state = {
            "format": _CHECKPOINT_FORMAT,
            "config": self._comparable_config(),
            "key": self._checkpoint_key,
            "epoch": self.epoch,
            "stopped": self.stopped,
            "model": self._raw_module().state_dict(),
            "optimizer": self._optimizer.state_dict(),
            "scheduler": self._scheduler.state_dict(),
            "best": {
                "score": self.best_score,
                "epoch": self.best_epoch,
                "metrics": self.best_metrics,
                "state": self.best_state,
                "seconds": self.seconds_to_best,
                "bad_evals": self.bad_evals,
            },
            "history": self.history,
            "elapsed": self.elapsed,
            "average": None if self._average is None else self._average.state_dict(),
            "rng": _rng_state(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint intact

    def _comparable_config(self) -> dict[str, Any]:
        return self.config.model_dump(exclude={"show_progress"})

    def _restore(self) -> None:
        path = self._checkpoint_path()
        if path is None:
            raise ConfigError("RunOptions.resume needs RunOptions.checkpoint_dir")
        if not path.exists():
            return  # nothing to resume: a fresh run
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelFileError(f"cannot read checkpoint {path}: {exc}") from exc
        if state.get("format") != _CHECKPOINT_FORMAT:
            raise ModelFileError(f"{path} is not a checkpoint of this trainer version")
        for what, saved, current in (
            ("TrainerConfig", state["config"], self._comparable_config()),
            ("checkpoint key", state["key"], self._checkpoint_key),
        ):
            changed = sorted(
                k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k)
            )
            if changed:
                k = changed[0]
                raise ConfigError(
                    f"checkpoint {path} was written with {what} {k}={saved.get(k)!r}, not "
                    f"{current.get(k)!r}; resume with the same settings or start afresh"
                )
        assert self._optimizer is not None and self._scheduler is not None
        try:
            self._raw_module().load_state_dict(state["model"])
        except RuntimeError as exc:
            raise ModelFileError(f"checkpoint {path} does not fit the module: {exc}") from exc
        self._optimizer.load_state_dict(state["optimizer"])
        self._scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.stopped = bool(state["stopped"])
        best = state["best"]
        self.best_score = float(best["score"])
        self.best_epoch = best["epoch"]
        self.best_metrics = dict(best["metrics"])
        self.best_state = best["state"]
        self.seconds_to_best = best["seconds"]
        self.bad_evals = int(best["bad_evals"])
        self.history = list(state["history"])
        self.elapsed = float(state["elapsed"])
        if self._average is not None and state.get("average") is not None:
            try:
                self._average.load_state_dict(state["average"])
            except (KeyError, ValueError, RuntimeError) as exc:
                raise ModelFileError(f"checkpoint {path}: bad weight average: {exc}") from exc
        _set_rng_state(state["rng"])

    # -- logs ---------------------------------------------------------------------------------
    def _rewrite_log(self) -> None:
        # The log restarts with the history a resumed checkpoint holds (none when fresh), so
        # a crash between checkpoint and log line never leaves gaps or duplicates.
        path = self.options.log_path
        if path is None or not self.is_main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(_json_line(r) for r in self.history))

    def _append_log(self, record: dict[str, float]) -> None:
        path = self.options.log_path
        if path is None or not self.is_main:
            return
        with path.open("a") as f:
            f.write(_json_line(record))

    def _open_tensorboard(self) -> Any:
        if self.options.tensorboard_dir is None or not self.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "RunOptions.tensorboard_dir is set but the tensorboard package is not "
                "installed; install it with: pip install 'lmrec[tensorboard]'"
            ) from None
        return SummaryWriter(log_dir=str(self.options.tensorboard_dir))


def _json_line(record: dict[str, float]) -> str:
    out = {k: (int(v) if k == "epoch" else v) for k, v in record.items()}
    return json.dumps(out) + "\n"


class EncoderTrainer(Trainer):
    """The shared trainer with a language model at its own learning rate.

    The parameters of the module's ``encoder`` attribute (when it has one) train at
    ``config.lr * encoder_lr_scale``; everything else at ``config.lr``. Weight-decay groups
    are those of :func:`parameter_groups` over the whole module.

    Args:
        config: Hyperparameters.
        options: Runtime options.
        encoder_lr_scale: The encoder's learning rate as a multiple of ``config.lr``.
    """

    def __init__(
        self,
        config: TrainerConfig | None = None,
        options: RunOptions | None = None,
        encoder_lr_scale: float = 1.0,
    ) -> None:
        super().__init__(config, options)
        self.encoder_lr_scale = encoder_lr_scale

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        encoder = getattr(module, "encoder", None)
        if not isinstance(encoder, nn.Module):
            return super().make_optimizer(module)
        c = self.config
        in_encoder = {id(p) for p in encoder.parameters()}
        groups: list[dict[str, Any]] = []
        for group in parameter_groups(module, c.weight_decay, c.decay_embeddings):
            own = [p for p in group["params"] if id(p) not in in_encoder]
            tuned = [p for p in group["params"] if id(p) in in_encoder]
            if own:
                groups.append({**group, "params": own})
            if tuned:
                groups.append({**group, "params": tuned, "lr": c.lr * self.encoder_lr_scale})
        return torch.optim.AdamW(groups, lr=c.lr)


def trainer_for(
    config: TrainerConfig, options: RunOptions | None = None, encoder_lr_scale: float = 1.0
) -> EncoderTrainer:
    """The trainer a config asks for: :class:`EncoderTrainer`, or with an enabled ``dp``
    table the DP-SGD trainer :class:`lmrec.privacy.dp.DPTrainer` (Opacus loads only then)."""
    if config.private:
        from lmrec.privacy.dp import DPTrainer

        return DPTrainer(config, options, encoder_lr_scale)
    return EncoderTrainer(config, options, encoder_lr_scale)
