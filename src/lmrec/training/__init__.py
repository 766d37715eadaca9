"""The shared training loop used by every trainable model family."""

from lmrec.training._support import WeightAverage
from lmrec.training.config import DPConfig, RunOptions, TrainerConfig
from lmrec.training.trainer import (
    CHECKPOINT_FILE,
    CheckpointValue,
    Trainer,
    TrainingTask,
    parameter_groups,
    rank_and_world,
    seed_everything,
    shard_indices,
    trainer_for,
    warmup_linear_decay,
)

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointValue",
    "DPConfig",
    "RunOptions",
    "Trainer",
    "TrainerConfig",
    "TrainingTask",
    "WeightAverage",
    "parameter_groups",
    "rank_and_world",
    "seed_everything",
    "shard_indices",
    "trainer_for",
    "warmup_linear_decay",
]
