"""The command line end to end on a tiny dataset: exit codes, output, error lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmrec.cli.main import main


def write_config(path: Path, data_dir: Path, runs: Path, model: str = 'type = "itemknn"') -> Path:
    path.write_text(
        f"""
[data]
dataset = "{data_dir}"

[model]
{model}

[run]
output_dir = "{runs}"
name = "t"
show_progress = false
"""
    )
    return path


def test_data_info_prints_counts(movielens_like: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(movielens_like), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["users"] == 40
    assert info["items"] == 60


def test_train_evaluate_recommend(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs")
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "t"
    record = json.loads((run / "result.json").read_text())
    assert record["model"] == "itemknn"
    assert 0.0 <= record["metrics"]["ndcg@10"] <= 1.0
    assert 0.0 < record["standard_errors"]["ndcg@10"] < 0.5
    users = int(record["metrics"]["n_users"])
    se = record["standard_errors"]["ndcg@10"]
    table = (run / "result.md").read_text()
    assert f"Standard errors over {users} users: ndcg@10 ±{se:.4f}" in table
    capsys.readouterr()

    assert main(["evaluate", str(run), "--json", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["ndcg@10"] == pytest.approx(record["metrics"]["ndcg@10"])

    assert main(["recommend", str(run), "--user", "2", "-k", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    ranked = [line for line in out if line.strip()[:2].rstrip(".").isdigit()]
    assert len(ranked) == 5
    # even users watch the "Action" half (see conftest): most of the list comes from there
    assert sum("Action Film" in line for line in ranked) >= 4


def test_unknown_user_is_one_line_exit_2(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", 'type = "pop"')
    assert main(["train", "--config", str(cfg)]) == 0
    capsys.readouterr()
    code = main(["recommend", str(tmp_path / "runs" / "t"), "--user", "nobody"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "nobody" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        ('type = "nosuch"', "model"),
        ('type = "bpr"\nfactors = -3', "model.bpr.factors"),
        ('type = "itemknn"\nneighbours = 3', "neighbours"),
    ],
)
def test_bad_config_names_field(
    movielens_like: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    needle: str,
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", model)
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("lmrec: error:") and "Traceback" not in err


def test_missing_run_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "none.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_dataset_is_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "info", str(tmp_path / "no-such-data")]) == 2
    assert "no-such-data" in capsys.readouterr().err


def test_trained_model_gets_learning_curve(movielens_like: Path, tmp_path: Path) -> None:
    model = 'type = "sasrec"\nmax_len = 20\n[model.trainer]\nepochs = 3\nbatch_size = 16'
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", model)
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    run = tmp_path / "runs" / "t"
    assert (run / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2, 3]


def test_train_and_recommend_with_text_model(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = """type = "text_seq"
dim = 16
max_len = 10
[model.trainer]
epochs = 3
batch_size = 16
lr = 0.01"""
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", model)
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "t"
    record = json.loads((run / "result.json").read_text())
    assert record["model"] == "text_seq"
    assert record["fit"]["encode_seconds"] > 0
    assert (run / "model" / "item_texts.json").exists()
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "2", "-k", "5"]) == 0
    ranked = [line for line in capsys.readouterr().out.splitlines() if line.strip()[:2] == "1."]
    assert len(ranked) == 1
    # a new user, from a history of item ids: JSON with titles
    assert main(["recommend", str(run), "--history", "1,2,3", "-k", "4", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in recs] == [1, 2, 3, 4]
    assert all(r["title"] and r["item_id"] not in {"1", "2", "3"} for r in recs)
    assert main(["recommend", str(run), "--history", "1,nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_two_stage_pipeline_trains_reranks_and_recommends(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = """type = "sasrec"
dim = 16
max_len = 10
[model.trainer]
epochs = 2
batch_size = 16

[ranking]
top_n = 10
eval_users = 20
[ranking.model]
max_examples = 300
profile_items = 3
[ranking.model.trainer]
epochs = 2"""
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", model)
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "t"
    record = json.loads((run / "result.json").read_text())
    ranking = record["ranking"]
    assert ranking["top_n"] == 10 and ranking["eval_users"] == 20
    assert 0.0 <= ranking["ctr_test"]["auc"] <= 1.0
    # re-ranking the top 10 keeps the top-10 set: recall@10 cannot change
    assert ranking["after"]["recall@10"] == pytest.approx(ranking["before"]["recall@10"])
    assert "re-ranking on 20 sampled test users" in (run / "result.md").read_text()
    assert (run / "ranker" / "ctr.json").exists() and (run / "pipeline.json").exists()
    capsys.readouterr()
    assert main(["recommend", str(run), "--user", "2", "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 3
    assert all(0.0 <= r["score"] <= 1.0 for r in recs)  # ranker probabilities
    assert all(r["retrieval_score"] is not None for r in recs)
