"""``lmrec recommend --explain`` and ``lmrec profile``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lmrec.cli.main import main
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from contract import planted_data


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    knn = ItemKNNRecommender()
    knn.fit(planted_data()[0])
    catalog = {
        f"i{i}": {"title": f"Film {i} (19{50 + i})", "categories": ["A" if i < 20 else "B"]}
        for i in range(40)
    }
    path = tmp_path_factory.mktemp("runs") / "knn"
    Pipeline(knn, catalog=catalog).save(path)
    return path


def test_recommend_explain_prints_a_reason_under_each_item(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommend", str(run), "--user", "u0", "-k", "3", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ranked = [j for j, line in enumerate(lines) if line.lstrip()[:2] in {"1.", "2.", "3."}]
    assert len(ranked) == 3
    for j in ranked:
        assert lines[j + 1].strip().startswith("Because you liked Film ")
        assert lines[j + 1].strip().endswith("— A")


def test_recommend_explain_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = "i1,i2,i3"
    args = ["recommend", str(run), "--history", history, "-k", "2", "--explain", "--json"]
    assert main(args) == 0
    recs = json.loads(capsys.readouterr().out)
    for rec in recs:
        cited = [c["item_id"] for c in rec["explanation"]["because"]]
        assert cited and set(cited) <= set(history.split(","))
        assert rec["explanation"]["sentence"].startswith("Because you liked")
    assert main(["recommend", str(run), "--user", "u0", "-k", "2", "--json"]) == 0
    assert all(r["explanation"] is None for r in json.loads(capsys.readouterr().out))


def test_profile_prints_views_and_json(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", str(run), "--user", "u1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("user u1: 11 items — B 100%")
    assert "recent (10 items):" in out and "long-term (11 items):" in out
    assert main(["profile", str(run), "--history", "i1,i30,i31", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    assert profile["overall"]["categories"][0]["name"] == "B"
    assert profile["n_items"] == 3
    assert main(["profile", str(run), "--user", "ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
