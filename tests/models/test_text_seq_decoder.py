"""The text sequential recommender on a decoder-only backbone (a tiny random GPT-2)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from contract import N_ITEMS, N_USERS, planted_data

from lmrec.models.text import TextSeqRecommender


def _load_write_tiny_gpt2() -> Callable[[Path], Path]:
    # The writer lives in tests/text/conftest.py, which is not importable by name from here.
    path = Path(__file__).resolve().parents[1] / "text" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_lmrec_text_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    writer: Callable[[Path], Path] = module.write_tiny_gpt2
    return writer


write_tiny_gpt2 = _load_write_tiny_gpt2()


def tiny_gpt2_texts() -> list[str]:
    """Item texts in the tiny GPT-2's word-level vocabulary: distinct per item, one word pair
    and one genre per taste group of the contract data (items 0-19 and 20-39)."""
    half = N_ITEMS // 2
    texts = []
    for i in range(N_ITEMS):
        one, zero, genre = ("alien", "horror", "horror") if i < half else ("toy", "story", "comedy")
        words = " ".join(one if (i >> bit) & 1 else zero for bit in range(5))
        texts.append(f"title : {words} ; genres : {genre}")
    return texts


def decoder_config(gpt2_dir: Path, strategy: str, epochs: int = 20) -> dict[str, Any]:
    """A small text sequential config on the tiny GPT-2 (``last``-token pooling).

    ``max_length`` is set to the model's 32 positions: the default 64 is lowered when the
    encoder loads, but a saved config stores 64 explicitly, which would then be refused.
    """
    return {
        "encoder": {"model": str(gpt2_dir), "batch_size": 16, "max_length": 32},
        "tuning": {"strategy": strategy, "lora_r": 4, "lora_dropout": 0.0},
        "dim": 16,
        "n_layers": 1,
        "n_heads": 2,
        "max_len": 12,
        "dropout": 0.1,
        "adaptor_dropout": 0.0,
        "fresh_items": 8,
        "trainer": {"epochs": epochs, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
    }


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


@pytest.mark.parametrize(("strategy", "epochs"), [("frozen", 20), ("lora", 6)])
def test_decoder_backbone_fits_scores_and_round_trips(
    gpt2_dir: Path, tmp_path: Path, strategy: str, epochs: int
) -> None:
    model = TextSeqRecommender(decoder_config(gpt2_dir, strategy, epochs))
    model.set_item_texts(tiny_gpt2_texts())
    train, held = planted_data()
    report = model.fit(train)
    assert report.epochs == epochs
    assert model.text_encoder().pooling == "last"

    seqs, targets = train.sequences(), held.sequences()
    users = np.arange(N_USERS)
    histories = [seqs[u] for u in users]
    scores = model.score(users, histories)
    assert scores.shape == (N_USERS, N_ITEMS) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # The held-out item's taste group (first or second half) should score higher on average.
    half = N_ITEMS // 2
    own = [scores[u, :half].mean() > scores[u, half:].mean() for u in users]
    expected = [targets[u][0] < half for u in users]
    assert np.mean(np.equal(own, expected)) >= 0.8

    if strategy == "lora":
        assert model.tuned is not None
        lora = {k: v for k, v in model.tuned.trainable_state_dict().items() if "lora_B" in k}
        assert lora and any(v.abs().sum() > 0 for v in lora.values())  # B starts at zero

    model.save(tmp_path / "m")
    loaded = TextSeqRecommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(users, histories), scores)
    if strategy == "lora":
        tuned = loaded.tuned_encoder()
        assert tuned is not None and model.module is not None
        np.testing.assert_allclose(
            tuned.encode(tiny_gpt2_texts()), model.module.text_vectors.numpy(), atol=1e-5
        )
