"""The behaviour every lmrec recommender must show, as a reusable test class.

A model's test module subclasses :class:`RecommenderContract` and implements
:meth:`RecommenderContract.make_model`; pytest then runs every test below against it::

    class TestPop(RecommenderContract):
        learns = False

        def make_model(self) -> BaseRecommender:
            return PopularityRecommender()

Data: 30 users in two taste groups over 40 items (group A consumes items 0-19, group B items
20-39), timestamps in consumption order; each user's last item is held out, so a model that
learns the groups ranks it high.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ModelFileError, NotFittedError, UnknownIdError
from lmrec.models.base import BaseRecommender, FitReport, Recommender

N_USERS = 30
N_ITEMS = 40
PER_USER = 12
COLD_USER = "cold-user"  # in the id map, without any interaction


def planted_frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and held-out interaction frames with a two-group pattern.

    Returns:
        ``(train, held_out)``: ``held_out`` has each user's last interaction.
    """
    rng = np.random.default_rng(seed)
    half = N_ITEMS // 2
    rows = []
    for u in range(N_USERS):
        pool = np.arange(half) if u % 2 == 0 else np.arange(half, N_ITEMS)
        items = rng.choice(pool, size=PER_USER, replace=False)
        for t, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", 1_000_000 + 100 * t + u))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["timestamp"] = frame["timestamp"].astype("int64")
    last = frame.groupby("user_id")["timestamp"].transform("max") == frame["timestamp"]
    return frame[~last].reset_index(drop=True), frame[last].reset_index(drop=True)


def planted_data(seed: int = 0) -> tuple[InteractionData, InteractionData]:
    """``(train, held_out)`` as :class:`InteractionData` sharing id maps (with a cold user)."""
    train, held = planted_frames(seed)
    user_map = IdMap([f"u{u}" for u in range(N_USERS)] + [COLD_USER], "user")
    item_map = IdMap([f"i{i}" for i in range(N_ITEMS)], "item")
    return (
        InteractionData.from_frame(train, user_map, item_map),
        InteractionData.from_frame(held, user_map, item_map),
    )


class RecommenderContract:
    """Tests every recommender must pass; subclass and implement :meth:`make_model`."""

    learns: bool = True
    """Whether the model should find the planted two-group pattern (not for popularity)."""

    deterministic: bool = True
    """Whether save→load must give bit-identical scores."""

    def make_model(self) -> BaseRecommender:
        """A fresh, unfitted model, small enough to fit the planted data in a second."""
        raise NotImplementedError

    # -- fixtures --------------------------------------------------------------------------
    # Class-scoped so that each model is fitted once per test class.
    @pytest.fixture(scope="class")
    @classmethod
    def data(cls) -> tuple[InteractionData, InteractionData]:
        return planted_data()

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, data: tuple[InteractionData, InteractionData]) -> BaseRecommender:
        model = cls().make_model()
        model.fit(data[0])
        return model

    # -- fitting and scoring ---------------------------------------------------------------
    def test_is_a_recommender(self) -> None:
        model = self.make_model()
        assert isinstance(model, Recommender)
        assert isinstance(model.name, str) and model.name

    def test_fit_returns_report(self, data: tuple[InteractionData, InteractionData]) -> None:
        report = self.make_model().fit(data[0])
        assert isinstance(report, FitReport)
        assert report.train_seconds >= 0.0
        assert report.epochs >= 1

    def test_score_shape_dtype_finite(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        train = data[0]
        users = np.array([0, 1, 5])
        seqs = train.sequences()
        scores = fitted.score(users, [seqs[u] for u in users])
        assert scores.shape == (3, N_ITEMS)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_score_new_user_index(self, fitted: BaseRecommender) -> None:
        scores = fitted.score(np.array([-1, -1]), [np.array([0, 1, 2]), np.array([], dtype=int)])
        assert scores.shape == (2, N_ITEMS)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_score_empty_batch(self, fitted: BaseRecommender) -> None:
        assert fitted.score(np.zeros(0, dtype=np.int64), []).shape == (0, N_ITEMS)

    def test_top_items_are_the_sorted_score_rows(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        seqs = data[0].sequences()
        users = np.array([0, 1, -1])
        histories = [seqs[0], seqs[1][:3], np.array([], dtype=np.int64)]
        rows = fitted.score(users, histories)
        masks = [seqs[0], np.array([0, 1]), np.zeros(0, dtype=np.int64)]
        got = fitted.top_items(users, histories, 7, masks)
        for row, mask, (ids, scores) in zip(rows, masks, got, strict=True):
            masked = row.astype(np.float64)
            masked[mask] = -np.inf
            order = np.lexsort((np.arange(N_ITEMS), -masked))  # ties to the lower index
            want = [i for i in order if np.isfinite(masked[i])][:7]
            assert ids.tolist() == want
            np.testing.assert_allclose(scores, row[want], rtol=1e-6)
        with pytest.raises(ValueError, match="masks"):
            fitted.top_items(users, histories, 7, masks[:2])

    def test_config_round_trip(self) -> None:
        model = self.make_model()
        config = model.config_dict()
        json.dumps(config)  # must be JSON-serialisable
        assert type(model).from_config_dict(config).config_dict() == config

    # -- recommend -------------------------------------------------------------------------
    def test_recommend_excludes_history(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        seqs = data[0].sequences()
        for u in range(4):
            recs = fitted.recommend(f"u{u}", k=N_ITEMS)
            seen = set(data[0].item_map.decode(seqs[u]))
            assert not seen & {r.item_id for r in recs}

    def test_recommend_can_include_history(self, fitted: BaseRecommender) -> None:
        recs = fitted.recommend("u0", k=N_ITEMS, exclude_seen=False)
        assert len(recs) == N_ITEMS

    def test_recommend_respects_k(self, fitted: BaseRecommender) -> None:
        recs = fitted.recommend("u0", k=5)
        assert len(recs) == 5
        assert [r.rank for r in recs] == [1, 2, 3, 4, 5]
        assert len({r.item_id for r in recs}) == 5

    def test_recommend_k_beyond_candidates_returns_all(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        n_seen = len(data[0].sequences()[0])
        recs = fitted.recommend("u0", k=1000)
        assert len(recs) == N_ITEMS - n_seen

    def test_recommend_sorted_by_score(self, fitted: BaseRecommender) -> None:
        recs = fitted.recommend("u1", k=N_ITEMS)
        scores = [r.score for r in recs]
        assert scores == sorted(scores, reverse=True)

    def test_recommend_matches_score(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        u = 2
        hist = data[0].sequences()[u]
        scores = fitted.score(np.array([u]), [hist])[0]
        top = fitted.recommend(f"u{u}", k=1)[0]
        best = max(set(range(N_ITEMS)) - set(hist.tolist()), key=lambda i: scores[i])
        assert top.score == pytest.approx(float(scores[best]))

    def test_recommend_unknown_user_raises(self, fitted: BaseRecommender) -> None:
        with pytest.raises(UnknownIdError, match="no-such-user"):
            fitted.recommend("no-such-user")

    def test_recommend_bad_k_raises(self, fitted: BaseRecommender) -> None:
        with pytest.raises(ValueError, match="k"):
            fitted.recommend("u0", k=0)

    # -- not fitted ------------------------------------------------------------------------
    def test_unfitted_raises(self, tmp_path: Path) -> None:
        model = self.make_model()
        with pytest.raises(NotFittedError):
            model.score(np.array([0]), [np.array([1])])
        with pytest.raises(NotFittedError):
            model.recommend("u0")
        with pytest.raises(NotFittedError):
            model.save(tmp_path / "m")

    # -- persistence -----------------------------------------------------------------------
    def test_save_load_same_scores(
        self,
        fitted: BaseRecommender,
        data: tuple[InteractionData, InteractionData],
        tmp_path: Path,
    ) -> None:
        fitted.save(tmp_path / "model")
        loaded = type(fitted).load(tmp_path / "model")
        users = np.arange(N_USERS)
        seqs = data[0].sequences()
        hists = [seqs[u] for u in users]
        before, after = fitted.score(users, hists), loaded.score(users, hists)
        if self.deterministic:
            np.testing.assert_array_equal(after, before)
        else:
            np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-6)
        assert loaded.config_dict() == fitted.config_dict()
        assert [r.item_id for r in loaded.recommend("u3", k=10)] == [
            r.item_id for r in fitted.recommend("u3", k=10)
        ]

    def test_load_empty_dir_raises(self, tmp_path: Path) -> None:
        with pytest.raises(ModelFileError):
            type(self.make_model()).load(tmp_path)

    def test_load_other_model_kind_raises(self, fitted: BaseRecommender, tmp_path: Path) -> None:
        fitted.save(tmp_path)
        meta = json.loads((tmp_path / "model.json").read_text())
        meta["model"] = "some-other-model"
        (tmp_path / "model.json").write_text(json.dumps(meta))
        with pytest.raises(ModelFileError, match="some-other-model"):
            type(fitted).load(tmp_path)

    # -- quality ---------------------------------------------------------------------------
    def test_learns_planted_pattern(
        self, fitted: BaseRecommender, data: tuple[InteractionData, InteractionData]
    ) -> None:
        if not self.learns:
            pytest.skip(f"{fitted.name} is not expected to learn user-specific patterns")
        train, held = data
        seqs, targets = train.sequences(), held.sequences()
        users = np.arange(N_USERS)
        scores = fitted.score(users, [seqs[u] for u in users]).astype(np.float64)
        hits = 0
        for u in users:
            row = scores[u].copy()
            row[seqs[u]] = -np.inf
            target = targets[u][0]
            rank = int((row >= row[target]).sum()) - 1  # pessimistic ties
            hits += rank < 10
        assert hits >= 0.8 * N_USERS, f"only {hits}/{N_USERS} held-out items in the top 10"
