"""CLI fixtures: one tiny trained text run shared by the CLI tests (copy it before changing it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import write_config

from lmrec.cli.main import main

TEXT_MODEL = """type = "text_seq"
dim = 16
max_len = 10
[model.trainer]
epochs = 2
batch_size = 16
lr = 0.01"""


@pytest.fixture(scope="session")
def text_run(movielens_like: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text_seq run trained by ``lmrec train`` on the MovieLens-like fixture; read-only."""
    root = tmp_path_factory.mktemp("cli-text-run")
    cfg = write_config(root / "c.toml", movielens_like, root / "runs", TEXT_MODEL)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    return root / "runs" / "t"
