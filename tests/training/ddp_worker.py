"""Worker of ``test_distributed.py``, started by ``torchrun --nproc_per_node=2``.

Usage: ``ddp_worker.py OUT_DIR CASE [CASE ...]``. Each case trains one small model on the
contract's planted data inside the process group; every rank saves, to
``OUT_DIR/<case>-rank<r>.pt``, the trained module's state before DDP wrapped it
(``initial``), after training (``final``), and its per-epoch losses (``losses``, computed on
its own shard). Cases: ``sasrec``, and ``text_<strategy>`` for the text sequential model on
a tiny random GPT-2 (``text_frozen``, ``text_lora``, ``text_top_k``, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "models"))

from contract import planted_data  # noqa: E402
from test_text_seq_decoder import decoder_config, tiny_gpt2_texts, write_tiny_gpt2  # noqa: E402

from lmrec.models.base import BaseRecommender  # noqa: E402
from lmrec.models.baselines.sasrec import SASRecRecommender  # noqa: E402
from lmrec.models.text import TextSeqRecommender  # noqa: E402
from lmrec.training import Trainer  # noqa: E402
from lmrec.training.distributed import barrier, cleanup, init_from_env  # noqa: E402

_TRAINER = {"epochs": 2, "batch_size": 8, "lr": 0.01, "patience": None, "seed": 3}


class _Recorder:
    """Patches ``Trainer.wrap_module`` to keep the raw module and its state before wrapping."""

    def __init__(self) -> None:
        self.raw: nn.Module | None = None
        self.initial: dict[str, torch.Tensor] = {}
        self.wrapped: nn.Module | None = None
        original = Trainer.wrap_module

        def wrap(trainer: Trainer, module: nn.Module) -> nn.Module:
            self.raw = module
            self.initial = {k: v.detach().clone() for k, v in module.state_dict().items()}
            self.wrapped = original(trainer, module)
            return self.wrapped

        Trainer.wrap_module = wrap  # type: ignore[method-assign]


def build(case: str, gpt2_dir: Path) -> BaseRecommender:
    if case == "sasrec":
        return SASRecRecommender(dim=16, n_layers=1, n_heads=2, max_len=12, trainer=_TRAINER)
    strategy = case.removeprefix("text_")
    config = decoder_config(gpt2_dir, strategy)
    config["trainer"] = _TRAINER
    config["id_fusion"] = True  # also exercise the id embedding (with id dropout) under DDP
    if strategy == "prefix":  # the prefix must fit the model's 32 positions
        config["encoder"]["max_length"] = 24
        config["tuning"]["prefix_tokens"] = 4
    model = TextSeqRecommender(config)
    model.set_item_texts(tiny_gpt2_texts())
    return model


def main(out_dir: Path, cases: list[str]) -> None:
    assert init_from_env() is True
    assert init_from_env() is True  # idempotent
    rank, world = dist.get_rank(), dist.get_world_size()
    assert world == 2
    gpt2_dir = out_dir / "tiny-gpt2"
    if rank == 0 and any(c.startswith("text_") for c in cases):
        write_tiny_gpt2(gpt2_dir)
    barrier()
    recorder = _Recorder()
    train = planted_data()[0]
    for case in cases:
        report = build(case, gpt2_dir).fit(train)
        assert isinstance(recorder.wrapped, nn.parallel.DistributedDataParallel)
        assert recorder.raw is not None
        final = {k: v.detach().clone() for k, v in recorder.raw.state_dict().items()}
        saved: dict[str, Any] = {
            "initial": recorder.initial,
            "final": final,
            "losses": [h["loss"] for h in report.history],
        }
        torch.save(saved, out_dir / f"{case}-rank{rank}.pt")
    cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
