"""The content prior of the text sequential model: blend arithmetic, the "auto" choice."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from contract import planted_data
from test_text_seq import small_model

from lmrec.errors import ConfigError
from lmrec.evaluation.task import EvalTask
from lmrec.models import load_model
from lmrec.models.base import BaseRecommender
from lmrec.models.text import TextMeanRecommender, TextSeqRecommender
from lmrec.models.text._content import blend, choose_weight, standardized


def test_standardized_and_blend_by_hand() -> None:
    rows = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    z = standardized(rows)
    np.testing.assert_allclose(z[0], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert (z[1] == 0).all()  # a constant row has no spread: all zeros, no NaN
    content = np.array([[3.0, 2.0, 1.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    assert blend(rows, content, 0.0) is rows
    np.testing.assert_allclose(blend(rows, content, 1.0), standardized(content), rtol=1e-6)
    np.testing.assert_allclose(blend(rows, content, 0.5)[0], [0.0, 0.0, 0.0], atol=1e-6)


def test_choose_weight_takes_the_best_and_the_smallest_on_ties() -> None:
    best, values = choose_weight(lambda w: {0.0: 0.1, 0.1: 0.3, 0.2: 0.3}[w], (0.0, 0.1, 0.2))
    assert best == 0.1 and values == {0.0: 0.1, 0.1: 0.3, 0.2: 0.3}


@pytest.fixture(scope="module")
def trained() -> tuple[TextSeqRecommender, TextMeanRecommender]:
    model = small_model()
    train = planted_data()[0]
    model.fit(train)
    mean = TextMeanRecommender(max_len=model.config.max_len)
    mean.set_item_texts(model._require(model.item_texts))
    mean.fit(train)
    return model, mean


def test_a_fixed_weight_blends_the_trained_and_the_text_mean_scores(
    trained: tuple[TextSeqRecommender, TextMeanRecommender],
) -> None:
    model, mean = trained
    users = np.arange(4)
    histories = [h for h in planted_data()[0].sequences()[:3]] + [np.zeros(0, dtype=np.int64)]
    plain = model.score(users, histories)
    blended = copy.deepcopy(model)
    blended.config = blended.config.model_copy(update={"content_weight": 0.3})
    got = blended.score(users, histories)
    want = 0.7 * standardized(plain) + 0.3 * standardized(mean.score(users, histories))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # top_items stays the sorted blended row (the fast path does not apply to a blend)
    blended.fast_top_min_items = 0
    ids, _ = blended.top_items(users[:1], histories[:1], 5, [histories[0]])[0]
    row = got[0].astype(np.float64)
    row[histories[0]] = -np.inf
    assert ids.tolist() == np.lexsort((np.arange(len(row)), -row))[:5].tolist()
    with pytest.raises(ConfigError, match="content_weight"):
        TextSeqRecommender(content_weight=1.5)


def test_auto_chooses_on_validation_and_is_saved(
    trained: tuple[TextSeqRecommender, TextMeanRecommender], tmp_path: Path
) -> None:
    model = copy.deepcopy(trained[0])
    train, held = planted_data()
    valid = EvalTask.from_interactions(train, held)
    values = model.tune_content_weight(valid, grid=(0.0, 0.5, 1.0))
    assert model.config.content_weight == "auto"
    assert model.content_weight == max(values, key=lambda w: (values[w], -w))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TextSeqRecommender)
    assert loaded.content_weight == model.content_weight
    users, hist = np.arange(2), planted_data()[0].sequences()[:2]
    np.testing.assert_allclose(loaded.score(users, hist), model.score(users, hist), rtol=1e-5)


def test_fit_with_auto_records_the_choice() -> None:
    train, held = planted_data()
    model: BaseRecommender = small_model(content_weight="auto")
    report = model.fit(train, EvalTask.from_interactions(train, held))
    assert isinstance(model, TextSeqRecommender)
    assert report.best_valid["content_weight"] == model.content_weight
    assert model.fitted_content_weight is not None
