"""Joining the process group that ``torchrun`` describes, and the few collectives a run needs.

``torchrun --nproc_per_node=N`` starts ``N`` copies of a program and tells each its place
through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``). :func:`init_from_env` turns them into a process group (gloo on CPU, nccl on
CUDA); from then on :class:`lmrec.training.Trainer` wraps its module in
``DistributedDataParallel`` and shards the batches, and :func:`lmrec.experiment.run_experiment`
lets only rank 0 write the run directory. Without ``torchrun`` (``WORLD_SIZE`` unset or 1)
every function here is a no-op, so single-process code paths stay unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from lmrec.errors import ConfigError
from lmrec.training.trainer import rank_and_world

T = TypeVar("T")

DEFAULT_TIMEOUT = timedelta(hours=2)
"""How long a collective waits for the other ranks. Longer than torch's default (30 minutes
for gloo, 10 for nccl) because the other ranks idle while rank 0 alone loads the data or
evaluates; a rank that dies is noticed by ``torchrun`` at once, whatever the timeout."""

_REQUIRED_ENV = ("RANK", "MASTER_ADDR", "MASTER_PORT")


def env_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``), 1 when unset.

    Raises:
        ConfigError: ``WORLD_SIZE`` is not a positive integer.
    """
    raw = os.environ.get("WORLD_SIZE", "").strip()
    if not raw:
        return 1
    try:
        world = int(raw)
    except ValueError:
        world = 0
    if world < 1:
        raise ConfigError(f"WORLD_SIZE must be a positive integer, got {raw!r}")
    return world


def init_from_env(device: str | torch.device = "cpu", timeout: timedelta = DEFAULT_TIMEOUT) -> bool:
    """Join the process group described by ``torchrun``'s environment, if there is one.

    Idempotent: when a process group is already initialised (by an earlier call or by the
    caller), it is kept as it is.

    Args:
        device: The device this process trains on. A CUDA device selects the nccl backend
            and becomes the current CUDA device (``cuda`` without an index means
            ``cuda:$LOCAL_RANK``); anything else uses gloo.
        timeout: How long a collective waits for the other processes.

    Returns:
        Whether this process now belongs to a process group (``False`` when ``WORLD_SIZE``
        is unset or 1, or ``torch.distributed`` is unavailable).

    Raises:
        ConfigError: ``WORLD_SIZE`` is malformed, or it asks for several processes while
            ``RANK``, ``MASTER_ADDR`` or ``MASTER_PORT`` is missing (not started by
            ``torchrun``).
    """
    if not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if env_world_size() < 2:
        return False
    missing = [name for name in _REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for distributed training but "
            f"{', '.join(missing)} is not set; start the run with torchrun"
        )
    dev = torch.device(device)
    backend = "gloo"
    if dev.type == "cuda":
        backend = "nccl"
        index = dev.index if dev.index is not None else int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(index)
    dist.init_process_group(backend, init_method="env://", timeout=timeout)
    return True


def cleanup() -> None:
    """Leave and destroy the process group, if one is initialised (a no-op otherwise)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group_from_env(
    device: str | torch.device = "cpu", timeout: timedelta = DEFAULT_TIMEOUT
) -> Iterator[bool]:
    """:func:`init_from_env` for the duration of a ``with`` block.

    The group is destroyed on leaving only when this block created it, so an enclosing
    owner's group survives.

    Yields:
        Whether the block runs inside a process group.
    """
    owned = dist.is_available() and not dist.is_initialized()
    active = init_from_env(device, timeout)
    try:
        yield active
    finally:
        if owned and active:
            cleanup()


def is_main_process() -> bool:
    """Whether this process is rank 0 (always true without a process group)."""
    return rank_and_world()[0] == 0


def barrier() -> None:
    """Wait until every process of the group gets here (a no-op without a group)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the block on rank 0 first and on the other ranks after it has finished.

    For work whose side effects the other ranks can reuse, such as downloading a dataset or
    filling a cache: rank 0 does it, the others then find it done. Every rank must enter.
    """
    main = is_main_process()
    if not main:
        barrier()
    try:
        yield
    finally:
        if main:
            barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Every rank's copy of rank ``src``'s ``obj`` (picklable); ``obj`` itself without a group.

    Every rank must call it; the other ranks' ``obj`` is ignored (pass ``None``). It also
    acts as a barrier: the other ranks wait until ``src`` arrives.
    """
    if rank_and_world()[1] < 2:
        return obj
    shared: list[object] = [obj]
    dist.broadcast_object_list(shared, src=src)
    return shared[0]  # type: ignore[return-value]
