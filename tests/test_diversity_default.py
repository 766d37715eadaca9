"""The ``[diversity]`` table: validated, stored in ``pipeline.json``, the run's default."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmrec.cli.main import main
from lmrec.config import load_config, parse_config
from lmrec.diversity import (
    RECOMMENDED_LAM,
    RECOMMENDED_METHOD,
    DiversifiedScorer,
    DiversityConfig,
)
from lmrec.errors import ConfigError
from lmrec.evaluation import EvalTask, Evaluator
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
sys.path.insert(0, str(Path(__file__).parent / "cli"))
from contract import planted_data
from test_cli import write_config


def experiment(diversity: dict[str, Any] | None) -> dict[str, Any]:
    raw: dict[str, Any] = {"model": {"type": "itemknn"}}
    if diversity is not None:
        raw["diversity"] = diversity
    return raw


# ----------------------------------------------------------------------------- config
def test_no_table_means_no_diversity() -> None:
    assert parse_config(experiment(None)).diversity is None


def test_table_values_and_recommended_lambda() -> None:
    config = parse_config(experiment({"method": "dpp", "lam": 0.4, "max_per_category": 3}))
    assert config.diversity == DiversityConfig(method="dpp", lam=0.4, max_per_category=3)
    # λ left out: the benchmark's recommended value of the method
    for method in ("mmr", "dpp"):
        table = parse_config(experiment({"method": method})).diversity
        assert table is not None and table.lam == RECOMMENDED_LAM[method]
    empty = parse_config(experiment({})).diversity
    assert empty == DiversityConfig(method="mmr", lam=RECOMMENDED_LAM["mmr"])
    # λ = 0 stays 0: the plain ranking
    zero = parse_config(experiment({"lam": 0})).diversity
    assert zero is not None and not zero.active
    assert RECOMMENDED_METHOD in RECOMMENDED_LAM
    assert all(0.0 < lam <= 1.0 for lam in RECOMMENDED_LAM.values())


@pytest.mark.parametrize(
    ("table", "field", "value"),
    [
        ({"lam": 1.5}, "diversity.lam", "1.5"),
        ({"lam": -0.1}, "diversity.lam", "-0.1"),
        ({"method": "maxvol"}, "diversity.method", "'maxvol'"),
        ({"method": "maxvol", "lam": 0.2}, "diversity.method", "'maxvol'"),
        ({"candidates": 0}, "diversity.candidates", "0"),
        ({"max_per_category": 0}, "diversity.max_per_category", "0"),
        ({"lambda": 0.3}, "diversity.lambda", "0.3"),
    ],
)
def test_bad_table_names_the_field(table: dict[str, Any], field: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(experiment(table), "x.toml")
    message = str(err.value)
    assert message.startswith(f"x.toml: {field}:") and value in message


def test_toml_table_and_override(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\ntype = "pop"\n\n[diversity]\nmethod = "dpp"\nlam = 0.2\n')
    assert load_config(path).diversity == DiversityConfig(method="dpp", lam=0.2)
    changed = load_config(path, {"diversity.lam": 0.0}).diversity
    assert changed is not None and changed.lam == 0.0
    with pytest.raises(ConfigError, match=r"diversity\.lam"):
        load_config(path, {"diversity.lam": 2})


# ----------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def knn() -> ItemKNNRecommender:
    model = ItemKNNRecommender()
    model.fit(planted_data()[0])
    return model


def catalog() -> dict[str, dict[str, object]]:
    return {f"i{i}": {"title": f"T{i}", "categories": ["A" if i < 20 else "B"]} for i in range(40)}


def ids(recs: list[Any]) -> list[str]:
    return [r.item_id for r in recs]


def test_pipeline_default_round_trip_and_override(knn: ItemKNNRecommender, tmp_path: Path) -> None:
    pipeline = Pipeline(knn, catalog=catalog())
    history = ["i0", "i2", "i4"]
    plain = ids(pipeline.recommend(history=history, k=8))
    diverse = ids(pipeline.recommend(history=history, k=8, diversity=0.8))
    assert diverse != plain
    pipeline.diversity = DiversityConfig(method="mmr", lam=0.8)
    pipeline.save(tmp_path / "run")
    assert json.loads((tmp_path / "run" / "pipeline.json").read_text())["diversity"] == {
        "method": "mmr",
        "lam": 0.8,
        "candidates": 100,
        "max_per_category": None,
    }
    loaded = Pipeline.load(tmp_path / "run")
    assert loaded.diversity == DiversityConfig(method="mmr", lam=0.8)
    assert ids(loaded.recommend(history=history, k=8)) == diverse  # the default applies
    # an explicit λ = 0 gives the plain ranking back
    assert ids(loaded.recommend(history=history, k=8, diversity=0.0)) == plain
    # the method alone overrides the default's method, keeping its λ
    dpp = ids(loaded.recommend(history=history, k=8, diversity_method="dpp"))
    assert dpp == ids(pipeline.recommend(history=history, k=8, diversity_method="dpp"))
    # a default cap applies; 0 switches it off
    loaded.diversity = DiversityConfig(lam=0.0, max_per_category=2)
    assert len(loaded.recommend("u0", k=10)) == 4  # "A" and "B" allow 2 + 2 items
    assert ids(loaded.recommend("u0", k=10, max_per_category=0)) == ids(
        Pipeline(knn, catalog=catalog()).recommend("u0", k=10)
    )


def test_pipeline_without_default_is_plain(knn: ItemKNNRecommender, tmp_path: Path) -> None:
    pipeline = Pipeline(knn, catalog=catalog())
    pipeline.save(tmp_path / "run")
    assert "diversity" not in json.loads((tmp_path / "run" / "pipeline.json").read_text())
    loaded = Pipeline.load(tmp_path / "run")
    assert loaded.diversity is None
    scores = knn.score(np.array([0]), [knn.history_of("u0")])[0]
    scores[knn.history_of("u0")] = -np.inf
    expected = np.lexsort((np.arange(40), -scores))[:10]
    assert ids(loaded.recommend("u0", k=10)) == knn._require(knn.item_map).decode(expected)


def test_bad_stored_default_names_the_field(knn: ItemKNNRecommender, tmp_path: Path) -> None:
    Pipeline(knn, catalog=catalog()).save(tmp_path / "run")
    path = tmp_path / "run" / "pipeline.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "diversity": {"method": "mmr", "lam": 7}}))
    with pytest.raises(ConfigError, match=r"DiversityConfig\.lam.*7"):
        Pipeline.load(tmp_path / "run")


def test_depth_keeps_the_top_of_the_list(knn: ItemKNNRecommender) -> None:
    train, held = planted_data()
    task = EvalTask.from_interactions(train, held)
    vectors = np.eye(4)[np.arange(40) % 4]
    evaluator = Evaluator(ks=(5, 10), item_vectors=vectors, list_k=10)
    for method in ("mmr", "dpp"):
        config = DiversityConfig(method=method, lam=0.5, candidates=30)
        full = evaluator.evaluate(DiversifiedScorer(knn, vectors, config), task).metrics
        short = evaluator.evaluate(DiversifiedScorer(knn, vectors, config, depth=10), task)
        assert {k: short.metrics[k] for k in full if "@50" not in k} == full
    with pytest.raises(ConfigError, match="depth"):
        DiversifiedScorer(knn, vectors, DiversityConfig(lam=0.5), depth=0)


# ----------------------------------------------------------------------------- train + CLI
def test_train_stores_and_evaluates_the_default(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs")
    cfg.write_text(cfg.read_text() + '\n[diversity]\nmethod = "mmr"\nlam = 0.5\n')
    assert main(["train", "--config", str(cfg)]) == 0
    run = tmp_path / "runs" / "t"
    meta = json.loads((run / "pipeline.json").read_text())
    assert meta["diversity"]["lam"] == 0.5 and meta["ranker"] is False
    record = json.loads((run / "result.json").read_text())
    stage = record["diversity"]
    assert stage["method"] == "mmr" and stage["before"]["ndcg@10"] == record["metrics"]["ndcg@10"]
    assert set(stage["after"]) == set(stage["before"]) >= {"ild@10", "coverage@10", "gini@10"}
    assert stage["after"]["ndcg@10"] != stage["before"]["ndcg@10"]  # the lists were re-ranked
    assert "diversity re-ranking" in (run / "result.md").read_text()
    assert Pipeline.load(run).diversity == DiversityConfig(method="mmr", lam=0.5)
    capsys.readouterr()

    def genres(*extra: str) -> list[list[str]]:
        argv = ["recommend", str(run), "--user", "2", "-k", "5", "--json", *extra]
        assert main(argv) == 0
        return [r["categories"] for r in json.loads(capsys.readouterr().out)]

    default = genres()
    assert ["Romance"] in default  # the run's λ = 0.5 mixes in the other genre
    plain = genres("--diversity", "0")
    assert sum(g == ["Action"] for g in plain) >= 4
    assert genres("--diversity", "0.5") == default
    # --diversity without a value: the recommended λ of the method
    assert genres("--diversity") == genres("--diversity", str(RECOMMENDED_LAM["mmr"]))
    with pytest.raises(SystemExit) as usage:
        main(["recommend", str(run), "--user", "2", "--diversity", "x"])
    assert usage.value.code == 2 and "--diversity" in capsys.readouterr().err


def test_train_rejects_a_bad_table(movielens_like: Path, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs")
    cfg.write_text(cfg.read_text() + '\n[diversity]\nmethod = "maxvol"\n')
    assert main(["train", "--config", str(cfg)]) == 2
    assert not (tmp_path / "runs" / "t").exists()


def test_a_repeated_target_keeps_its_plain_rank() -> None:
    class Fixed:
        name = "fixed"

        def score(self, users: np.ndarray, histories: Any) -> np.ndarray:
            return np.stack([np.linspace(1.0, 0.0, 40) for _ in users])  # item 0 best

    vectors = np.eye(4)[np.arange(40) // 10]  # items 0-9 genre 0, 10-19 genre 1, ...
    evaluator = Evaluator(ks=(1, 5, 10), item_vectors=vectors)
    # user 0 had items 0 and 3 and comes back to item 3 (plain rank 3: items 1, 2 above)
    task = EvalTask(
        users=np.array([0, 1]),
        histories=[np.array([0, 3]), np.array([0])],
        targets=[np.array([3]), np.array([10])],
        n_items=40,
    )
    plain = evaluator.evaluate(Fixed(), task).per_user
    for method in ("mmr", "dpp"):
        config = DiversityConfig(method=method, lam=0.9, candidates=20)  # type: ignore[arg-type]
        for depth in (None, 5):
            scorer = DiversifiedScorer(Fixed(), vectors, config, depth=depth)
            diverse = evaluator.evaluate(scorer, task).per_user
            assert diverse["ndcg@5"][0] == plain["ndcg@5"][0] == pytest.approx(0.5)
            assert diverse["ndcg@10"][1] > plain["ndcg@10"][1]  # item 10 moved up to rank 2
