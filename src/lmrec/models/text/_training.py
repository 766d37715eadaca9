"""Training the text sequential recommender: next-item batches, fresh item vectors, the
per-epoch refresh of cached vectors and the optimizer with a separate encoder learning rate."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from lmrec.models.baselines.sasrec._model import PAD
from lmrec.models.baselines.sasrec._recommender import SequenceTask
from lmrec.models.text._model import TextSeqNetwork
from lmrec.text.tuning import TunableEncoder
from lmrec.training.trainer import rank_and_world

_IGNORE = -100
_REFRESH_BATCH = 64


class ItemInputs:
    """What the tuned encoder reads for each item, prepared once before training.

    For ``top_k`` these are the hidden states entering the trained layers (the frozen lower
    layers run once per item, never again); for every other strategy the token ids.

    Args:
        encoder: The encoder being fine-tuned.
        texts: Every item's text, row ``i`` = item index ``i``.
        show_progress: Show a progress bar while the lower layers run (``top_k``).
    """

    def __init__(
        self, encoder: TunableEncoder, texts: Sequence[str], show_progress: bool = False
    ) -> None:
        self.encoder = encoder
        self.texts = list(texts)
        self.token_ids = encoder.encoder.token_ids(self.texts)
        self.lengths = np.array([len(t) for t in self.token_ids], dtype=np.int64)
        self.states: list[torch.Tensor] | None = None
        if encoder.config.strategy == "top_k":
            self.states = self._lower_states(show_progress)

    def _lower_states(self, show_progress: bool) -> list[torch.Tensor]:
        from tqdm.auto import tqdm

        states: list[torch.Tensor] = [torch.empty(0)] * len(self.token_ids)
        order = np.argsort(-self.lengths, kind="stable")
        was_training = self.encoder.training
        self.encoder.eval()
        with tqdm(
            total=len(order), desc="lower layers", unit="item", disable=not show_progress
        ) as bar:
            for start in range(0, len(order), _REFRESH_BATCH):
                rows = order[start : start + _REFRESH_BATCH]
                ids, mask = self.encoder.encoder.pad([self.token_ids[i] for i in rows])
                hidden = self.encoder.lower_states(ids, mask).cpu()
                for j, i in enumerate(rows):
                    states[i] = hidden[j, : self.lengths[i]].clone()
                bar.update(len(rows))
        self.encoder.train(was_training)
        return states

    def batch(self, items: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder inputs of ``items`` and their attention mask, right-padded."""
        if self.states is None:
            return self.encoder.encoder.pad([self.token_ids[i] for i in items])
        width = int(self.lengths[items].max())
        hidden = torch.zeros(len(items), width, self.states[items[0]].shape[-1])
        mask = torch.zeros(len(items), width, dtype=torch.int64)
        for j, i in enumerate(items):
            n = int(self.lengths[i])
            hidden[j, :n] = self.states[i]
            mask[j, :n] = 1
        return hidden, mask

    def encode_all(self) -> torch.Tensor:
        """Every item's vector with the encoder's current weights (eval mode, no gradients)."""
        if self.states is None:
            return torch.from_numpy(self.encoder.encode(self.texts))
        order = np.argsort(-self.lengths, kind="stable")
        out = torch.empty(len(self.texts), self.encoder.encoder.dim)
        was_training = self.encoder.training
        self.encoder.eval()
        with torch.no_grad():
            for start in range(0, len(order), _REFRESH_BATCH):
                rows = order[start : start + _REFRESH_BATCH]
                hidden, mask = self.batch(rows)
                device = next(self.encoder.parameters()).device
                vectors = self.encoder.upper_forward(hidden.to(device), mask.to(device))
                out[torch.from_numpy(rows)] = vectors.float().cpu()
        self.encoder.train(was_training)
        return out


class TextSequenceTask(SequenceTask):
    """The :class:`lmrec.training.TrainingTask` of the text sequential recommender.

    SASRec's shuffled, sharded sequence batches, each extended (when the encoder trains)
    with the batch's fresh items and their encoder inputs.

    Args:
        network: The network (its ``encoder`` is ``None`` when the encoder is frozen).
        inputs: Token rows (``lmrec.models.baselines.sasrec.training_sequences``).
        targets: Matching next-item targets (``-100`` on padding).
        batch_size: Sequences per batch (per process under DDP).
        fresh_items: Most items per batch re-encoded with gradients.
        item_inputs: Encoder inputs per item; required when the encoder trains.
        candidates: ``(n_items,)`` bool, the items the softmax ranks each target against;
            ``None``: all. Items without a training interaction are left out, so an item
            held out of training (a cold item) is never learned as a mere negative.
    """

    def __init__(
        self,
        network: TextSeqNetwork,
        inputs: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        fresh_items: int,
        item_inputs: ItemInputs | None = None,
        candidates: np.ndarray | None = None,
    ) -> None:
        super().__init__(network, inputs, targets, batch_size)
        self.blocked: torch.Tensor | None = None
        if candidates is not None and not bool(np.all(candidates)):
            self.blocked = torch.from_numpy(~np.asarray(candidates, dtype=bool))
        self.text_network = network
        self.fresh_items = fresh_items
        self.item_inputs = item_inputs
        self.stale = item_inputs is not None  # the cache must be computed before the first step
        self.encode_seconds = 0.0

    def refresh(self) -> None:
        """Recompute the cached vectors of every item with the encoder's current weights.

        Under DDP every rank must call it at the same point: rank 0 encodes and broadcasts
        the vectors, so the caches agree exactly and the other ranks skip the encoding.
        """
        if self.item_inputs is None:
            return
        start = time.perf_counter()
        buffer = self.text_network.seq.text_vectors
        rank, world = rank_and_world()
        if rank == 0:
            vectors = self.item_inputs.encode_all()
            with torch.no_grad():
                buffer.copy_(vectors.to(buffer.device, buffer.dtype))
        if world > 1:
            dist.broadcast(buffer, src=0)
        self.encode_seconds += time.perf_counter() - start
        self.stale = False

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[tuple[Any, ...]]:
        self.start_epoch()
        for inputs, targets in super().batches(epoch, generator):
            yield self._with_fresh(inputs, targets, generator)

    def _with_fresh(
        self, inputs: torch.Tensor, targets: torch.Tensor, generator: torch.Generator
    ) -> tuple[Any, ...]:
        """The batch, extended (when the encoder trains) with its fresh items' inputs."""
        if self.item_inputs is None:
            return inputs, targets
        fresh = torch.unique(targets[targets != _IGNORE])
        if len(fresh) > self.fresh_items:
            pick = torch.randperm(len(fresh), generator=generator)[: self.fresh_items]
            fresh = torch.sort(fresh[pick]).values
        fresh_inputs, fresh_mask = self.item_inputs.batch(fresh.numpy())
        self.stale = True  # the step that follows moves the encoder
        return inputs, targets, fresh, fresh_inputs.cpu(), fresh_mask.cpu()

    def loss(self, batch: tuple[Any, ...]) -> torch.Tensor:
        inputs, targets, *fresh = batch
        hidden, table = self.module(inputs, *fresh)
        real = targets != _IGNORE
        logits = self._training_logits(hidden[real], table)
        return F.cross_entropy(logits, targets[real])

    def _training_logits(self, hidden: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        logits = self.text_network.seq.logits(hidden, table)
        if self.blocked is None:
            return logits
        return logits.masked_fill(self.blocked.to(logits.device), float("-inf"))

    # -- DP-SGD (lmrec.privacy.dp): one user's sequence is one privacy unit ----------------
    privacy_unit = "user"

    def start_epoch(self) -> None:
        """Bring the cached item vectors up to date before an epoch's first batch."""
        if self.stale:
            self.refresh()

    def num_samples(self) -> int:
        """Training users (one sequence each)."""
        return len(self.inputs)

    def sample_batch(self, rows: np.ndarray, generator: torch.Generator) -> tuple[Any, ...]:
        """The batch of the users ``rows`` (a Poisson sample), cut like :meth:`batches`."""
        index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
        inputs, targets = self.inputs[index], self.targets[index]
        width = int((inputs != PAD).sum(dim=1).max())
        return self._with_fresh(inputs[:, -width:], targets[:, -width:], generator)

    def sample_groups(
        self, batch: tuple[Any, ...]
    ) -> list[tuple[tuple[Any, ...], tuple[torch.Tensor, ...]]]:
        """Per user: tokens and targets; shared: the fresh items and their encoder inputs.

        Users are grouped by sequence length (powers of two), each group cut to its own
        width, so that short sequences do not pay for the padding of long ones.
        """
        inputs, targets, *fresh = batch
        lengths = (inputs != PAD).sum(dim=1)
        bucket = torch.ceil(torch.log2(lengths.clamp(min=1).double())).long()
        groups: list[tuple[tuple[Any, ...], tuple[torch.Tensor, ...]]] = []
        for b in torch.unique(bucket).tolist():
            rows = (bucket == b).nonzero().squeeze(1)
            width = int(lengths[rows].max())
            groups.append((tuple(fresh), (inputs[rows, -width:], targets[rows, -width:])))
        return groups

    def sample_loss(
        self,
        forward: Callable[..., Any],
        shared: tuple[Any, ...],
        sample: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """One user's loss: mean cross-entropy over the real slots of their sequence."""
        tokens, targets = sample
        hidden, table = forward(tokens, *shared)
        logits = self._training_logits(hidden[0], table)
        return masked_cross_entropy(logits, targets[0])


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``(slots, n_items)`` logits over the slots whose target is not
    ``-100``, without boolean indexing (so that ``torch.func.vmap`` can batch it); 0 when
    every slot is padding."""
    real = targets != _IGNORE
    log_probs = torch.log_softmax(logits, dim=-1)
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * real).sum() / real.sum().clamp(min=1)

    def after_step(self, global_step: int) -> None:
        """AdaLoRA's rank reallocation after each optimizer step (a no-op otherwise)."""
        if self.text_network.encoder is not None:
            self.text_network.encoder.on_step(global_step)
