"""bench/run_diversity.py: the accuracy/diversity curve and the choice of λ, on tiny data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lmrec.evaluation import EvalTask, Evaluator
from lmrec.models.baselines import ItemKNNRecommender

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from contract import planted_data

from run_diversity import CachedScores, build_curve, choose_lambda, select_default


@pytest.fixture(scope="module")
def curve() -> list[dict[str, Any]]:
    train, held = planted_data()
    model = ItemKNNRecommender()
    model.fit(train)
    task = EvalTask.from_interactions(train, held)
    vectors = np.eye(4)[np.arange(40) % 4]  # item i has genre i % 4
    evaluator = Evaluator(ks=(10,), item_vectors=vectors, item_popularity=train.item_counts())
    cached = CachedScores.of(model, task, batch_size=7)
    assert np.array_equal(
        cached.score(task.users, task.histories), model.score(task.users, task.histories)
    )
    return build_curve(cached, vectors, evaluator, task, lams=(0.0, 0.5, 1.0), candidates=20)


def test_curve_has_every_point_and_lambda_zero_is_plain(curve: list[dict[str, Any]]) -> None:
    assert [(r["method"], r["lam"]) for r in curve] == [
        (m, lam) for m in ("mmr", "dpp") for lam in (0.0, 0.5, 1.0)
    ]
    zero = [r for r in curve if r["lam"] == 0.0]
    metrics = ("ndcg@10", "recall@10", "ild@10", "coverage@10", "gini@10", "long_tail@10")
    assert all(m in zero[0] for m in metrics)
    assert {k: zero[0][k] for k in metrics} == {k: zero[1][k] for k in metrics}
    for method in ("mmr", "dpp"):
        ild = [r["ild@10"] for r in curve if r["method"] == method]
        assert ild[-1] > ild[0]  # diversity grows with λ


def rows(method: str, points: list[tuple[float, float, float]]) -> list[dict[str, Any]]:
    return [{"method": method, "lam": lam, "ndcg@10": n, "ild@10": i} for lam, n, i in points]


def test_choose_lambda_keeps_ndcg_within_bounds_on_every_curve() -> None:
    a = rows(
        "mmr", [(0.0, 0.100, 0.50), (0.1, 0.0995, 0.55), (0.3, 0.0985, 0.60), (0.5, 0.09, 0.7)]
    )
    b = rows(
        "mmr", [(0.0, 0.200, 0.40), (0.1, 0.1990, 0.42), (0.3, 0.1950, 0.50), (0.5, 0.18, 0.6)]
    )
    # λ = 0.3 loses 1.5 % on a and 2.5 % on b: only λ = 0.1 qualifies on both
    picked = choose_lambda([a, b], "mmr", max_loss=0.02)
    assert picked is not None and picked["lam"] == 0.1
    assert picked["ild_gain"] == pytest.approx((0.1 + 0.05) / 2)
    assert picked["worst_ndcg_loss"] == pytest.approx(0.005)
    loose = choose_lambda([a, b], "mmr", max_loss=0.03)
    assert loose is not None and loose["lam"] == 0.3
    assert choose_lambda([a], "mmr", max_loss=0.0)["lam"] == 0.0  # type: ignore[index]
    assert choose_lambda([a], "dpp") is None


def test_select_default_prefers_the_larger_gain() -> None:
    mmr = rows("mmr", [(0.0, 0.1, 0.5), (0.2, 0.099, 0.6)])
    dpp = rows("dpp", [(0.0, 0.1, 0.5), (0.2, 0.099, 0.7)])
    result = {"models": {"m": {"curves": {"valid": mmr + dpp}}}}
    choice = select_default([result], 0.02)
    assert choice["recommended"]["method"] == "dpp" and choice["recommended"]["lam"] == 0.2
    assert choice["per_method"]["mmr"]["lam"] == 0.2
