"""Training hyperparameters (:class:`TrainerConfig`) and runtime options (:class:`RunOptions`).

Hyperparameters change what a run learns and are saved with a model; runtime options say
where and how a run executes (device, files, resume) and never change the result of an
uninterrupted run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


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
