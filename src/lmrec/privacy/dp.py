"""Differentially private training: DP-SGD through Opacus for lmrec's trainable parts.

:class:`DPTrainer` is the shared :class:`~lmrec.training.Trainer` with four changes, all
switched on by an enabled ``dp`` table in a trainer config (:class:`DPConfig`):

- **Poisson sampling**: every step draws each privacy unit independently with probability
  ``q = batch_size / N`` (the sampling that the accountants assume), for the same number of
  steps per epoch as the plain loop.
- **Per-sample gradients**, clipped one by one to ``max_grad_norm``. A task computes them in
  one of two ways:

  * *functional* (the text sequential model, the CTR head on frozen vectors): the task
    gives the loss of one unit (:meth:`FunctionalPrivateTask.sample_loss`) and
    :func:`per_sample_gradients` maps ``torch.func.grad`` over the batch with
    ``torch.func.vmap``. This is exact also where a layer's batch dimension is *not* the
    units: the text model's item table is computed from the adaptor once per batch and is
    shared by every user, so Opacus' hooks (which treat the leading dimension of every
    layer's input as the samples) would read catalog rows as samples there.
  * *hooks* (the CTR cross-encoder with LoRA): every trainable layer sees one row per
    example, so Opacus' ``GradSampleModule`` hooks are valid and cheaper.

- **Noise**: Opacus' ``DPOptimizer`` (around the usual AdamW groups) sums the clipped
  gradients, adds Gaussian noise of standard deviation ``noise_multiplier *
  max_grad_norm`` and divides by the expected batch size. The noise multiplier is given, or
  computed from a target ε for the planned steps (``epochs`` x steps per epoch) with Opacus'
  ``get_noise_multiplier``.
- **Accounting**: after training, the RDP or PRV accountant turns (noise multiplier, q,
  steps taken) into the spent ε at δ (``1 / N`` unless set); :meth:`DPTrainer.privacy_report`
  is stored in the fit report and the run record.

What a unit is: one user's training sequence for ``text_seq`` (user-level DP: adding or
removing a whole user changes the output distribution by at most (ε, δ)); one training
example for the CTR model (example-level DP: a user with many examples is protected less).
Not covered by ε: the choice of the best epoch on validation data (see
:attr:`DPConfig.select_on_validation`), the frozen language model's own pre-training data,
and weights a run starts from (``init_from``). DP-SGD does not run under DDP.
"""

from __future__ import annotations

import math
import secrets
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from lmrec.errors import ConfigError
from lmrec.models.base import FitReport
from lmrec.training.config import DPConfig, RunOptions, TrainerConfig
from lmrec.training.trainer import (
    CheckpointValue,
    EncoderTrainer,
    EpochCallback,
    TrainingTask,
    ValidateFn,
)

__all__ = [
    "PRIVATE_STRATEGIES",
    "DPConfig",
    "DPTrainer",
    "FunctionalPrivateTask",
    "NoisePlan",
    "PrivateTask",
    "check_private_strategy",
    "describe_privacy",
    "per_sample_gradients",
    "plan_noise",
    "poisson_rows",
    "spent_epsilon",
]

PRIVATE_STRATEGIES = ("frozen", "lora")
"""Encoder fine-tuning strategies that train under DP-SGD (tested ones)."""

Forward = Callable[..., Any]
"""The task's module called with the parameters being differentiated."""


@runtime_checkable
class PrivateTask(TrainingTask, Protocol):
    """A :class:`~lmrec.training.TrainingTask` that can train under DP-SGD.

    ``privacy_unit`` names what one sample is (``"user"``, ``"example"``). A task may also
    define ``start_epoch()``, called before each epoch's first batch is drawn.
    """

    privacy_unit: str

    def num_samples(self) -> int:
        """N, the number of privacy units (sample rate = ``batch_size / N``)."""
        ...

    def sample_batch(self, rows: np.ndarray, generator: torch.Generator) -> Any:
        """The batch of the units ``rows`` (a non-empty, sorted Poisson sample)."""
        ...


@runtime_checkable
class FunctionalPrivateTask(PrivateTask, Protocol):
    """A private task whose per-sample gradients come from :func:`per_sample_gradients`."""

    def sample_groups(self, batch: Any) -> list[tuple[tuple[Any, ...], tuple[torch.Tensor, ...]]]:
        """The batch as groups ``(shared, per_sample)``: inputs every unit's loss reads (e.g.
        items re-encoded for the whole batch) and tensors whose first dimension is the
        group's units. Several groups let units of similar size share a padded width."""
        ...

    def sample_loss(
        self, forward: Forward, shared: tuple[Any, ...], sample: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """The scalar loss of one unit; ``sample`` holds its tensors with a batch dimension
        of 1; the module runs as ``forward(...)``."""
        ...


def check_private_strategy(strategy: str, field: str = "tuning.strategy") -> None:
    """Raise :class:`ConfigError` unless ``strategy`` trains under DP-SGD."""
    if strategy not in PRIVATE_STRATEGIES:
        raise ConfigError(
            f"{field}: DP-SGD (trainer.dp) supports {' or '.join(map(repr, PRIVATE_STRATEGIES))}"
            f", got {strategy!r}"
        )


# -- noise and accounting -------------------------------------------------------------------
@dataclass(frozen=True)
class NoisePlan:
    """The noise of a DP-SGD run, fixed before its first step."""

    noise_multiplier: float
    sample_rate: float
    delta: float
    planned_steps: int
    n_samples: int


def plan_noise(dp: DPConfig, n_samples: int, batch_size: int, planned_steps: int) -> NoisePlan:
    """Sample rate, δ and the noise multiplier for ``planned_steps`` steps over ``n_samples``.

    Raises:
        ConfigError: No unit to train on, or the target ε is out of reach.
    """
    if n_samples < 1:
        raise ConfigError("trainer.dp: no privacy units to train on (empty training set)")
    rate = min(1.0, batch_size / n_samples)
    delta = dp.delta if dp.delta is not None else 1.0 / n_samples
    if dp.noise_multiplier is not None:
        sigma = float(dp.noise_multiplier)
    else:
        assert dp.target_epsilon is not None
        from opacus.accountants.utils import get_noise_multiplier

        try:
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=dp.target_epsilon,
                    target_delta=delta,
                    sample_rate=rate,
                    steps=planned_steps,
                    accountant=dp.accountant,
                )
            )
        except ValueError as exc:
            raise ConfigError(
                f"trainer.dp.target_epsilon: {dp.target_epsilon:g} cannot be reached at "
                f"delta={delta:.3g} over {planned_steps} steps ({exc})"
            ) from None
    return NoisePlan(sigma, rate, delta, planned_steps, n_samples)


def spent_epsilon(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """ε at ``delta`` after ``steps`` Poisson-sampled Gaussian steps (``inf`` without noise,
    ``0`` without steps)."""
    if steps <= 0:
        return 0.0
    if noise_multiplier <= 0.0:
        return math.inf
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))


def poisson_rows(n: int, sample_rate: float, generator: torch.Generator) -> np.ndarray:
    """A Poisson sample of ``0..n-1``: each index independently with ``sample_rate``."""
    keep = torch.rand(n, generator=generator) < sample_rate
    return keep.nonzero().squeeze(1).numpy()


# -- per-sample gradients -------------------------------------------------------------------
SampleLoss = Callable[[Forward, tuple[Any, ...], tuple[torch.Tensor, ...]], torch.Tensor]


def per_sample_gradients(
    module: nn.Module,
    sample_loss: SampleLoss,
    shared: tuple[Any, ...],
    samples: tuple[torch.Tensor, ...],
    chunk_size: int | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The gradient of every sample's own loss with respect to the trainable parameters.

    ``torch.func.vmap`` maps ``torch.func.grad`` of ``sample_loss`` over the first dimension
    of ``samples``; everything computed from parameters and ``shared`` alone (an item table)
    is computed once per chunk, its backward pass per sample. Random layers (dropout) draw
    one mask per chunk, shared by its samples (data-independent, so DP still holds).

    Args:
        module: The module; its parameters with ``requires_grad`` are differentiated.
        sample_loss: ``sample_loss(forward, shared, sample)``, the scalar loss of one sample
            whose tensors keep a batch dimension of 1; ``forward(*args)`` runs ``module``.
        shared: Inputs common to all samples.
        samples: Tensors whose first dimension is the samples.
        chunk_size: Samples per vectorised chunk; ``None`` does all at once.

    Returns:
        Parameter name -> ``(n_samples, *shape)`` gradients, and the ``(n_samples,)`` losses.
    """
    params = {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}

    def one(params: dict[str, torch.Tensor], *sample: torch.Tensor) -> torch.Tensor:
        def forward(*args: Any, **kwargs: Any) -> Any:
            return functional_call(module, params, args, kwargs)

        return sample_loss(forward, shared, tuple(t.unsqueeze(0) for t in sample))

    mapped = vmap(
        grad_and_value(one),
        in_dims=(None, *([0] * len(samples))),
        randomness="same",
        chunk_size=chunk_size,
    )
    with warnings.catch_warnings():
        # Some kernels (CPU flash attention) have no batching rule and run in a loop.
        warnings.filterwarnings("ignore", message=".*batching rule.*")
        grads, losses = mapped(params, *samples)
    return dict(grads), losses


# -- the trainer ----------------------------------------------------------------------------
def _generator(seed: int | None, *words: int) -> torch.Generator:
    if seed is None:  # secure_rng: fresh operating-system entropy
        return torch.Generator().manual_seed(secrets.randbits(63))
    derived = int(np.random.SeedSequence([seed, *words]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(derived % 2**63)


class DPTrainer(EncoderTrainer):
    """DP-SGD version of :class:`~lmrec.training.trainer.EncoderTrainer`; see the module
    docstring. Models get it from :func:`lmrec.training.trainer_for`.

    Args:
        config: Hyperparameters with an enabled ``dp`` table.
        options: Runtime options.
        encoder_lr_scale: The encoder's learning rate as a multiple of ``config.lr``.

    Raises:
        ConfigError: ``config.dp`` is missing or disabled.
    """

    def __init__(
        self,
        config: TrainerConfig | None = None,
        options: RunOptions | None = None,
        encoder_lr_scale: float = 1.0,
    ) -> None:
        super().__init__(config, options, encoder_lr_scale)
        if self.config.dp is None or not self.config.dp.enabled:
            raise ConfigError("DPTrainer needs an enabled trainer.dp table")
        try:
            import opacus  # noqa: F401
        except ImportError:
            raise ConfigError(
                "trainer.dp needs the opacus package; install it with: pip install 'lmrec[privacy]'"
            ) from None
        self.dp: DPConfig = self.config.dp
        self.plan: NoisePlan | None = None
        self._unit = "sample"
        self._selects = False
        self._functional = True
        self._gsm: Any = None
        self._steps_per_epoch = 0

    # -- the run ------------------------------------------------------------------------------
    def fit(
        self,
        task: TrainingTask,
        validate: ValidateFn | None = None,
        on_epoch_end: EpochCallback | None = None,
        checkpoint_key: Mapping[str, CheckpointValue] | None = None,
    ) -> FitReport:
        """Train ``task`` with DP-SGD; the report's ``privacy`` holds the spent budget.

        Raises:
            ConfigError: Under DDP, or the task cannot train privately, or the target ε is
                out of reach; see also :meth:`lmrec.training.Trainer.fit`.
        """
        if self.world > 1:
            raise ConfigError(
                "trainer.dp: DP-SGD does not run under torchrun/DDP; train on one process"
            )
        if not isinstance(task, PrivateTask):
            raise ConfigError(f"trainer.dp: {type(task).__name__} cannot train with DP-SGD")
        self._functional = isinstance(task, FunctionalPrivateTask)
        if not self._functional and not getattr(task, "rows_are_samples", False):
            raise ConfigError(
                f"trainer.dp: {type(task).__name__} gives no per-sample losses and its rows "
                "are not its samples"
            )
        self._unit = task.privacy_unit
        self._steps_per_epoch = task.num_batches()
        self.plan = plan_noise(
            self.dp,
            task.num_samples(),
            self.config.batch_size,
            self.config.epochs * self._steps_per_epoch,
        )
        if not self.dp.select_on_validation:
            validate = None
        self._selects = validate is not None
        try:
            report = super().fit(task, validate, on_epoch_end, checkpoint_key)
        finally:
            self._release(task)
        report.privacy = self.privacy_report()
        return report

    def privacy_report(self) -> dict[str, Any]:
        """The guarantee of the steps taken so far: ``epsilon`` at ``delta``, the noise
        multiplier, clipping norm, sample rate, steps, accountant and unit."""
        if self.plan is None:
            raise RuntimeError("DPTrainer.privacy_report() needs a fit() first")
        p = self.plan
        steps = self.epoch * self._steps_per_epoch
        return {
            "epsilon": spent_epsilon(
                p.noise_multiplier, p.sample_rate, steps, p.delta, self.dp.accountant
            ),
            "delta": p.delta,
            "target_epsilon": self.dp.target_epsilon,
            "noise_multiplier": p.noise_multiplier,
            "max_grad_norm": self.dp.max_grad_norm,
            "sample_rate": p.sample_rate,
            "expected_batch_size": self.config.batch_size,
            "steps": steps,
            "planned_steps": p.planned_steps,
            "epochs": self.epoch,
            "accountant": self.dp.accountant,
            "unit": self._unit,
            "n_units": p.n_samples,
            "selected_on_validation": self._selects,
            "secure_rng": self.dp.secure_rng,
        }

    # -- trainer hooks ------------------------------------------------------------------------
    def wrap_module(self, module: nn.Module) -> nn.Module:
        if self._functional:
            return module
        from opacus import GradSampleModule

        # strict=False: frozen language-model layers hold buffers (position ids), which
        # never get per-sample gradients; only the trainable layers are hooked.
        self._gsm = GradSampleModule(module, batch_first=True, loss_reduction="mean", strict=False)
        return self._gsm

    def make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        from opacus.optimizers import DPOptimizer

        assert self.plan is not None
        seed = None if self.dp.secure_rng else self.config.seed
        return DPOptimizer(
            super().make_optimizer(module),
            noise_multiplier=self.plan.noise_multiplier,
            max_grad_norm=self.dp.max_grad_norm,
            expected_batch_size=self.config.batch_size,
            generator=_generator(seed, 1),
        )

    def epoch_batches(self, task: TrainingTask, epoch: int) -> Iterable[Any]:
        assert isinstance(task, PrivateTask) and self.plan is not None
        return self._poisson_batches(task, epoch, self.plan.sample_rate)

    def _poisson_batches(self, task: PrivateTask, epoch: int, rate: float) -> Iterator[Any]:
        seed = None if self.dp.secure_rng else self.config.seed
        generator = _generator(seed, 2, epoch)
        start_epoch = getattr(task, "start_epoch", None)
        if start_epoch is not None:
            start_epoch()
        n = task.num_samples()
        for _ in range(task.num_batches()):
            rows = poisson_rows(n, rate, generator)
            # An empty draw is still a step: it adds noise alone (the accountant counts it).
            yield task.sample_batch(rows, generator) if len(rows) else None

    def compute_gradients(
        self, task: TrainingTask, batch: Any, params: list[nn.Parameter]
    ) -> float:
        """Set ``p.grad_sample`` of every trainable parameter; the optimizer clips, adds
        noise and steps. Returns the mean loss of the sampled units (0 for an empty draw)."""
        assert self._optimizer is not None
        self._optimizer.zero_grad(set_to_none=True)
        if batch is None:
            for p in params:
                p.grad_sample = p.new_zeros((0, *p.shape))  # type: ignore[attr-defined]
            return 0.0
        if not self._functional:
            loss = task.loss(batch)
            value = float(loss.detach())
            if np.isfinite(value):
                with warnings.catch_warnings():
                    # Opacus' module hooks fire on frozen inputs too; harmless there.
                    warnings.filterwarnings("ignore", message="Full backward hook is firing")
                    loss.backward()
            return value
        assert isinstance(task, FunctionalPrivateTask)
        parts: list[dict[str, torch.Tensor]] = []
        losses: list[torch.Tensor] = []
        for shared, samples in task.sample_groups(batch):
            grads, loss = per_sample_gradients(
                task.module, task.sample_loss, shared, samples, self.dp.chunk_size
            )
            parts.append(grads)
            losses.append(loss.detach())
        by_param = {id(p): name for name, p in task.module.named_parameters()}
        for p in params:
            name = by_param.get(id(p))
            if name is None or name not in parts[0]:
                raise RuntimeError(f"no per-sample gradient for a trainable parameter ({name})")
            grad_sample = parts[0][name] if len(parts) == 1 else torch.cat([g[name] for g in parts])
            p.grad_sample = grad_sample.to(p.dtype)  # type: ignore[attr-defined]
        return float(torch.cat(losses).mean())

    def _release(self, task: TrainingTask) -> None:
        """Remove Opacus' hooks and per-sample state from the module."""
        if self._gsm is not None:
            self._gsm.remove_hooks()
            self._gsm = None
        for p in task.module.parameters():
            for attr in ("grad_sample", "summed_grad", "_processed"):
                if hasattr(p, attr):
                    delattr(p, attr)


def describe_privacy(privacy: Mapping[str, Any]) -> str:
    """One readable line of a :meth:`DPTrainer.privacy_report`."""
    eps = float(privacy["epsilon"])
    shown = "inf" if math.isinf(eps) else f"{eps:.3g}"
    selection = (
        "; the best epoch was chosen on validation data, which ε does not cover"
        if privacy.get("selected_on_validation")
        else ""
    )
    return (
        f"differential privacy: ε = {shown} at δ = {float(privacy['delta']):.3g} "
        f"({privacy['unit']}-level, {privacy['n_units']} {privacy['unit']}s; noise multiplier "
        f"{float(privacy['noise_multiplier']):.3g}, clip {float(privacy['max_grad_norm']):g}, "
        f"sample rate {float(privacy['sample_rate']):.3g}, {privacy['steps']} steps, "
        f"{privacy['accountant']}){selection}"
    )
