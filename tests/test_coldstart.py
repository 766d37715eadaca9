"""Cold-start users: a stated-preference text, attributes and short histories, no retraining."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmrec.coldstart import (
    ColdStartConfig,
    ColdStartScorer,
    attributes_text,
    item_popularity,
    query_text,
    standardize,
)
from lmrec.errors import ConfigError
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.models.text import TextMeanRecommender, TextSeqRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
from contract import N_ITEMS, planted_data
from test_text_seq import planted_texts, small_model

SCI_FI = "I like sci-fi: alien spaceships, galaxy wars and star fleets"
ROMANCE = "I like romance: love letters, weddings and a first kiss"
GROUP_A = set(range(N_ITEMS // 2))


@pytest.fixture(scope="module")
def seq() -> TextSeqRecommender:
    model = small_model()
    model.fit(planted_data()[0])
    return model


@pytest.fixture(scope="module")
def mean() -> TextMeanRecommender:
    model = TextMeanRecommender()
    model.set_item_texts(planted_texts())
    model.fit(planted_data()[0])
    return model


def top(scores: np.ndarray, k: int = 10) -> set[int]:
    return {int(i) for i in np.argsort(-scores, kind="stable")[:k]}


def empty() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------- query text
def test_query_text_joins_attributes_and_text_without_zip_codes() -> None:
    attrs = {"age": 24, "gender": "M", "zip_code": "85711", "occupation": " technician "}
    assert attributes_text(attrs) == "age: 24; gender: M; occupation: technician"
    assert query_text("I like  film noir", attrs) == (
        "age: 24; gender: M; occupation: technician. I like film noir"
    )
    assert query_text(attributes={"age": 30}) == "age: 30"


def test_query_text_rejects_empty_input() -> None:
    with pytest.raises(ConfigError, match="text is empty"):
        query_text("   ")
    with pytest.raises(ConfigError, match="needs a text or user attributes"):
        query_text()
    with pytest.raises(ConfigError, match="attributes"):
        query_text(attributes={"zip_code": "85711", "age": ""})
    with pytest.raises(TypeError, match="expected str"):
        query_text(42)  # type: ignore[arg-type]


def test_config_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="popularity_weight"):
        ColdStartConfig(popularity_weight=-1.0)
    with pytest.raises(ValueError, match="text_mode"):
        ColdStartConfig(text_mode="nearest")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- scoring
def test_a_model_without_text_is_refused_by_name() -> None:
    knn = ItemKNNRecommender()
    knn.fit(planted_data()[0])
    with pytest.raises(ConfigError, match="'itemknn' cannot read text"):
        ColdStartScorer(knn)


@pytest.mark.parametrize("mode", ["sequence", "adapted", "encoder"])
def test_a_sentence_alone_finds_its_taste_group(seq: TextSeqRecommender, mode: str) -> None:
    scorer = ColdStartScorer(seq, ColdStartConfig(text_mode=mode, popularity_weight=0.0))
    sci_fi, romance = scorer.score_texts([SCI_FI, ROMANCE], [empty(), empty()])
    assert sci_fi.shape == (N_ITEMS,)
    assert len(top(sci_fi) & GROUP_A) >= 8
    assert len(top(romance) & GROUP_A) <= 2


def test_sequence_mode_reads_the_text_as_the_first_history_item(seq: TextSeqRecommender) -> None:
    # A query equal to item 3's language-model vector is item 3 without its (absent) id
    # embedding: the pseudo-item path must then give exactly the model's own scores.
    module = seq.module
    assert module is not None
    query = module.text_vectors[3:4].numpy()
    history = np.array([5, 7], dtype=np.int64)
    scorer = ColdStartScorer(seq, ColdStartConfig(text_mode="sequence", popularity_weight=0.0))
    got = scorer.score(query, [history])
    expected = seq.score(np.array([-1]), [np.array([3, 5, 7])])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_sequence_mode_keeps_long_histories_within_max_len(seq: TextSeqRecommender) -> None:
    scorer = ColdStartScorer(seq, ColdStartConfig(popularity_weight=0.0))
    long = np.arange(30, dtype=np.int64) % N_ITEMS  # max_len is 12
    scores = scorer.score_texts([SCI_FI], [long])
    assert np.isfinite(scores).all()


def test_text_and_a_short_history_combine(seq: TextSeqRecommender) -> None:
    scorer = ColdStartScorer(seq, ColdStartConfig(popularity_weight=0.0))
    group_b = np.array([21, 25, 30], dtype=np.int64)
    with_history = scorer.score_texts([ROMANCE], [group_b])[0]
    assert len(top(with_history) & GROUP_A) <= 2
    adapted = ColdStartScorer(seq, ColdStartConfig(text_mode="adapted", popularity_weight=0.0))
    mixed = adapted.score_texts([SCI_FI], [group_b])[0]
    alone = adapted.score_texts([SCI_FI], [empty()])[0]
    assert not np.allclose(standardize(mixed), standardize(alone))


def test_a_large_popularity_weight_gives_the_popularity_order(seq: TextSeqRecommender) -> None:
    scorer = ColdStartScorer(seq, ColdStartConfig(popularity_weight=1e6))
    scores = scorer.score_texts([SCI_FI], [empty()])[0]
    counts = item_popularity(seq)
    best = int(np.argmax(scores))
    assert counts[best] == counts.max()
    assert item_popularity(seq).sum() == sum(len(np.unique(h)) for h in seq.histories or [])


def test_text_mean_treats_the_text_as_one_more_history_item(mean: TextMeanRecommender) -> None:
    scorer = ColdStartScorer(mean, ColdStartConfig(popularity_weight=0.0))
    assert mean.item_vectors is not None
    query = mean.item_vectors[3:4]
    got = scorer.score(query, [np.array([5, 7])])
    expected = mean.score(np.array([-1]), [np.array([3, 5, 7])])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    sci_fi = scorer.score_texts([SCI_FI], [empty()])[0]
    assert len(top(sci_fi) & GROUP_A) >= 8


def test_a_fine_tuned_encoder_encodes_the_query(seq: TextSeqRecommender) -> None:
    calls: list[list[str]] = []

    class Tuned:
        def encode(self, texts: list[str]) -> np.ndarray:
            calls.append(texts)
            return np.ones((len(texts), seq.module.text_vectors.shape[1]), dtype=np.float32)  # type: ignore[union-attr]

    scorer = ColdStartScorer(seq)
    original = seq.tuned_encoder
    seq.tuned_encoder = lambda: Tuned()  # type: ignore[assignment,method-assign,return-value]
    try:
        scorer.encode(["hello"])
    finally:
        seq.tuned_encoder = original  # type: ignore[method-assign]
    assert calls == [["hello"]]


# ----------------------------------------------------------------------------- pipeline
def test_pipeline_recommends_from_a_sentence(seq: TextSeqRecommender) -> None:
    pipeline = Pipeline(seq)
    pipeline.cold_start = ColdStartConfig(popularity_weight=0.0)
    recs = pipeline.recommend(text=SCI_FI, k=10)
    assert len(recs) == 10
    assert sum(int(r.item_id[1:]) in GROUP_A for r in recs) >= 8
    # Text with a history: the history's items are excluded, as always.
    recs = pipeline.recommend(history=["i1", "i2"], text=SCI_FI, k=10)
    assert {"i1", "i2"}.isdisjoint(r.item_id for r in recs)


def test_pipeline_recommends_from_attributes(seq: TextSeqRecommender) -> None:
    recs = Pipeline(seq).recommend(attributes={"age": 24, "zip_code": "85711"}, k=5)
    assert len(recs) == 5


def test_pipeline_text_errors_are_clear(seq: TextSeqRecommender) -> None:
    with pytest.raises(ConfigError, match="text is empty"):
        Pipeline(seq).recommend(text=" ")
    knn = ItemKNNRecommender()
    knn.fit(planted_data()[0])
    with pytest.raises(ConfigError, match="'itemknn' cannot read text"):
        Pipeline(knn).recommend(text=SCI_FI)
    with pytest.raises(ConfigError, match="a user_id or a history of item ids, or a text"):
        Pipeline(seq).recommend()


def test_pipeline_text_is_served_by_retrieval_alone(seq: TextSeqRecommender) -> None:
    class Ranker:
        calls = 0

        def score_candidates(self, *args: object) -> list[np.ndarray]:
            Ranker.calls += 1
            raise AssertionError("the ranker cannot read the text")

    pipeline = Pipeline(seq, ranker=Ranker())  # type: ignore[arg-type]
    assert len(pipeline.recommend(text=SCI_FI, k=3)) == 3
    assert Ranker.calls == 0


def test_pipeline_keeps_its_cold_start_setting(seq: TextSeqRecommender, tmp_path: Path) -> None:
    pipeline = Pipeline(seq)
    pipeline.cold_start = ColdStartConfig(text_mode="adapted", popularity_weight=0.25)
    pipeline.save(tmp_path / "run")
    loaded = Pipeline.load(tmp_path / "run")
    assert loaded.cold_start == pipeline.cold_start
    a = [r.item_id for r in pipeline.recommend(text=SCI_FI, k=5)]
    b = [r.item_id for r in loaded.recommend(text=SCI_FI, k=5)]
    assert a == b


def test_scores_leave_the_module_in_eval_mode(seq: TextSeqRecommender) -> None:
    module = seq.module
    assert module is not None
    ColdStartScorer(seq).score_texts([SCI_FI], [empty()])
    assert not module.training
    assert torch.is_tensor(module.text_vectors)
