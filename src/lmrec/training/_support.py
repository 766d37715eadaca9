"""Helpers of the training loop: seeds, ranks and shards, AdamW groups, the schedule, RNG
state, the weight average.

Split from :mod:`lmrec.training.trainer`, which re-exports the public ones.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

_NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
)


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the current process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_indices(n: int, rank: int, world: int) -> np.ndarray:
    """The positions ``0..n-1`` that process ``rank`` of ``world`` handles.

    Every rank gets the same number of positions (``ceil(n / world)``), wrapping around to
    the start when ``n`` does not divide evenly, so that all ranks run the same number of
    steps and no collective operation waits forever.

    Args:
        n: Number of examples (``>= 1``).
        rank: This process, ``0 <= rank < world``.
        world: Number of processes.

    Returns:
        int64 positions, strided: rank ``r`` takes ``r, r + world, ...``.
    """
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    per_rank = -(-n // world)
    return (np.arange(rank, per_rank * world, world, dtype=np.int64)) % n


def parameter_groups(
    module: nn.Module, weight_decay: float, decay_embeddings: bool = False
) -> list[dict[str, Any]]:
    """AdamW parameter groups: decay weight matrices of layers, nothing else.

    Biases, normalisation parameters and embedding tables are not decayed: shrinking a
    LayerNorm gain or a bias towards 0 has no regularising meaning, and decoupled decay
    would shrink every embedding row at every step, also the rows of items that the batch
    never touched (which hurts rare items). A parameter shared by several modules (tied
    embeddings) is left undecayed when any of its owners is an embedding or a norm.

    Args:
        module: The module to optimise.
        weight_decay: Decay of the decayed group.
        decay_embeddings: Put embedding tables in the decayed group too.

    Returns:
        Up to two groups (empty ones left out) with a ``weight_decay`` each.
    """
    exempt: set[int] = set()
    for sub in module.modules():
        for p in sub.parameters(recurse=False):
            embedding = isinstance(sub, nn.Embedding)
            if p.ndim < 2 or (
                isinstance(sub, _NO_DECAY_MODULES) and not (embedding and decay_embeddings)
            ):
                exempt.add(id(p))
    decay: list[nn.Parameter] = []
    keep: list[nn.Parameter] = []
    for p in module.parameters():  # yields each shared parameter once
        if p.requires_grad:
            (keep if id(p) in exempt else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": keep, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def warmup_linear_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Learning-rate multiplier for ``LambdaLR``: linear warm-up, then linear decay to 0.

    Step ``s`` (0-based) of ``total_steps`` trains at ``(s + 1) / warmup_steps`` of the peak
    during the warm-up (no wasted step at rate 0) and at
    ``(total_steps - s) / (total_steps - warmup_steps)`` afterwards, so the first step after
    the warm-up runs at the peak and the rate reaches 0 right after the last step.
    """
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"need 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / (total_steps - warmup_steps))

    return factor


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # Derived from (seed, epoch) alone, so a resumed run shuffles exactly like an
    # uninterrupted one without saving generator state.
    derived = int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0])
    return torch.Generator().manual_seed(derived)


class WeightAverage:
    """An exponential moving average of a module's trainable parameters (Polyak averaging).

    After ``t`` updates the average moves towards the weights with the rate ``1 - d_t``,
    ``d_t = min(decay, (1 + t) / (10 + t))``: fast at first, so the average does not keep
    the random initialisation, then at ``1 - decay``.

    Args:
        module: The module whose parameters (those with ``requires_grad``) are averaged.
        decay: The long-run decay, e.g. 0.999 (an average over about 1,000 steps).
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.shadow = {n: p.detach().clone() for n, p in self.params}

    def update(self) -> None:
        """Move the average towards the current weights (call after each optimizer step)."""
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for name, param in self.params:
                self.shadow[name].mul_(d).add_(param.detach(), alpha=1.0 - d)

    def copy_to_module(self) -> None:
        """Overwrite the module's parameters with the average."""
        with torch.no_grad():
            for name, param in self.params:
                param.copy_(self.shadow[name])

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The module holds the average inside the block and its own weights again after."""
        own = {n: p.detach().clone() for n, p in self.params}
        self.copy_to_module()
        try:
            yield
        finally:
            with torch.no_grad():
                for name, param in self.params:
                    param.copy_(own[name])

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "shadow": self.shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        shadow = state["shadow"]
        if set(shadow) != set(self.shadow):
            raise ValueError("the saved weight average names other parameters")
        self.steps = int(state["steps"])
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
