"""Training the CTR cross-encoder with the shared :class:`~lmrec.training.Trainer`.

Two tasks: with a frozen language model the pooled pair vectors are computed once and only
the head trains (:class:`VectorTask`); otherwise every step runs the language model over
the pairs (:class:`PairTask`), in batches of similar token length to cut padding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lmrec.models.ctr._config import Objective
from lmrec.models.ctr._model import CrossEncoderCTR
from lmrec.training.trainer import rank_and_world, shard_indices

PadFn = Callable[[Sequence[Sequence[int]]], tuple[torch.Tensor, torch.Tensor]]
"""Right-pads token id rows into ``(input_ids, attention_mask)``."""

_BUCKET_BATCHES = 50  # batches whose examples are sorted by length together


def ctr_loss(logits: torch.Tensor, targets: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Binary cross-entropy on logits (``bce``) or squared error of ``sigmoid(logit)``
    against targets in ``[0, 1]`` (``mse``)."""
    if objective == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    return F.mse_loss(torch.sigmoid(logits), targets)


def _epoch_rows(n: int, generator: torch.Generator) -> np.ndarray:
    order = torch.randperm(n, generator=generator).numpy()
    rank, world = rank_and_world()
    if world > 1:
        order = order[shard_indices(n, rank, world)]
    return order


def _shard_batches(n: int, batch_size: int) -> int:
    _, world = rank_and_world()
    per_rank = -(-n // world)
    return -(-per_rank // batch_size)


class VectorTask:
    """The head alone on cached pair vectors (frozen language model).

    Args:
        head: The MLP head.
        vectors: ``(n, dim)`` pooled pair vectors.
        targets: ``(n,)`` labels (``bce``) or scaled ratings (``mse``).
        batch_size: Examples per step.
        objective: ``bce`` or ``mse``.
    """

    def __init__(
        self,
        head: nn.Module,
        vectors: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        objective: Objective,
    ) -> None:
        self.module: nn.Module = head
        self.vectors = vectors
        self.targets = targets
        self.batch_size = batch_size
        self.objective = objective

    def num_batches(self) -> int:
        return _shard_batches(len(self.targets), self.batch_size)

    def batches(
        self, epoch: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.from_numpy(_epoch_rows(len(self.targets), generator))
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            yield self.vectors[rows], self.targets[rows]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        vectors, targets = batch
        return ctr_loss(self.module(vectors), targets, self.objective)

    # -- DP-SGD (lmrec.privacy.dp): one training example is one privacy unit ----------------
    privacy_unit = "example"

    def num_samples(self) -> int:
        return len(self.targets)

    def sample_batch(
        self, rows: np.ndarray, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return self.vectors[index], self.targets[index]

    def sample_groups(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> list[tuple[tuple[Any, ...], tuple[torch.Tensor, ...]]]:
        return [((), batch)]

    def sample_loss(
        self, forward: Callable[..., Any], shared: tuple[Any, ...], sample: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        vectors, targets = sample
        return ctr_loss(forward(vectors), targets, self.objective)


class PairTask:
    """The whole cross-encoder on token ids; batches group pairs of similar length.

    Each epoch shuffles the pairs, sorts every run of ``50 * batch_size`` of them by length,
    cuts batches and shuffles the batches, so a batch carries little padding yet the order
    still changes from epoch to epoch.

    Args:
        network: The cross-encoder.
        pair_ids: Token ids per example.
        targets: ``(n,)`` labels (``bce``) or scaled ratings (``mse``).
        batch_size: Examples per step.
        objective: ``bce`` or ``mse``.
        pad: Pads token rows into tensors.
    """

    def __init__(
        self,
        network: CrossEncoderCTR,
        pair_ids: Sequence[Sequence[int]],
        targets: torch.Tensor,
        batch_size: int,
        objective: Objective,
        pad: PadFn,
    ) -> None:
        self.module: nn.Module = network
        self.network = network
        self.pair_ids = pair_ids
        self.lengths = np.array([len(p) for p in pair_ids], dtype=np.int64)
        self.targets = targets
        self.batch_size = batch_size
        self.objective = objective
        self.pad = pad

    def num_batches(self) -> int:
        return _shard_batches(len(self.targets), self.batch_size)

    def batches(
        self, epoch: int, generator: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        order = _epoch_rows(len(self.targets), generator)
        bucket = self.batch_size * _BUCKET_BATCHES
        cuts: list[np.ndarray] = []
        for start in range(0, len(order), bucket):
            chunk = order[start : start + bucket]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            step = self.batch_size
            cuts.extend(chunk[i : i + step] for i in range(0, len(chunk), step))
        for k in torch.randperm(len(cuts), generator=generator).tolist():
            rows = cuts[k]
            input_ids, attention_mask = self.pad([self.pair_ids[i] for i in rows])
            yield input_ids, attention_mask, self.targets[torch.from_numpy(rows)]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        input_ids, attention_mask, targets = batch
        return ctr_loss(self.module(input_ids, attention_mask), targets, self.objective)

    def after_step(self, global_step: int) -> None:
        """AdaLoRA's rank reallocation after each optimizer step (a no-op otherwise)."""
        self.network.encoder.on_step(global_step)

    # -- DP-SGD (lmrec.privacy.dp): one training example is one privacy unit ----------------
    privacy_unit = "example"
    rows_are_samples = True
    """Every trainable layer sees one row per example, so Opacus' per-sample hooks apply."""

    def num_samples(self) -> int:
        return len(self.targets)

    def sample_batch(
        self, rows: np.ndarray, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        input_ids, attention_mask = self.pad([self.pair_ids[i] for i in rows])
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        return input_ids, attention_mask, self.targets[index]


def run_batched(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    pair_ids: Sequence[Sequence[int]],
    pad: PadFn,
    batch_size: int,
    *,
    show_progress: bool = False,
    desc: str = "pairs",
) -> np.ndarray:
    """Apply ``fn(input_ids, attention_mask)`` to all pairs, longest first, without gradients.

    Pairs of similar token length share a batch, which keeps padding small; the rows of the
    result follow ``pair_ids``. The caller sets eval mode.

    Returns:
        float32 array whose first axis matches ``pair_ids``.
    """
    lengths = np.fromiter((len(p) for p in pair_ids), dtype=np.int64, count=len(pair_ids))
    order = np.argsort(-lengths, kind="stable")
    out: np.ndarray | None = None
    with (
        torch.inference_mode(),
        tqdm(total=len(order), desc=desc, unit="pair", disable=not show_progress) as bar,
    ):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, attention_mask = pad([pair_ids[i] for i in rows])
            values = fn(input_ids, attention_mask).float().cpu().numpy()
            if out is None:
                out = np.empty((len(order), *values.shape[1:]), dtype=np.float32)
            out[rows] = values
            bar.update(len(rows))
    return out if out is not None else np.empty(0, dtype=np.float32)
