"""Training hyperparameters (:class:`TrainerConfig`) and runtime options (:class:`RunOptions`).

Hyperparameters change what a run learns and are saved with a model; runtime options say
where and how a run executes (device, files, resume) and never change the result of an
uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Accountant = Literal["rdp", "prv"]
"""Privacy accountants: Rényi DP (``rdp``) or the privacy-loss-random-variable accountant
(``prv``, tighter for many steps)."""


class DPConfig(BaseModel):
    """Differentially private training (DP-SGD through Opacus): the ``[...trainer.dp]`` table.

    Every step draws a Poisson sample of the privacy units (each unit independently with
    probability ``batch_size / N``), clips each unit's gradient to ``max_grad_norm``, adds
    Gaussian noise of standard deviation ``noise_multiplier * max_grad_norm`` to their sum
    and divides by ``batch_size``. A unit is one user's training sequence for ``text_seq``
    (user-level DP) and one training example for the CTR model (example-level DP). The
    spent ε at ``delta`` is reported after training (see :mod:`lmrec.privacy.dp`).

    Give exactly one of ``target_epsilon`` (the noise is calibrated to reach it after the
    planned ``epochs``) or ``noise_multiplier``. The trainer's ``grad_clip`` does not apply:
    per-unit clipping replaces it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Train with DP-SGD; ``false`` keeps the table but trains normally."""

    target_epsilon: float | None = Field(default=None, gt=0.0)
    """The ε to reach at ``delta`` after all planned steps (``epochs`` x steps per epoch);
    the noise multiplier is computed from it. Early stopping spends less."""

    noise_multiplier: float | None = Field(default=None, ge=0.0)
    """Noise standard deviation as a multiple of ``max_grad_norm``, instead of a target ε
    (``0`` clips without noise: ε is infinite)."""

    delta: float | None = Field(default=None, gt=0.0, lt=1.0)
    """δ of the (ε, δ) guarantee; unset uses ``1 / N`` (N = privacy units in training)."""

    max_grad_norm: float = Field(default=1.0, gt=0.0)
    """Each unit's gradient is clipped to this L2 norm before noise is added."""

    accountant: Accountant = "rdp"
    """``rdp`` (Rényi DP) or ``prv`` (privacy loss random variables)."""

    select_on_validation: bool = True
    """Keep the epoch with the best validation score (early stopping). The validation
    interactions are then used outside the DP mechanism and ε does not cover that choice;
    ``false`` ignores validation during training and keeps the last epoch."""

    secure_rng: bool = False
    """Draw the noise and the Poisson samples from a generator seeded with fresh operating
    system entropy instead of ``trainer.seed``. Off, runs are reproducible, but anyone who
    knows the seed (it is in the config) can regenerate the noise; turn it on for a model
    that leaves your hands."""

    chunk_size: int | None = Field(default=None, ge=1)
    """Units whose per-sample gradients are computed at once; unset: the whole batch.
    Lower it to save memory (results do not depend on it except through dropout masks)."""

    @model_validator(mode="after")
    def _one_noise_source(self) -> DPConfig:
        if self.enabled and (self.target_epsilon is None) == (self.noise_multiplier is None):
            given = "both" if self.target_epsilon is not None else "neither"
            raise ValueError(
                f"give exactly one of target_epsilon or noise_multiplier (got {given})"
            )
        return self


class TrainerConfig(BaseModel):
    """Hyperparameters of the shared training loop (:class:`lmrec.training.Trainer`)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=20, ge=1)
    """Maximum number of passes over the training batches."""

    batch_size: int = Field(default=128, ge=1)
    """Training examples per optimizer step (per process under DDP)."""

    lr: float = Field(default=1e-3, gt=0.0, le=10.0)
    """Peak learning rate of AdamW, reached at the end of the warm-up."""

    weight_decay: float = Field(default=0.0, ge=0.0)
    """Decoupled AdamW weight decay; applied to weight matrices of layers only (not to
    biases, normalisation layers or embedding tables, see :func:`parameter_groups`)."""

    decay_embeddings: bool = False
    """Also decay embedding tables (e.g. item embeddings of sparse catalogues, which the
    default leaves undecayed so that rows a batch never touches are not shrunk)."""

    warmup_ratio: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Fraction of all optimizer steps (``epochs * batches per epoch``) spent warming the
    learning rate up linearly from 0; it then decays linearly to 0 at the last step."""

    grad_clip: float | None = Field(default=1.0, gt=0.0)
    """Maximum global L2 norm of the gradient before each step; ``None`` turns clipping
    off."""

    ema_decay: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Validate, keep and return an exponential moving average of the weights (Polyak
    averaging) instead of the weights themselves, updated after every step with this decay
    (e.g. 0.999: about the last 1,000 steps; :class:`lmrec.training.WeightAverage`).
    ``None``: no averaging. Training itself is unchanged; the average is in checkpoints."""

    patience: int | None = Field(default=5, ge=1)
    """Validations in a row without improvement of ``monitor`` after which training
    stops; ``None`` never stops early (the best state is still restored)."""

    monitor: str = Field(default="ndcg@10", min_length=1)
    """Key of the validation metric that selects the best epoch; higher is better."""

    eval_every: int = Field(default=1, ge=1)
    """Validate every this many epochs (and always after the last epoch)."""

    seed: int = Field(default=42, ge=0)
    """Seed of the python, numpy and torch generators and of the batch order."""

    show_progress: bool = False
    """Show a progress bar per epoch with the running loss."""

    dp: DPConfig | None = None
    """Differentially private training (DP-SGD); unset trains normally. See
    :class:`DPConfig`."""

    @property
    def private(self) -> bool:
        """Whether this config trains with DP-SGD (a ``dp`` table that is enabled)."""
        return self.dp is not None and self.dp.enabled


@dataclass
class RunOptions:
    """Where and how a training run executes; none of these change what is learned.

    Args:
        checkpoint_dir: Directory for the per-epoch checkpoint ``last.pt``; ``None`` writes
            none.
        resume: Continue from the checkpoint in ``checkpoint_dir`` when there is one.
        log_path: JSONL file that receives one line of metrics per epoch; ``None`` writes
            none.
        tensorboard_dir: Directory for TensorBoard event files; needs the optional
            ``tensorboard`` package.
        device: Torch device the module trains on, e.g. ``"cpu"`` or ``"cuda:0"``.
    """

    checkpoint_dir: Path | None = None
    resume: bool = False
    log_path: Path | None = None
    tensorboard_dir: Path | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        # Accept plain strings from callers and config files; store paths.
        for name in ("checkpoint_dir", "log_path", "tensorboard_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, Path(value))

    def with_work_dir(self, work_dir: Path | None, resume: bool) -> RunOptions:
        """A copy whose unset checkpoint and log places are filled in from ``work_dir``.

        Explicit options win; a model's ``fit`` passes the work directory of its fit options
        (``checkpoints/`` and ``train_log.jsonl`` inside it), and ``resume`` applies only to
        the checkpoint directory chosen that way.
        """
        opts = RunOptions(**vars(self))
        if work_dir is not None:
            if opts.checkpoint_dir is None:
                opts.checkpoint_dir = Path(work_dir) / "checkpoints"
                opts.resume = resume
            if opts.log_path is None:
                opts.log_path = Path(work_dir) / "train_log.jsonl"
        return opts
