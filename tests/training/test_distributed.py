"""Training under ``torchrun --nproc_per_node=2`` (gloo on CPU): identical weights on every
rank, and ``lmrec train`` writing one run directory; plus the helpers without torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from lmrec.errors import ConfigError
from lmrec.training.distributed import (
    barrier,
    broadcast_object,
    init_from_env,
    is_main_process,
    main_process_first,
    process_group_from_env,
)

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN_TIMEOUT = 300
CASES = [
    "sasrec",
    "text_frozen",
    "text_lora",
    "text_top_k",
    "text_full",
    "text_adalora",
    "text_prefix",
    "text_adapter",
]
_TORCHRUN_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``torchrun --standalone --nproc_per_node=2 ARGS`` (a free port, one CPU thread
    per rank); the whole process group is killed when it overruns the timeout."""
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            out, err = process.communicate(timeout=TORCHRUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            pytest.fail(f"torchrun ran past {TORCHRUN_TIMEOUT} s:\n{out}\n{err[-4000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


# -- without torchrun ------------------------------------------------------------------------
@pytest.fixture
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_joins_no_group(no_torchrun_env: pytest.MonkeyPatch) -> None:
    assert init_from_env() is False
    no_torchrun_env.setenv("WORLD_SIZE", "1")
    assert init_from_env() is False
    assert not dist.is_initialized()
    with process_group_from_env() as active:
        assert active is False
    # The helpers work as in one process.
    assert is_main_process()
    barrier()
    assert broadcast_object({"a": 1}) == {"a": 1}
    ran = []
    with main_process_first():
        ran.append(True)
    assert ran == [True]


def test_bad_environment_names_the_variable(no_torchrun_env: pytest.MonkeyPatch) -> None:
    no_torchrun_env.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE"):
        init_from_env()
    no_torchrun_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="RANK, MASTER_ADDR, MASTER_PORT"):
        init_from_env()
    assert not dist.is_initialized()


def test_an_existing_group_is_kept(no_torchrun_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        with process_group_from_env() as active:
            assert active is True  # idempotent: the caller's group counts
        assert dist.is_initialized()  # and is not destroyed by a block that did not create it
    finally:
        dist.destroy_process_group()


# -- two processes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case trained once by two ranks; one file per case and rank."""
    out = tmp_path_factory.mktemp("ddp")
    result = torchrun([str(WORKER), str(out), *CASES], cwd=WORKER.parent)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.mark.parametrize("case", CASES)
def test_ranks_end_with_identical_trained_weights(trained: Path, case: str) -> None:
    ranks = [torch.load(trained / f"{case}-rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("initial", "final"):
        assert ranks[0][part].keys() == ranks[1][part].keys()
        for name, tensor in ranks[0][part].items():
            assert torch.equal(tensor, ranks[1][part][name]), f"{part} {name} differs"
    initial, final = ranks[0]["initial"], ranks[0]["final"]
    changed = {name for name in final if not torch.equal(final[name], initial[name])}
    assert changed, "training changed nothing"
    if case.startswith("text_"):
        trained_encoder = {name for name in changed if name.startswith("encoder.")}
        assert bool(trained_encoder) == (case != "text_frozen")
        assert "seq.adaptor.weight" in changed
    # Each rank trained on its own shard (different losses), yet the weights agree.
    assert ranks[0]["losses"] != ranks[1]["losses"]
    assert len(ranks[0]["losses"]) == 2


def test_lmrec_train_under_torchrun_writes_one_run(movielens_like: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[data]
dataset = "{movielens_like}"

[model]
type = "sasrec"
dim = 16
n_heads = 2
n_layers = 1
max_len = 20

[model.trainer]
epochs = 3
batch_size = 16
lr = 0.01
patience = 10

[run]
show_progress = false
"""
    )
    run = tmp_path / "run"
    result = torchrun(
        ["-m", "lmrec.cli.main", "train", "--config", str(config), "--run-dir", str(run)],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("sasrec on")]
    assert len(summary) == 1  # only rank 0 reports
    record = json.loads((run / "result.json").read_text())
    assert 0.0 <= record["metrics"]["ndcg@10"] <= 1.0
    assert (run / "model").is_dir() and (run / "catalog.json").exists()
    assert (run / "learning_curve.png").exists()
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3]
    # The schedule shows that the batches were sharded: 40 training sequences are 20 per
    # rank, 2 batches of 16, so the rate decays over 6 steps and epoch 1 ends with step 2
    # (lr * 5/6); one process would take 3 batches per epoch (lr * 7/9 at its end).
    assert log[0]["lr"] == pytest.approx(0.01 * 5 / 6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "run"]
