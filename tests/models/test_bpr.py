"""BPR baseline: the contract plus training behaviour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from contract import COLD_USER, N_USERS, RecommenderContract, planted_data

from lmrec.errors import ConfigError, UnknownIdError
from lmrec.evaluation.task import EvalTask
from lmrec.models.base import BaseRecommender
from lmrec.models.baselines import BPRConfig, BPRRecommender, quick_ndcg_at_k

SMALL: dict[str, Any] = {"factors": 16, "epochs": 20, "batch_size": 128, "lr": 0.05, "reg": 1e-4}


class TestBPRContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return BPRRecommender(**SMALL)


def _valid_task() -> EvalTask:
    train, held = planted_data()
    return EvalTask.from_interactions(train, held)


def test_loss_decreases() -> None:
    model = BPRRecommender(**SMALL)
    report = model.fit(planted_data()[0])
    losses = [row["loss"] for row in report.history]
    assert len(losses) == SMALL["epochs"]
    assert losses[-1] < 0.5 * losses[0]
    assert report.best_epoch is None  # no validation, nothing to select


def test_early_stopping_restores_best_epoch() -> None:
    task = _valid_task()
    model = BPRRecommender(**{**SMALL, "epochs": 30, "patience": 3})
    report = model.fit(planted_data()[0], task)
    evaluated = [row for row in report.history if "valid_ndcg@10" in row]
    best = max(evaluated, key=lambda row: row["valid_ndcg@10"])
    assert report.best_epoch == int(best["epoch"])
    assert report.best_valid["ndcg@10"] == pytest.approx(best["valid_ndcg@10"])
    # the restored weights are those of the best epoch
    assert quick_ndcg_at_k(model.score, task) == pytest.approx(best["valid_ndcg@10"])
    if report.epochs < 30:  # stopped early: exactly `patience` evaluations after the best
        assert report.epochs - report.best_epoch == 3


def test_eval_every_and_last_epoch() -> None:
    model = BPRRecommender(**{**SMALL, "epochs": 7, "eval_every": 3, "patience": None})
    report = model.fit(planted_data()[0], _valid_task())
    assert [int(r["epoch"]) for r in report.history if "valid_ndcg@10" in r] == [3, 6, 7]
    assert report.epochs == 7


def test_same_seed_same_model() -> None:
    train = planted_data()[0]
    a, b = BPRRecommender(**SMALL), BPRRecommender(**SMALL)
    a.fit(train)
    b.fit(train)
    users = np.arange(N_USERS)
    empty = [np.zeros(0, dtype=np.int64)] * N_USERS
    np.testing.assert_array_equal(a.score(users, empty), b.score(users, empty))


def test_user_without_training_data() -> None:
    model = BPRRecommender(**SMALL)
    model.fit(planted_data()[0])
    with pytest.raises(UnknownIdError, match=COLD_USER):
        model.recommend(COLD_USER)
    cold = model.user_map.index(COLD_USER)  # type: ignore[union-attr]
    scores = model.score(np.array([-1, cold]), [np.array([1]), np.array([], dtype=np.int64)])
    bias = model.module.item_bias.detach().numpy()  # type: ignore[union-attr]
    np.testing.assert_array_equal(scores[0], bias)  # fallback: the item biases
    np.testing.assert_array_equal(scores[1], bias)


def test_fallback_without_bias_is_popularity() -> None:
    train = planted_data()[0]
    model = BPRRecommender(**{**SMALL, "item_bias": False, "epochs": 2})
    model.fit(train)
    scores = model.score(np.array([-1]), [np.array([], dtype=np.int64)])[0]
    np.testing.assert_array_equal(scores, train.item_counts().astype(np.float32))


def test_negatives_exclude_positives() -> None:
    from lmrec.models.baselines.bpr._training import TripleSampler

    train = planted_data()[0]
    matrix = train.matrix()
    sampler = TripleSampler(matrix, np.random.default_rng(0), exclude_positives=True)
    users, pos, neg = sampler.epoch()
    assert len(users) == matrix.nnz
    assert (np.asarray(matrix[users, pos]).ravel() == 1).all()
    assert (np.asarray(matrix[users, neg]).ravel() == 0).all()


def test_config_validation() -> None:
    assert BPRRecommender().config == BPRConfig()
    with pytest.raises(ConfigError, match="factors"):
        BPRRecommender(factors=0)
    with pytest.raises(ConfigError, match="optimizer"):
        BPRRecommender(optimizer="sgd")
    with pytest.raises(ConfigError, match="lr"):
        BPRRecommender({"lr": -1.0})


def test_adamw_trains() -> None:
    model = BPRRecommender(**{**SMALL, "optimizer": "adamw", "reg": 0.01})
    report = model.fit(planted_data()[0])
    assert report.history[-1]["loss"] < report.history[0]["loss"]
