"""Run records, Markdown tables and learning-curve plots."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from lmrec.errors import ModelFileError
from lmrec.evaluation import RunRecord, markdown_table, plot_learning_curve, ratio_columns
from lmrec.evaluation.reports import current_git_commit, current_git_dirty


def make_record() -> RunRecord:
    return RunRecord(
        model="sasrec",
        config={"dim": 64, "dropout": 0.2},
        dataset="ml-100k",
        dataset_fingerprint="ab" * 32,
        split={"method": "leave_one_out", "valid": True},
        metrics={"test_ndcg@10": np.float64(0.0712), "test_recall@10": 0.15},
        slice_metrics={"history_length": {"0": {"n_users": 3.0, "ndcg@10": 0.0}}},
        standard_errors={"test_ndcg@10": 0.0071},
        train_seconds=12.5,
        eval_seconds=0.75,
        fit={"epochs": 20, "best_epoch": 14, "seconds_to_best": None, "history": []},
    )


def test_run_record_json_round_trip(tmp_path: Path) -> None:
    record = make_record()
    path = record.write(tmp_path / "runs" / "r1" / "result.json")
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]  # no temp file left
    back = RunRecord.read(path)
    assert back == record
    assert back.metrics["test_ndcg@10"] == 0.0712
    assert (back.epochs, back.best_epoch, back.split_name) == (20, 14, "leave_one_out")
    assert back.slice_metrics["history_length"]["0"]["n_users"] == 3.0
    assert back.standard_errors == {"test_ndcg@10": 0.0071}
    data = json.loads(path.read_text())
    assert data["dataset_fingerprint"] == "ab" * 32
    assert {"python", "numpy", "lmrec"} <= set(data["versions"])
    created = datetime.fromisoformat(back.created_at)
    assert created.tzinfo is not None and created.utcoffset() == UTC.utcoffset(created)


def test_a_record_from_before_standard_errors_reads(tmp_path: Path) -> None:
    path = make_record().write(tmp_path / "result.json")
    data = json.loads(path.read_text())
    del data["standard_errors"]
    path.write_text(json.dumps(data))
    assert RunRecord.read(path).standard_errors == {}


def test_write_replaces_an_existing_record(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    make_record().write(path)
    second = make_record()
    second.model = "bpr"
    second.fit = {}
    second.write(path)
    back = RunRecord.read(path)
    assert back.model == "bpr"
    assert back.epochs is None and back.best_epoch is None


def test_read_ignores_unknown_keys_and_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    data = make_record().to_dict()
    data["added_later"] = 1
    path.write_text(json.dumps(data))
    assert RunRecord.read(path).model == "sasrec"
    with pytest.raises(ModelFileError, match="no run record"):
        RunRecord.read(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(ModelFileError, match="not a JSON run record"):
        RunRecord.read(path)
    path.write_text(json.dumps({"model": "x"}))
    with pytest.raises(ModelFileError, match="incomplete"):
        RunRecord.read(path)


def test_git_state_is_none_outside_a_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert current_git_commit() is None
    assert current_git_dirty() is None
    record = make_record()
    assert record.git_commit is None and record.git_dirty is None


ROWS = [
    {"model": "pop", "ndcg@10": 0.0312, "recall@10": 0.05},
    {"model": "sasrec", "ndcg@10": 0.07123456, "recall@10": None},
]


def test_markdown_table_formatting() -> None:
    table = markdown_table(ROWS, ["model", "ndcg@10", "recall@10", "epochs"], title="Results")
    assert table == (
        "### Results\n"
        "\n"
        "| model  | ndcg@10 | recall@10 | epochs |\n"
        "| ------ | ------: | --------: | -----: |\n"
        "| pop    |  0.0312 |    0.0500 |      – |\n"
        "| sasrec |  0.0712 |         – |      – |\n"
    )
    plain = markdown_table([{"model": "a|b", "n": 3}], ["model", "n"], float_fmt=".2f")
    assert plain == "| model |   n |\n| ----- | --: |\n| a\\|b  |   3 |\n"


def test_ratio_columns() -> None:
    rows = ratio_columns(
        [*ROWS, {"model": "bpr", "ndcg@10": 0.0624}], baseline_model="pop", metric="ndcg@10"
    )
    ratios = [r["vs pop"] for r in rows]
    assert ratios[0] == pytest.approx(1.0)
    assert ratios[1] == pytest.approx(0.07123456 / 0.0312)
    assert ratios[2] == pytest.approx(2.0)
    assert "vs pop" not in ROWS[0]  # inputs untouched
    missing = ratio_columns(ROWS, "pop", "recall@10")
    assert missing[1]["vs pop"] is None
    table = markdown_table(missing, ["model", "vs pop"], float_fmt=".2f")
    assert table.splitlines()[-1] == "| sasrec |      – |"
    with pytest.raises(ValueError, match="'itemknn'"):
        ratio_columns(ROWS, "itemknn", "ndcg@10")


def test_plot_learning_curve_writes_a_png(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "loss": 0.9, "valid_ndcg@10": 0.02},
        {"epoch": 2, "loss": 0.7},
        {"epoch": 3, "loss": 0.6, "valid_ndcg@10": 0.05},
    ]
    path = plot_learning_curve(history, tmp_path / "plots" / "curve.png", "valid_ndcg@10")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="'recall@10'"):
        plot_learning_curve(history, tmp_path / "other.png", "recall@10")
