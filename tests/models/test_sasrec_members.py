"""SASRec with several members (``SASRecConfig.members``): a seed ensemble of networks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from contract import N_USERS, RecommenderContract, planted_data
from test_sasrec import SMALL as SASREC_SMALL

from lmrec.errors import ModelFileError
from lmrec.evaluation.task import EvalTask
from lmrec.models.base import BaseRecommender, FitOptions
from lmrec.models.baselines._validation import quick_ndcg_at_k
from lmrec.models.baselines.sasrec import SASRecRecommender
from lmrec.training import CHECKPOINT_FILE

SMALL = {
    **SASREC_SMALL,
    "augment": "shuffle",  # seeded per member too
    "trainer": {**SASREC_SMALL["trainer"], "epochs": 6, "seed": 5},
}
TWO = {**SMALL, "members": 2}
HISTORIES = [np.array([1, 2, 3]), np.array([22, 23]), np.array([], dtype=np.int64)]


class TestSASRecMembersContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return SASRecRecommender({**TWO, "trainer": {**SMALL["trainer"], "epochs": 20}})


@pytest.fixture(scope="module")
def pair() -> SASRecRecommender:
    model = SASRecRecommender(TWO)
    model.fit(planted_data()[0])
    return model


def test_members_are_the_single_models_of_the_next_seeds_averaged(
    pair: SASRecRecommender,
) -> None:
    train = planted_data()[0]
    users = np.arange(len(HISTORIES))
    rows = []
    for seed in (5, 6):
        single = SASRecRecommender({**SMALL, "trainer": {**SMALL["trainer"], "seed": seed}})
        single.fit(train)
        rows.append(torch.log_softmax(torch.from_numpy(single.score(users, HISTORIES)), dim=1))
    expected = ((rows[0] + rows[1]) / 2).numpy()
    assert len(pair.networks) == 2
    np.testing.assert_allclose(pair.score(users, HISTORIES), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(rows[0].numpy(), rows[1].numpy())  # the members differ


def test_top_items_sort_the_mean_scores(pair: SASRecRecommender) -> None:
    pair.fast_top_min_items = 0  # the dot-product shortcut would apply to one network
    users = np.arange(len(HISTORIES))
    scores = pair.score(users, HISTORIES)
    for (items, _), row in zip(pair.top_items(users, HISTORIES, 5), scores, strict=True):
        np.testing.assert_array_equal(items, np.argsort(-row, kind="stable")[:5])


def test_save_load_keeps_every_member(pair: SASRecRecommender, tmp_path: Path) -> None:
    pair.save(tmp_path / "m")
    assert (tmp_path / "m" / "sasrec-member1.pt").exists()
    loaded = SASRecRecommender.load(tmp_path / "m")
    seqs = planted_data()[0].sequences()
    hists = [seqs[u] for u in range(N_USERS)]
    users = np.arange(len(hists))
    np.testing.assert_array_equal(loaded.score(users, hists), pair.score(users, hists))
    (tmp_path / "m" / "sasrec-member1.pt").unlink()
    with pytest.raises(ModelFileError, match=r"sasrec-member1\.pt"):
        SASRecRecommender.load(tmp_path / "m")


def test_each_member_stops_on_its_own_and_the_report_adds_up() -> None:
    train, held = planted_data()
    valid = EvalTask.from_interactions(train, held)
    config = {**TWO, "trainer": {**SMALL["trainer"], "epochs": 30, "patience": 2}}
    model = SASRecRecommender(config)
    report = model.fit(train, valid)
    members = [[r for r in report.history if r["member"] == j] for j in (0, 1)]
    assert all(members) and len(report.history) == report.epochs
    assert [r["epoch"] for r in report.history] == list(range(1, report.epochs + 1))
    first = len(members[0])
    best_second = max(members[1], key=lambda r: r["valid_ndcg@10"])
    assert report.best_epoch == first + best_second["member_epoch"]
    assert report.best_valid["ndcg@10"] == pytest.approx(quick_ndcg_at_k(model.score, valid, k=10))
    assert report.train_seconds >= (report.seconds_to_best or 0.0) > 0


def test_members_checkpoint_and_resume_in_their_own_folders(tmp_path: Path) -> None:
    train = planted_data()[0]
    first = SASRecRecommender(TWO)
    first.fit(train, options=FitOptions(work_dir=tmp_path))
    for j in (0, 1):
        assert (tmp_path / f"member-{j}" / "checkpoints" / CHECKPOINT_FILE).exists()
        log = (tmp_path / f"member-{j}" / "train_log.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in log] == list(range(1, 7))
    again = SASRecRecommender(TWO)
    report = again.fit(train, options=FitOptions(work_dir=tmp_path, resume=True))  # done
    assert report.epochs == 12
    users = np.arange(len(HISTORIES))
    np.testing.assert_array_equal(again.score(users, HISTORIES), first.score(users, HISTORIES))
