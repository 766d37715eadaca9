"""Membership-inference audit: the attack statistic, the two designs, the run and the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmrec.cli.main import main
from lmrec.data import Dataset
from lmrec.data.registry import load_dataset
from lmrec.data.splitting import cold_user_split, encode_split, leave_one_out_split
from lmrec.errors import DataError
from lmrec.privacy.audit import (
    AUDIT_FILE,
    attack_auc,
    audit_model,
    interaction_losses,
    membership_samples,
)


class TableModel:
    """Scores from a fixed rule, enough for the audit (which only calls ``score``)."""

    def __init__(self, n_items: int, transitions: set[tuple[int, int]] | None = None) -> None:
        self.n_items = n_items
        self.transitions = transitions or set()

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(histories), self.n_items), dtype=np.float32)
        for row, h in enumerate(histories):
            last = int(h[-1]) if len(h) else -1
            for a, b in self.transitions:
                if a == last:
                    out[row, b] = 8.0  # a memorised (previous item -> next item) pair
        return out


def test_attack_auc_of_equal_and_separated_losses() -> None:
    rng = np.random.default_rng(0)
    same = attack_auc(rng.normal(size=800), rng.normal(size=800), bootstrap=300)
    assert abs(same.auc - 0.5) < 0.05
    assert same.ci_low < 0.5 < same.ci_high
    assert "no leakage detected" in same.summary()
    leaky = attack_auc(rng.normal(0.0, 1, 500), rng.normal(1.5, 1, 500), bootstrap=300)
    assert leaky.auc > 0.8 and leaky.ci_low > 0.75
    assert leaky.member_loss_mean < leaky.nonmember_loss_mean
    assert "distinguishable" in leaky.summary()
    # Lower loss is "member": exactly separated groups give AUC 1 and advantage 1.
    exact = attack_auc(np.array([0.1, 0.2]), np.array([1.0, 2.0, 3.0]), bootstrap=10)
    assert exact.auc == 1.0 and exact.advantage == 1.0
    tied = attack_auc(np.ones(5), np.ones(7), bootstrap=10)
    assert tied.auc == 0.5 and tied.advantage == 0.0
    with pytest.raises(DataError):
        attack_auc(np.array([]), np.ones(3))


def test_advantage_is_best_tpr_minus_fpr() -> None:
    # members' losses 1, 3; non-members' 2, 4: at threshold 1 TPR 1/2, FPR 0.
    result = attack_auc(np.array([1.0, 3.0]), np.array([2.0, 4.0]), bootstrap=0)
    assert result.advantage == pytest.approx(0.5)
    assert result.auc == pytest.approx(0.75)


def test_interaction_losses_are_softmax_cross_entropy() -> None:
    model = TableModel(4, {(0, 2)})
    losses = interaction_losses(
        model,  # type: ignore[arg-type]
        np.array([0, 1]),
        [np.array([0]), np.array([1])],
        np.array([2, 3]),
    )
    scores = np.array([0.0, 0.0, 8.0, 0.0])
    expected_hit = -(8.0 - np.log(np.exp(scores).sum()))
    assert losses[0] == pytest.approx(expected_hit)
    assert losses[1] == pytest.approx(np.log(4.0))


def _interactions(n_users: int = 60, n_items: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=6, replace=False)
        rows += [(f"u{u}", f"i{i}", t) for t, i in enumerate(items)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _dataset(frame: pd.DataFrame) -> Dataset:
    items = pd.DataFrame({"item_id": sorted(frame["item_id"].unique()), "title": "x"})
    return Dataset("toy", frame, items, None, ["title"])


def test_memorising_model_is_caught_and_blind_one_is_not() -> None:
    frame = _interactions()
    dataset = _dataset(frame)
    split = encode_split(cold_user_split(frame, cold_frac=0.3, seed=1), dataset)
    n_items = len(split.item_map)
    train_pairs = {
        (int(s[-2]), int(s[-1])) for s in split.train.sequences() if len(s) >= 2
    }  # it memorised every member's last transition
    memoriser = TableModel(n_items, train_pairs)
    samples = membership_samples(memoriser, split, max_users=None)  # type: ignore[arg-type]
    assert samples.design == "users"
    n_train = sum(1 for s in split.train.sequences() if len(s))
    assert len(samples.member_losses) == n_train
    assert len(samples.nonmember_losses) == sum(1 for s in split.test.sequences() if len(s))
    leaky = audit_model(memoriser, split, max_users=None, bootstrap=200)  # type: ignore[arg-type]
    assert leaky.auc > 0.9 and leaky.ci_low > 0.5
    blind = audit_model(TableModel(n_items), split, bootstrap=200)  # type: ignore[arg-type]
    assert blind.auc == 0.5 and blind.advantage == 0.0


def test_leave_one_out_uses_held_out_interactions_of_the_same_users() -> None:
    frame = _interactions()
    split = encode_split(leave_one_out_split(frame), _dataset(frame))
    model = TableModel(len(split.item_map))
    samples = membership_samples(model, split, max_users=25, seed=3)  # type: ignore[arg-type]
    assert samples.design == "interactions"
    assert len(samples.member_losses) == len(samples.nonmember_losses) == 25


TEXT_SEQ = """type = "text_seq"
dim = 16
n_layers = 1
n_heads = 2
max_len = 12

[model.trainer]
epochs = 2
batch_size = 8
patience = 2

[model.trainer.dp]
target_epsilon = 4.0
max_grad_norm = 1.0
"""


def test_train_prints_epsilon_and_audit_writes_json(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[data]
dataset = "{movielens_like}"
split = "cold_user"
split_params = {{ cold_frac = 0.25 }}

[model]
{TEXT_SEQ}
[run]
output_dir = "{tmp_path / "runs"}"
name = "dp"
show_progress = false
"""
    )
    assert main(["train", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "differential privacy: ε = " in out and "user-level" in out
    run = tmp_path / "runs" / "dp"
    record = json.loads((run / "result.json").read_text())
    privacy = record["privacy"]
    assert 0 < privacy["epsilon"] <= 4.0 and privacy["unit"] == "user"
    assert privacy["delta"] == pytest.approx(1 / privacy["n_units"])
    assert privacy["n_units"] == 26  # 40 users: 10 (25%) to test, 4 (10%) to validation
    assert record["config"]["model"]["trainer"]["dp"]["target_epsilon"] == 4.0

    assert main(["audit", str(run), "--bootstrap", "100"]) == 0
    out = capsys.readouterr().out
    assert "attack AUC" in out and "users design" in out and "differential privacy" in out
    audit = json.loads((run / AUDIT_FILE).read_text())
    assert audit["design"] == "users"
    assert audit["n_members"] == 26 and audit["n_nonmembers"] == 10
    assert 0.0 <= audit["ci_low"] <= audit["auc"] <= audit["ci_high"] <= 1.0
    assert audit["privacy"]["epsilon"] == privacy["epsilon"]

    assert main(["audit", str(tmp_path / "nope")]) == 2


def test_audit_of_a_real_dataset_loader_run_is_reproducible(movielens_like: Path) -> None:
    """Same seed, same samples and bootstrap: the audit is deterministic."""
    data = load_dataset(movielens_like, use_cache=False)
    split = encode_split(cold_user_split(data.interactions, cold_frac=0.25), data)
    model = TableModel(len(split.item_map), {(0, 1), (2, 3)})
    a = audit_model(model, split, bootstrap=50, seed=4)  # type: ignore[arg-type]
    b = audit_model(model, split, bootstrap=50, seed=4)  # type: ignore[arg-type]
    assert (a.auc, a.ci_low, a.ci_high) == (b.auc, b.ci_low, b.ci_high)
