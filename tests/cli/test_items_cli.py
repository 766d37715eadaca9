"""``lmrec items add``: new items into a trained run from JSONL or CSV, errors in one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_cli import write_config

from lmrec.cli.main import main
from lmrec.models import load_model
from lmrec.models.text import TextSeqRecommender


@pytest.fixture
def run(text_run: Path, tmp_path: Path) -> Path:
    """A copy of the trained run, so that every test starts from the same catalog."""
    return Path(shutil.copytree(text_run, tmp_path / "run"))


def test_add_items_from_jsonl_then_recommend_them(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(
        '{"id": "new-1", "title": "Action Film 1 Returns (2024)", "categories": ["Action"]}\n'
        '{"id": "2", "title": "Action Film 2 (Director\'s Cut)", "categories": ["Action"]}\n'
    )
    capsys.readouterr()
    assert main(["items", "add", str(run), "--file", str(items)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"added 1 and updated 1 items in {run} (catalog now 61 items)"
    assert out[1] == "  + new-1  Action Film 1 Returns (2024)  [Action]"
    assert out[2] == "  ~ 2  Action Film 2 (Director's Cut)  [Action]"
    # Saved into the run: a new process sees the item, with its title.
    assert main(["recommend", str(run), "--history", "1,3,4", "-k", "60", "--json"]) == 0
    recs = {r["item_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert recs["new-1"]["title"] == "Action Film 1 Returns (2024)"
    assert recs["2"]["title"] == "Action Film 2 (Director's Cut)"
    # The grown run no longer matches its dataset's splits: a clear error, not a traceback.
    assert main(["evaluate", str(run), "--no-progress"]) == 2
    assert "items were added after training" in capsys.readouterr().err


def test_add_items_from_csv_as_json(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.csv"
    items.write_text('id,title,description,categories\nnew-2,Love Film 9,"A love story",Romance\n')
    capsys.readouterr()
    assert main(["items", "add", str(run), "--file", str(items), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"added": ["new-2"], "updated": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "x", "title": ""}\n', r"items.jsonl:1, column 'title': item 'x' needs a"),
        ('{"id": "x", "title": "a"}\n{"id": "x", "title": "b"}\n', r"duplicate item id 'x'"),
        ('{"id": ["x"], "title": "a"}\n', r"id must be a non-empty string"),
        ("not json\n", r"items.jsonl:1: not valid JSON"),
    ],
)
def test_bad_files_exit_2_with_one_line(
    run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(content)
    capsys.readouterr()
    assert main(["items", "add", str(run), "--file", str(items)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lmrec: error: ")
    assert re.search(message, err)


def test_id_only_run_and_missing_run_exit_2(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", 'type = "pop"')
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "new-1", "title": "Action Film"}\n')
    capsys.readouterr()
    assert main(["items", "add", str(tmp_path / "runs" / "t"), "--file", str(items)]) == 2
    err = capsys.readouterr().err
    assert "model 'pop' knows items only by ids" in err and len(err.strip().splitlines()) == 1
    assert main(["items", "add", str(tmp_path / "nope"), "--file", str(items)]) == 2
    assert "holds no model" in capsys.readouterr().err


def test_boost_new_items_of_a_run(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "new-1", "title": "Love Film 1 Again", "categories": ["Romance"]}\n')
    assert main(["items", "add", str(run), "--file", str(items)]) == 0

    def rank_of_new() -> int:
        capsys.readouterr()
        assert main(["recommend", str(run), "--history", "1,3,4", "-k", "61", "--json"]) == 0
        ids = [r["item_id"] for r in json.loads(capsys.readouterr().out)]
        return ids.index("new-1")

    before = rank_of_new()
    assert before > 0
    assert main(["items", "boost", str(run), "5"]) == 0
    out = capsys.readouterr().out.strip()
    # The fixture's catalog also has items no training interaction reached: they count too.
    model = load_model(run / "model")
    assert isinstance(model, TextSeqRecommender) and model.config.new_item_boost == 5.0
    untrained = int(model.new_items().sum())
    assert untrained >= 1 and model.new_items()[-1]
    assert out == f"new-item boost of {run} set to 5 ({untrained} items without training data)"
    # Saved in the run: a new process lifts the new item into the block of boosted items.
    after = rank_of_new()
    assert after < before and after < untrained
    assert main(["items", "boost", str(run), "0"]) == 0
    assert rank_of_new() == before


def test_boost_refuses_bad_values_and_id_models(
    run: Path, movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["items", "boost", str(run), "-1"]) == 2
    err = capsys.readouterr().err
    assert "new_item_boost" in err and len(err.strip().splitlines()) == 1
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs", 'type = "pop"')
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["items", "boost", str(tmp_path / "runs" / "t"), "0.5"]) == 2
    assert "model 'pop' has no new-item boost" in capsys.readouterr().err
