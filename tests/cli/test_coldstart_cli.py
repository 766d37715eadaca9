"""``lmrec recommend --text / --attr``: cold users from stated preferences, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import write_config

from lmrec.cli.main import main


def ranked_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.strip()[:2].rstrip(".").isdigit()]


def test_recommend_from_text(text_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["recommend", str(text_run), "--text", "I like action films", "-k", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "stated: I like action films"
    assert len(ranked_lines(out)) == 4


def test_text_with_history_and_attributes_as_json(
    text_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    args = ["recommend", str(text_run), "--text", "love stories", "--history", "31,32"]
    assert main([*args, "--attr", "age=24", "--attr", "zip_code=12345", "-k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 3
    assert {"31", "32"}.isdisjoint(r["item_id"] for r in recs)


def test_text_errors_are_one_line_exit_2(
    text_run: Path, movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(text_run), "--text", "  "]) == 2
    assert capsys.readouterr().err.strip() == (
        "lmrec: error: text is empty: give a sentence of stated preferences"
    )
    assert main(["recommend", str(text_run), "--attr", "age"]) == 2
    assert "--attr expects name=value" in capsys.readouterr().err
    assert main(["recommend", str(text_run)]) == 2
    assert "a user_id or a history of item ids, or a text" in capsys.readouterr().err
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs")
    assert main(["train", "--config", str(cfg), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "runs" / "t"), "--text", "action"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "'itemknn' cannot read text" in err[0]
