"""The CTR cross-encoder: profiles, labels, pair tokens, training, persistence, re-ranking."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec.data.registry import load_dataset
from lmrec.data.schema import Dataset, IdMap, InteractionData
from lmrec.data.splitting import EncodedSplit, encode_split, leave_one_out_split
from lmrec.errors import ConfigError, DataError, ModelFileError, NotFittedError
from lmrec.evaluation.evaluator import Evaluator
from lmrec.evaluation.task import EvalTask
from lmrec.models.ctr import (
    NO_ITEM,
    CTRExamples,
    CTRModel,
    PairEncoder,
    RerankedRecommender,
    interaction_examples,
    pair_template,
    profile_text,
    rerank_scores,
    short_title,
    split_examples,
    top_candidates,
    user_attributes,
)
from lmrec.text.encoder import default_model_path
from lmrec.text.tuning import TunableEncoder

# Small enough for two CPU cores: short pairs, few examples.
SMALL = {
    "profile_items": 3,
    "max_length": 40,
    "max_examples": 240,
    "head_hidden": 64,
    "trainer": {"epochs": 25, "batch_size": 32, "lr": 3e-3, "patience": 4, "seed": 0},
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny tensors on a shared machine: a second thread waits more than it helps.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- data -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def explicit_dataset(movielens_like: Path) -> Dataset:
    return load_dataset(movielens_like, use_cache=False)


@pytest.fixture(scope="module")
def implicit_dataset(explicit_dataset: Dataset) -> Dataset:
    d = explicit_dataset
    return Dataset(d.name, d.interactions.drop(columns=["rating"]), d.items, d.users, d.text_fields)


@pytest.fixture(scope="module")
def implicit_split(implicit_dataset: Dataset) -> EncodedSplit:
    return encode_split(leave_one_out_split(implicit_dataset.interactions), implicit_dataset)


def _interactions(rows: list[tuple[str, str, int, float]], n_items: int = 6) -> InteractionData:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    frame["timestamp"] = frame["timestamp"].astype("int64")
    users = IdMap(sorted(frame["user_id"].unique()), "user")
    items = IdMap([f"i{i}" for i in range(n_items)], "item")
    return InteractionData.from_frame(frame, users, items)


# -- profiles ---------------------------------------------------------------------------------
def test_profile_text_lists_attributes_then_recent_titles() -> None:
    attributes = {"age": "24", "gender": "M", "occupation": "technician"}
    text = profile_text(["Heat (1995)", "Alien (1979)"], attributes)
    assert text == "age: 24; gender: M; occupation: technician; recent: Heat (1995); Alien (1979)"
    assert profile_text(["Heat (1995)"], None) == "recent: Heat (1995)"
    assert profile_text([], {}) == "no history"


def test_short_title_keeps_the_first_sentence() -> None:
    assert short_title("Toy Story (1995)") == "Toy Story (1995)"
    long = "eSUN filament 1.75mm Spool for 3D Printers. Industrial & Scientific Additive."
    assert short_title(long) == "eSUN filament 1.75mm Spool for 3D Printers."
    assert short_title("word " * 40, max_chars=20) == "word word word word"


def test_user_attributes_hide_zip_codes(explicit_dataset: Dataset) -> None:
    user_map = explicit_dataset.user_map()
    attributes = user_attributes(explicit_dataset, user_map)
    assert attributes[user_map.index("1")] == {"age": "21", "gender": "M", "occupation": "student"}
    chosen = user_attributes(explicit_dataset, user_map, ["occupation"])
    assert chosen[user_map.index("2")] == {"occupation": "student"}
    with pytest.raises(ConfigError, match="'hobby'"):
        user_attributes(explicit_dataset, user_map, ["hobby"])


# -- examples ---------------------------------------------------------------------------------
def test_profiles_hold_only_strictly_earlier_items_newest_first() -> None:
    data = _interactions(
        [
            ("a", "i0", 10, 5.0),
            ("a", "i1", 20, 2.0),
            ("a", "i2", 20, 4.0),  # same second as i1: neither is in the other's profile
            ("a", "i0", 30, 4.0),  # a repeat: its own item is never in its profile
            ("a", "i3", 40, 1.0),
            ("b", "i4", 5, 3.0),
        ]
    )
    ex = interaction_examples(data, profile_items=2)
    assert ex.profiles.shape == (6, 2)
    profiles = [
        (int(u), int(i), int(t), ex.profile_of(j).tolist())
        for j, (u, i, t) in enumerate(zip(ex.users, ex.items, data.timestamps, strict=True))
    ]
    assert profiles == [
        (0, 0, 10, []),
        (0, 1, 20, [0]),
        (0, 2, 20, [0]),
        (0, 0, 30, [2, 1]),
        (0, 3, 40, [0, 2]),
        (1, 4, 5, []),
    ]
    assert (ex.profiles[0] == NO_ITEM).all()


def test_explicit_ratings_label_every_interaction_by_threshold() -> None:
    data = _interactions([("a", "i0", 1, 5.0), ("a", "i1", 2, 3.5), ("b", "i2", 1, 4.0)])
    ex = interaction_examples(data, positive_threshold=4.0)
    assert ex.labels.tolist() == [1.0, 0.0, 1.0]
    assert ex.ratings.tolist() == [5.0, 3.5, 4.0]
    assert ex.items.tolist() == [0, 1, 2]


def test_implicit_data_gets_sampled_unseen_negatives() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "item_id": ["i0", "i1", "i2", "i3"],
            "timestamp": [1, 2, 3, 1],
        }
    )
    users, items = IdMap(["a", "b"], "user"), IdMap([f"i{i}" for i in range(8)], "item")
    data = InteractionData.from_frame(frame, users, items)
    ex = interaction_examples(data, negatives_per_positive=3, profile_items=2, seed=1)
    assert len(ex) == 4 * 4
    assert ex.labels.tolist() == [1.0, 0.0, 0.0, 0.0] * 4
    assert np.isnan(ex.ratings).all()
    for j in np.flatnonzero(ex.labels == 0):
        seen = set(data.sequences()[int(ex.users[j])].tolist())
        assert int(ex.items[j]) not in seen
        positive = j - (j % 4)  # each negative shares its positive's profile
        assert ex.users[j] == ex.users[positive]
        assert ex.profiles[j].tolist() == ex.profiles[positive].tolist()
    again = interaction_examples(data, negatives_per_positive=3, profile_items=2, seed=1)
    assert again.items.tolist() == ex.items.tolist()


def test_split_examples_profile_the_known_history_and_avoid_all_user_items(
    implicit_split: EncodedSplit,
) -> None:
    ex = split_examples(implicit_split, "test", profile_items=4, negatives_per_positive=2)
    known = implicit_split.train_and_valid().sequences()
    every = [
        set(k.tolist()) | set(t.tolist())
        for k, t in zip(known, implicit_split.test.sequences(), strict=True)
    ]
    positives = np.flatnonzero(ex.labels == 1)
    assert len(positives) == len(implicit_split.test)
    for j in range(len(ex)):
        u = int(ex.users[j])
        assert ex.profile_of(j).tolist() == known[u][::-1][:4].tolist()
        if ex.labels[j] == 0:
            assert int(ex.items[j]) not in every[u]
    valid = split_examples(implicit_split, "valid", users={0, 1})
    assert set(valid.users.tolist()) <= {0, 1}
    with pytest.raises(ConfigError, match="part"):
        split_examples(implicit_split, "train")  # type: ignore[arg-type]


def test_sample_keeps_at_most_n_in_order() -> None:
    n = 50
    ex = CTRExamples(
        np.arange(n),
        np.arange(n),
        np.zeros(n, dtype=np.float32),
        np.full(n, np.nan),
        np.full((n, 2), NO_ITEM),
    )
    sample = ex.sample(10, seed=3)
    assert len(sample) == 10 and np.all(np.diff(sample.users) > 0)
    assert ex.sample(10, seed=3).users.tolist() == sample.users.tolist()
    assert ex.sample(None) is ex and ex.sample(500) is ex


# -- pair tokens ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer() -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(default_model_path()))


def test_pairs_use_the_tokenizers_own_separator(tokenizer: object) -> None:
    prefix, middle, suffix = pair_template(tokenizer)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id  # type: ignore[attr-defined]
    assert (prefix, middle, suffix) == ([cls_id], [sep_id], [sep_id])
    pairs = PairEncoder(tokenizer, ["title: Heat (1995)"], max_length=64)
    (ids,) = pairs.pairs(["age: 24; recent: Alien (1979)"], np.array([0]))
    text = tokenizer.decode(ids)  # type: ignore[attr-defined]
    assert text == "[CLS] age : 24 ; recent : alien ( 1979 ) [SEP] title : heat ( 1995 ) [SEP]"


def test_pairs_truncate_the_profile_first(tokenizer: object) -> None:
    pairs = PairEncoder(tokenizer, ["title: Heat (1995)", "long " * 100], max_length=24)
    short_item, long_item = pairs.pairs(["recent " * 100] * 2, np.array([0, 1]))
    assert len(short_item) == len(long_item) == 24
    item_tokens = pairs.item_ids[0]
    assert short_item[-len(item_tokens) - 1 : -1] == item_tokens  # the item is whole
    room = 24 - 3
    assert long_item.count(pairs.item_ids[1][0]) == room // 2  # a long item keeps half


# -- training -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(implicit_dataset: Dataset, implicit_split: EncodedSplit) -> CTRModel:
    model = CTRModel(SMALL)
    valid = model.heldout_examples(implicit_split, "valid")
    report = model.fit(implicit_dataset, implicit_split.train, valid)
    assert report.best_epoch is not None and report.best_valid["auc"] > 0.6
    return model


def test_training_separates_the_taste_groups(
    fitted: CTRModel, implicit_split: EncodedSplit
) -> None:
    train_like = fitted.training_examples(implicit_split.train).sample(120, seed=5)
    metrics = fitted.evaluate(train_like)
    assert metrics["auc"] > 0.8
    assert metrics["logloss"] < 0.6
    assert metrics["n_examples"] == 120
    held_out = fitted.evaluate(fitted.heldout_examples(implicit_split, "test"))
    assert held_out["auc"] > 0.7 and held_out["gauc"] > 0.6
    assert held_out["gauc_users"] > 0


def test_frozen_strategy_trains_only_the_head(fitted: CTRModel) -> None:
    assert fitted.network is not None
    head = sum(p.numel() for p in fitted.network.head.parameters())
    assert fitted.trainable_parameters() == head


def test_save_and_load_give_identical_predictions(
    fitted: CTRModel, implicit_split: EncodedSplit, tmp_path: Path
) -> None:
    examples = fitted.heldout_examples(implicit_split, "test")
    fitted.save(tmp_path / "ctr")
    loaded = CTRModel.load(tmp_path / "ctr")
    assert loaded.config == fitted.config
    np.testing.assert_array_equal(loaded.predict(examples), fitted.predict(examples))
    saved = torch.load(tmp_path / "ctr" / "encoder.pt", weights_only=True)
    assert saved == {}  # frozen: the language model itself is not stored
    with pytest.raises(ModelFileError, match=r"ctr\.json"):
        CTRModel.load(tmp_path / "nothing-here")


def test_top_k_tunes_the_encoder_steps_the_hook_and_round_trips(
    implicit_dataset: Dataset,
    implicit_split: EncodedSplit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[int] = []
    monkeypatch.setattr(TunableEncoder, "on_step", lambda self, step: steps.append(step))
    config = {
        **SMALL,
        "max_examples": 32,
        "tuning": {"strategy": "top_k", "top_k": 1, "lr_scale": 0.1},
        "trainer": {"epochs": 2, "batch_size": 16, "patience": None, "seed": 0},
    }
    model = CTRModel(config)
    model.fit(implicit_dataset, implicit_split.train)
    assert steps == list(range(1, 5))  # 32 examples / 16 per batch * 2 epochs
    assert model.network is not None
    tuned = model.network.encoder.trainable_state_dict()
    assert tuned and all("layer.5." in name for name in tuned)  # MiniLM's top layer only
    examples = model.heldout_examples(implicit_split, "test", users=range(4))
    model.save(tmp_path / "top_k")
    loaded = CTRModel.load(tmp_path / "top_k")
    np.testing.assert_array_equal(loaded.predict(examples), model.predict(examples))


def test_mse_objective_regresses_scaled_ratings(explicit_dataset: Dataset) -> None:
    split = encode_split(leave_one_out_split(explicit_dataset.interactions), explicit_dataset)
    config = {**SMALL, "objective": "mse", "max_examples": 48, "trainer": {"epochs": 2}}
    model = CTRModel(config)
    model.fit(explicit_dataset, split.train)
    assert model.rating_range == (1.0, 5.0)
    examples = model.heldout_examples(split, "test", users=range(10))
    probs = model.predict(examples)
    assert np.all((probs >= 0) & (probs <= 1))
    metrics = model.evaluate(examples)
    assert 0.0 < metrics["rmse"] < 4.0
    assert np.array_equal(examples.labels, (examples.ratings >= 4.0).astype(np.float32))


# -- re-ranking -------------------------------------------------------------------------------
class _Prefers:
    """A CTR stand-in: the favourite item scores 1, every other candidate by its index."""

    def __init__(self, favourite: int) -> None:
        self.favourite = favourite
        self.seen: list[np.ndarray] = []

    def score_candidates(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray],
        candidates: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        self.seen.extend(candidates)
        return [
            np.where(c == self.favourite, 1.0, 0.5 - c / 1000.0).astype(np.float32)
            for c in candidates
        ]


class _Fixed:
    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self.scores, (len(users), 1))


def _ranking(scores: np.ndarray) -> list[int]:
    return np.lexsort((np.arange(len(scores)), -scores)).tolist()


def test_reranking_moves_the_ctr_favourite_to_rank_one() -> None:
    retrieval = np.linspace(1.0, 0.0, 20).astype(np.float32)  # item 0 best, item 19 worst
    ctr = _Prefers(favourite=7)
    out = rerank_scores(retrieval[None, :], [np.array([1, 2])], ctr, top_n=10)[0]
    assert out.dtype == np.float32
    ranking = _ranking(out)
    assert ranking[0] == 7
    assert set(ranking[:10]) == set(top_candidates(retrieval, np.array([1, 2]), 10).tolist())
    assert set(ctr.seen[0].tolist()) == {0, 3, 4, 5, 6, 7, 8, 9, 10, 11}  # history excluded
    # Below the top-N every item keeps its retrieval score, so its retrieval order.
    rest = [i for i in ranking[10:] if i not in (1, 2)]
    assert rest == list(range(12, 20))
    np.testing.assert_array_equal(out[12:], retrieval[12:])


def test_items_outside_the_top_n_never_enter_it() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 30)).astype(np.float32)
    histories = [rng.choice(30, size=4, replace=False) for _ in range(5)]
    ctr = _Prefers(favourite=29)  # favours the highest indices, wherever they rank
    out = rerank_scores(scores, histories, ctr, top_n=6)
    for row in range(5):
        before = top_candidates(scores[row], histories[row], 6)
        after = [i for i in _ranking(out[row]) if i not in set(histories[row].tolist())][:6]
        assert set(after) == set(before.tolist())


def test_top_n_beyond_the_catalog_reranks_every_eligible_item() -> None:
    scores = np.array([[0.3, 0.2, -np.inf, 0.9, 0.1]], dtype=np.float32)
    out = rerank_scores(scores, [np.array([3])], _Prefers(favourite=4), top_n=100)[0]
    assert _ranking(out)[:3] == [4, 0, 1]  # the CTR order, item 2 (-inf) and 3 (seen) below
    assert out[2] == -np.inf


def test_reranked_recommender_works_with_the_evaluator(
    fitted: CTRModel, implicit_split: EncodedSplit
) -> None:
    full = implicit_split.test_task()
    task = EvalTask(full.users[:16], full.histories[:16], full.targets[:16], full.n_items)
    popularity = implicit_split.train.item_counts().astype(np.float32)
    retrieval = _Fixed(popularity)
    evaluator = Evaluator(ks=(10,))
    before = evaluator.evaluate(retrieval, task).metrics
    same = evaluator.evaluate(RerankedRecommender(retrieval, fitted, top_n=1), task).metrics
    assert same["ndcg@10"] == before["ndcg@10"]  # a top-1 cannot change order
    reranked = RerankedRecommender(retrieval, fitted, top_n=10)
    assert reranked.name == "fixed+ctr@10"
    after = evaluator.evaluate(reranked, task).metrics
    # Re-ranking the top 10 never changes whether a target is in it, only where.
    assert after["recall@10"] == before["recall@10"]
    scores = reranked.score(task.users[:2], task.histories[:2])
    for row in range(2):
        candidates = top_candidates(popularity, task.histories[row], 10)
        (probs,) = fitted.score_candidates(
            task.users[row : row + 1], [task.histories[row]], [candidates]
        )
        expected = candidates[np.lexsort((candidates, -probs))]
        assert _ranking(scores[row])[:10] == expected.tolist()


# -- errors ---------------------------------------------------------------------------------
def test_bad_config_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="strategy"):
        CTRModel(tuning={"strategy": "bogus"})
    with pytest.raises(ConfigError, match="objective"):
        CTRModel(objective="hinge")
    with pytest.raises(ConfigError, match="max_examples"):
        CTRModel(max_examples=0)
    with pytest.raises(ConfigError, match="top_n"):
        RerankedRecommender(_Fixed(np.zeros(3)), _Prefers(0), top_n=0)


def test_bad_data_is_refused(implicit_dataset: Dataset, implicit_split: EncodedSplit) -> None:
    empty = InteractionData(
        implicit_split.user_map,
        implicit_split.item_map,
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    )
    with pytest.raises(DataError, match="at least one training interaction"):
        CTRModel(SMALL).fit(implicit_dataset, empty)
    with pytest.raises(ConfigError, match="'mse'"):
        CTRModel(SMALL, objective="mse").fit(implicit_dataset, implicit_split.train)
    liked = InteractionData(
        implicit_split.user_map,
        implicit_split.item_map,
        np.array([0, 0]),
        np.array([0, 1]),
        np.array([1, 2]),
        np.array([5.0, 4.0]),
    )
    with pytest.raises(DataError, match="every training example is positive"):
        CTRModel(SMALL).fit(implicit_dataset, liked)
    with pytest.raises(NotFittedError):
        CTRModel(SMALL).predict(interaction_examples(liked))
