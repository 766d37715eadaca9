"""TunableEncoder: which weights each strategy trains, the top_k split, state round-trips."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lmrec.errors import ConfigError, ModelFileError
from lmrec.text import ItemTextEncoder, TextEncoderConfig, TunableEncoder, TuningConfig
from lmrec.text.adapters import ADAPTER_NAME

BERT_TEXTS = [
    "title: Alien (1979); genres: Horror, Sci-Fi",
    "title: Heat (1995)",
    "a laboratory centrifuge with a digital timer and a rotor for twelve tubes",
    "x",
]
GPT2_TEXTS = ["title : alien ; genres : horror", "toy story", "comedy ; toy", "alien"]
# Small settings so every strategy builds and steps quickly.
SMALL = {"top_k": 2, "lora_r": 4, "adalora_init_r": 4, "adalora_target_r": 2, "prefix_tokens": 4}
TRAINED = ["top_k", "full", "lora", "adalora", "prefix", "adapter"]

Factory = Callable[..., TunableEncoder]


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny batches run fastest on one thread, above all on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_bert() -> Factory:
    def make(strategy: str = "frozen", **overrides: object) -> TunableEncoder:
        encoder = ItemTextEncoder(TextEncoderConfig(batch_size=3, max_length=32))
        return TunableEncoder(encoder, TuningConfig(strategy=strategy, **{**SMALL, **overrides}))

    return make


@pytest.fixture
def make_gpt2(tiny_gpt2_dir: Path) -> Factory:
    def make(strategy: str = "frozen", **overrides: object) -> TunableEncoder:
        config = TextEncoderConfig(model=str(tiny_gpt2_dir), batch_size=3, max_length=16)
        encoder = ItemTextEncoder(config)
        return TunableEncoder(encoder, TuningConfig(strategy=strategy, **{**SMALL, **overrides}))

    return make


def weights(tunable: TunableEncoder) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in tunable.encoder.model.named_parameters()}


def trainable(tunable: TunableEncoder) -> set[str]:
    return {n for n, p in tunable.encoder.model.named_parameters() if p.requires_grad}


def one_step(tunable: TunableEncoder, texts: list[str]) -> set[str]:
    """One AdamW step on a loss from forward(); returns the names of the changed weights."""
    torch.manual_seed(1)
    before = weights(tunable)
    tunable.train()
    ids, mask = tunable.encoder.tokenize(texts)
    assert not bool(mask.all()), "the batch should contain padding"
    vectors = tunable(ids, mask)
    target = torch.randn_like(vectors)
    loss = (vectors - target).square().sum()
    optimizer = torch.optim.AdamW([p for p in tunable.parameters() if p.requires_grad], lr=1e-2)
    loss.backward()
    optimizer.step()
    tunable.on_step(1)
    after = weights(tunable)
    return {n for n in before if not torch.equal(before[n], after[n])}


def eval_forward(tunable: TunableEncoder, texts: list[str]) -> torch.Tensor:
    tunable.eval()
    with torch.no_grad():
        return tunable(*tunable.encoder.tokenize(texts))


def is_lora(name: str) -> bool:
    return ".lora_" in name


EXPECTED_BERT: dict[str, Callable[[str], bool]] = {
    "top_k": lambda n: n.startswith(("encoder.layer.4.", "encoder.layer.5.")),
    "full": lambda n: not n.startswith("pooler."),
    "lora": is_lora,
    "adalora": is_lora,
    "prefix": lambda n: n.startswith("prompt_encoder."),
    "adapter": lambda n: ADAPTER_NAME in n,
}


# ----------------------------------------------------------------------------- which weights


def test_frozen_trains_nothing(make_bert: Factory, minilm: ItemTextEncoder) -> None:
    tunable = make_bert("frozen")
    assert not tunable.trains_encoder
    assert trainable(tunable) == set()
    assert tunable.trainable_state_dict() == {}
    ids, mask = tunable.encoder.tokenize(BERT_TEXTS)
    vectors = tunable(ids, mask)
    assert not vectors.requires_grad
    with torch.no_grad():
        expected = minilm.forward_tensors(ids, mask)
    torch.testing.assert_close(vectors, expected, atol=0.0, rtol=0.0)
    tunable.on_step(1)  # no-ops
    tunable.set_total_steps(10)


@pytest.mark.parametrize("strategy", TRAINED)
def test_one_step_changes_exactly_what_the_strategy_trains(
    make_bert: Factory, strategy: str
) -> None:
    tunable = make_bert(strategy)
    if strategy == "adalora":
        tunable.set_total_steps(10)
    assert tunable.trains_encoder
    names = trainable(tunable)
    expected = EXPECTED_BERT[strategy]
    assert names and all(expected(n) for n in names)
    changed = one_step(tunable, BERT_TEXTS)
    assert changed <= names  # everything else, the base weights above all, is bit-identical
    if strategy == "top_k":
        assert names == {n for n, _ in tunable.model.named_parameters() if expected(n)}
        assert any(n.startswith("encoder.layer.4.") for n in changed)
        assert any(n.startswith("encoder.layer.5.") for n in changed)
    elif strategy == "full":
        assert "embeddings.word_embeddings.weight" in changed
        for i in range(6):
            assert any(n.startswith(f"encoder.layer.{i}.") for n in changed)
    elif strategy in ("lora", "adalora"):
        assert any(".lora_B." in n for n in changed)
    elif strategy == "prefix":
        assert changed == names
    else:
        assert any(n.endswith("up.weight") for n in changed)


@pytest.mark.parametrize("strategy", ["lora", "adapter"])
def test_lora_and_adapter_start_as_identity(
    make_bert: Factory, minilm: ItemTextEncoder, strategy: str
) -> None:
    tunable = make_bert(strategy)
    ids, mask = tunable.encoder.tokenize(BERT_TEXTS)
    with torch.no_grad():
        base = minilm.forward_tensors(ids, mask)
    torch.testing.assert_close(eval_forward(tunable, BERT_TEXTS), base, atol=0.0, rtol=0.0)
    one_step(tunable, BERT_TEXTS)
    assert not torch.allclose(eval_forward(tunable, BERT_TEXTS), base, atol=1e-4)


def test_prefix_changes_the_vectors(make_bert: Factory, minilm: ItemTextEncoder) -> None:
    tunable = make_bert("prefix")
    ids, mask = tunable.encoder.tokenize(BERT_TEXTS)
    with torch.no_grad():
        base = minilm.forward_tensors(ids, mask)
    tuned = eval_forward(tunable, BERT_TEXTS)
    assert not torch.allclose(tuned, base, atol=1e-3)
    # Padding in the batch must not leak into a text's vector.
    alone = eval_forward(tunable, BERT_TEXTS[1:2])
    torch.testing.assert_close(tuned[1:2], alone, atol=1e-5, rtol=0.0)


# ----------------------------------------------------------------------------- top_k split


@pytest.mark.parametrize(("model", "k"), [("bert", 2), ("gpt2", 1), ("gpt2", 2)])
def test_upper_forward_of_lower_states_equals_forward(
    make_bert: Factory, make_gpt2: Factory, model: str, k: int
) -> None:
    tunable = (make_bert if model == "bert" else make_gpt2)("top_k", top_k=k)
    texts = BERT_TEXTS if model == "bert" else GPT2_TEXTS
    tunable.eval()
    ids, mask = tunable.encoder.tokenize(texts)
    assert not bool(mask.all())
    expected = tunable(ids, mask)
    hidden = tunable.lower_states(ids, mask)
    assert not hidden.requires_grad and not hidden.is_inference()
    assert hidden.shape == (*ids.shape, tunable.encoder.dim)
    vectors = tunable.upper_forward(hidden, mask)
    torch.testing.assert_close(vectors, expected, atol=1e-5, rtol=0.0)
    vectors.sum().backward()  # the cached states can feed autograd
    assert all(p.grad is not None for p in tunable.parameters() if p.requires_grad)
    # Without padding the model skips the mask; the split must do the same.
    full_ids, full_mask = ids[:1, : int(mask[0].sum())], mask[:1, : int(mask[0].sum())]
    torch.testing.assert_close(
        tunable.upper_forward(tunable.lower_states(full_ids, full_mask), full_mask),
        tunable(full_ids, full_mask),
        atol=1e-5,
        rtol=0.0,
    )


def test_gpt2_top_k_trains_top_block_and_final_norm(make_gpt2: Factory) -> None:
    tunable = make_gpt2("top_k", top_k=1)
    names = trainable(tunable)
    assert names == {
        n for n, _ in tunable.model.named_parameters() if n.startswith(("h.1.", "ln_f."))
    }
    changed = one_step(tunable, GPT2_TEXTS)
    assert changed <= names and any(n.startswith("h.1.") for n in changed)


# ----------------------------------------------------------------------------- GPT-2 strategies


@pytest.mark.parametrize("strategy", ["lora", "adalora", "prefix", "adapter"])
def test_gpt2_parameter_efficient_strategies(make_gpt2: Factory, strategy: str) -> None:
    tunable = make_gpt2(strategy)
    tunable.set_total_steps(5)
    names = trainable(tunable)
    if strategy in ("lora", "adalora"):
        assert names and all(is_lora(n) and ".c_attn." in n for n in names)
    changed = one_step(tunable, GPT2_TEXTS)
    assert changed and changed <= names
    state = tunable.trainable_state_dict()
    twin = make_gpt2(strategy)
    twin.load_trainable_state_dict(state)
    torch.testing.assert_close(
        eval_forward(twin, GPT2_TEXTS), eval_forward(tunable, GPT2_TEXTS), atol=1e-6, rtol=0.0
    )


# ----------------------------------------------------------------------------- state round-trip


@pytest.mark.parametrize("strategy", TRAINED)
def test_trainable_state_round_trip(make_bert: Factory, strategy: str) -> None:
    torch.manual_seed(0)
    tunable = make_bert(strategy)
    tunable.set_total_steps(10)
    one_step(tunable, BERT_TEXTS)
    state = tunable.trainable_state_dict()
    assert set(state) == trainable(tunable)
    for name, param in tunable.model.named_parameters():
        if name in state:  # copies, not views of the live weights
            assert state[name].data_ptr() != param.data_ptr()
    torch.manual_seed(123)  # fresh random prefixes/adapters, so loading has to matter
    twin = make_bert(strategy)
    twin.load_trainable_state_dict(state)
    torch.testing.assert_close(
        eval_forward(twin, BERT_TEXTS), eval_forward(tunable, BERT_TEXTS), atol=1e-6, rtol=0.0
    )


def test_load_rejects_a_state_of_another_shape(make_bert: Factory) -> None:
    state = make_bert("lora").trainable_state_dict()
    with pytest.raises(ModelFileError, match=r"missing keys .*bottleneck_adapter.*unexpected"):
        make_bert("adapter").load_trainable_state_dict(state)
    with pytest.raises(ModelFileError, match="shape"):
        make_bert("lora", lora_r=2).load_trainable_state_dict(state)
    partial = dict(list(state.items())[1:])
    with pytest.raises(ModelFileError, match=r"missing keys .*lora_A.*unexpected keys none"):
        make_bert("lora").load_trainable_state_dict(partial)


# ----------------------------------------------------------------------------- adalora schedule


def test_adalora_shrinks_the_rank_budget(make_bert: Factory) -> None:
    tunable = make_bert("adalora")
    with pytest.raises(ConfigError, match="set_total_steps"):
        tunable.on_step(1)
    with pytest.raises(ConfigError, match="total_steps"):
        tunable.set_total_steps(0)
    tunable.set_total_steps(3)
    optimizer = torch.optim.AdamW([p for p in tunable.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = tunable.encoder.tokenize(BERT_TEXTS)
    for step in (1, 2, 3):
        optimizer.zero_grad(set_to_none=True)
        if step != 2:  # step 2 sees no encoder gradient at all, which must not break on_step
            tunable(ids, mask).sum().backward()
        optimizer.step()
        tunable.on_step(step)
    singular = [p for n, p in tunable.model.named_parameters() if ".lora_E." in n]
    assert len(singular) == 12  # query and value in 6 layers
    kept = sum(int((p != 0).sum()) for p in singular)
    assert 0 < kept <= 12 * 2  # the target budget: adalora_target_r per module
    assert tunable.model.peft_config["default"].rank_pattern


# ----------------------------------------------------------------------------- encode


def test_encode_matches_forward_and_restores_mode(make_bert: Factory) -> None:
    tunable = make_bert("adapter")
    one_step(tunable, BERT_TEXTS)
    expected = eval_forward(tunable, BERT_TEXTS).numpy()
    tunable.train()
    vectors = tunable.encode(BERT_TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert all(m.training for m in tunable.modules())
    tunable.eval()
    tunable.encode(BERT_TEXTS[:1])
    assert not any(m.training for m in tunable.modules())
    assert tunable.encode([]).shape == (0, 384)


# ----------------------------------------------------------------------------- errors


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        TuningConfig(top_k=0)
    with pytest.raises(ValidationError, match="adalora_target_r"):
        TuningConfig(adalora_init_r=2, adalora_target_r=4)
    with pytest.raises(ValidationError, match="strategy"):
        TuningConfig(strategy="bitfit")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="lora_targets"):
        TuningConfig(lora_targets=())
    with pytest.raises(ValidationError, match="extra"):
        TuningConfig(lora_rank=4)  # type: ignore[call-arg]


def test_bad_inputs_raise_config_error(make_bert: Factory, make_gpt2: Factory) -> None:
    with pytest.raises(ConfigError, match=r"top_k: 7 exceeds the 6 transformer layers"):
        make_bert("top_k", top_k=7)
    with pytest.raises(ConfigError, match="lora_targets"):
        make_bert("lora", lora_targets=("no_such_module",))
    with pytest.raises(ConfigError, match=r"prefix_tokens: 20 .* 32 positions"):
        make_gpt2("prefix", prefix_tokens=20)
    lora = make_bert("lora")
    ids, mask = lora.encoder.tokenize(BERT_TEXTS)
    with pytest.raises(ConfigError, match="lower_states needs strategy 'top_k'"):
        lora.lower_states(ids, mask)
    with pytest.raises(ConfigError, match="upper_forward needs strategy 'top_k'"):
        lora.upper_forward(torch.zeros(4, ids.shape[1], 384), mask)
    with pytest.raises(ConfigError, match="fresh"):
        TunableEncoder(lora.encoder, TuningConfig(strategy="adapter"))
    adapted = make_bert("adapter")
    with pytest.raises(ConfigError, match="fresh"):
        TunableEncoder(adapted.encoder, TuningConfig(strategy="adapter"))
