"""SASRec baseline: the contract, plus masking, padding, training and persistence behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from contract import N_ITEMS, N_USERS, RecommenderContract, planted_data

from lmrec.data.schema import IdMap, InteractionData
from lmrec.errors import ConfigError, DataError
from lmrec.evaluation.task import EvalTask
from lmrec.models.base import BaseRecommender, FitOptions
from lmrec.models.baselines.sasrec import SASRecConfig, SASRecModule, SASRecRecommender
from lmrec.models.baselines.sasrec._recommender import (
    SequenceTask,
    _same_target_groups,
    augmented,
    encode_histories,
    training_sequences,
)
from lmrec.training import CHECKPOINT_FILE

SMALL = {
    "dim": 16,
    "n_layers": 1,
    "n_heads": 2,
    "max_len": 12,
    "dropout": 0.1,
    "trainer": {"epochs": 25, "batch_size": 16, "lr": 0.01, "patience": None, "seed": 1},
}


class TestSASRecContract(RecommenderContract):
    def make_model(self) -> BaseRecommender:
        return SASRecRecommender(SMALL)


def _network(norm_first: bool = True, max_len: int = 10) -> SASRecModule:
    torch.manual_seed(0)
    net = SASRecModule(
        n_items=20,
        dim=8,
        n_layers=2,
        n_heads=2,
        ffn_dim=16,
        max_len=max_len,
        dropout=0.3,
        norm_first=norm_first,
    )
    return net.eval()


@pytest.fixture(scope="module")
def fitted() -> SASRecRecommender:
    model = SASRecRecommender(SMALL)
    model.fit(planted_data()[0])
    return model


# -- the network ----------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [True, False])
def test_output_at_t_ignores_later_items(norm_first: bool) -> None:
    net = _network(norm_first)
    tokens = torch.tensor([[0, 0, 21, 3, 4, 5, 6, 7]])
    changed = tokens.clone()
    changed[0, 5:] = torch.tensor([9, 10, 11])
    with torch.no_grad():
        a, b = net(tokens), net(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@pytest.mark.parametrize("norm_first", [True, False])
def test_more_left_padding_changes_nothing(norm_first: bool) -> None:
    net = _network(norm_first)
    tokens = torch.tensor([[21, 3, 4, 5]])
    padded = torch.tensor([[0, 0, 0, 0, 21, 3, 4, 5]])
    with torch.no_grad():
        a, b = net(tokens), net(padded)
    torch.testing.assert_close(a, b[:, 4:], atol=1e-5, rtol=1e-5)


def test_start_state_does_not_depend_on_its_position() -> None:
    net = _network()
    with torch.no_grad():
        alone = net(torch.tensor([[0, 0, 21]]))
        leading = net(torch.tensor([[21, 3, 4, 5, 6, 7]]))
    torch.testing.assert_close(alone[:, -1], leading[:, 0], atol=1e-5, rtol=1e-5)


def test_shapes_and_length_limit() -> None:
    net = _network(max_len=6)
    with torch.no_grad():
        assert net(torch.randint(1, 21, (3, 6))).shape == (3, 6, 8)
    assert net.item_weights().shape == (20, 8)
    assert net.start_token == 21
    with pytest.raises(ValueError, match="max_len"):
        net(torch.ones(1, 7, dtype=torch.long))


def test_padding_embedding_stays_zero() -> None:
    assert torch.count_nonzero(_network().item_embedding.weight[0]) == 0


# -- sequences ------------------------------------------------------------------------------
def test_training_sequences_are_right_aligned_with_start_token() -> None:
    seqs = [np.array([4, 5, 6]), np.array([], dtype=np.int64), np.arange(10)]
    inputs, targets = training_sequences(seqs, max_len=5, start_token=99)
    assert inputs.tolist() == [[0, 0, 99, 5, 6], [5, 6, 7, 8, 9]]
    assert targets.tolist() == [[-100, -100, 4, 5, 6], [5, 6, 7, 8, 9]]


def test_encode_histories_matches_training_layout() -> None:
    tokens = encode_histories([np.array([1, 2]), np.arange(7), np.array([], dtype=int)], 5, 99)
    assert tokens.tolist() == [[0, 0, 99, 2, 3], [3, 4, 5, 6, 7], [0, 0, 0, 0, 99]]


# -- the recommender ------------------------------------------------------------------------
def test_score_is_batch_and_padding_invariant(fitted: SASRecRecommender) -> None:
    short, long_ = np.array([1, 2]), np.arange(11)
    alone = fitted.score(np.array([0]), [short])
    together = fitted.score(np.array([0, 1]), [short, long_])
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5, rtol=1e-5)


def test_score_reads_only_last_max_len_items(fitted: SASRecRecommender) -> None:
    history = np.arange(30) % N_ITEMS
    full = fitted.score(np.array([-1]), [history])
    tail = fitted.score(np.array([-1]), [history[-12:]])
    np.testing.assert_allclose(full, tail, atol=1e-6)


def test_users_argument_is_ignored(fitted: SASRecRecommender) -> None:
    h = [np.array([3, 4, 5])]
    np.testing.assert_array_equal(fitted.score(np.array([0]), h), fitted.score(np.array([7]), h))


def test_empty_history_scores_from_learned_start_state() -> None:
    # Every user starts with item 7: the start state must learn to put it first.
    rng = np.random.default_rng(0)
    seqs = [
        np.concatenate([[7], rng.choice(np.arange(8, 20), 5, replace=False)]) for _ in range(20)
    ]
    users = np.repeat(np.arange(20), 6)
    items = np.concatenate(seqs)
    train = InteractionData(
        IdMap([str(u) for u in range(20)], "user"),
        IdMap([str(i) for i in range(20)], "item"),
        users,
        items,
        np.tile(np.arange(6), 20),
    )
    model = SASRecRecommender(SMALL)
    model.fit(train)
    scores = model.score(np.array([-1]), [np.array([], dtype=np.int64)])[0]
    assert np.isfinite(scores).all()
    assert scores.argmax() == 7


def test_loss_decreases_on_planted_data() -> None:
    report = SASRecRecommender(SMALL).fit(planted_data()[0])
    losses = [row["loss"] for row in report.history]
    assert len(losses) == 25
    assert losses[-1] < 0.8 * losses[0]
    assert report.best_epoch is None


def test_early_stopping_on_validation_ndcg() -> None:
    train, held = planted_data()
    valid = EvalTask.from_interactions(train, held)
    config = {**SMALL, "trainer": {**SMALL["trainer"], "epochs": 40, "patience": 3}}
    report = SASRecRecommender(config).fit(train, valid)
    scored = [row["valid_ndcg@10"] for row in report.history]
    assert report.best_epoch is not None
    assert report.best_valid["ndcg@10"] == max(scored) > 0.3
    assert report.epochs < 40 or report.best_epoch >= 38


def test_same_seed_same_scores() -> None:
    train = planted_data()[0]
    config = {**SMALL, "trainer": {**SMALL["trainer"], "epochs": 3}}
    a, b = SASRecRecommender(config), SASRecRecommender(config)
    a.fit(train)
    b.fit(train)
    hist = [np.array([1, 2, 3])]
    np.testing.assert_array_equal(a.score(np.array([0]), hist), b.score(np.array([0]), hist))


def test_work_dir_gets_checkpoint_and_log(tmp_path: Path) -> None:
    config = {**SMALL, "trainer": {**SMALL["trainer"], "epochs": 2}}
    SASRecRecommender(config).fit(planted_data()[0], options=FitOptions(work_dir=tmp_path))
    assert (tmp_path / "checkpoints" / CHECKPOINT_FILE).exists()
    lines = (tmp_path / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_work_dir_resumes_only_the_same_model(tmp_path: Path) -> None:
    config = {**SMALL, "trainer": {**SMALL["trainer"], "epochs": 2}}
    train = planted_data()[0]
    first = SASRecRecommender(config)
    first.fit(train, options=FitOptions(work_dir=tmp_path))
    again = SASRecRecommender(config)
    report = again.fit(train, options=FitOptions(work_dir=tmp_path, resume=True))  # done already
    assert report.epochs == 2 and len(report.history) == 2
    hist = [np.array([1, 2, 3])]
    np.testing.assert_array_equal(
        again.score(np.array([0]), hist), first.score(np.array([0]), hist)
    )
    other = SASRecRecommender({**config, "dropout": 0.3})
    with pytest.raises(ConfigError, match="model"):
        other.fit(train, options=FitOptions(work_dir=tmp_path, resume=True))


def test_save_load_identical_scores(fitted: SASRecRecommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    loaded = SASRecRecommender.load(tmp_path / "m")
    seqs = planted_data()[0].sequences()
    hists = [seqs[u] for u in range(N_USERS)] + [np.array([], dtype=np.int64)]
    users = np.arange(len(hists))
    np.testing.assert_array_equal(loaded.score(users, hists), fitted.score(users, hists))
    assert loaded.config == fitted.config


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match="n_heads"):
        SASRecRecommender(dim=10, n_heads=3)
    with pytest.raises(ConfigError, match="dropout"):
        SASRecRecommender(dropout=1.5)
    assert SASRecConfig().type == "sasrec"


def test_no_training_interactions_is_a_data_error() -> None:
    users, items = IdMap(["a"], "user"), IdMap(["x", "y"], "item")
    empty = np.zeros(0, dtype=np.int64)
    with pytest.raises(DataError, match="at least one"):
        SASRecRecommender(SMALL).fit(InteractionData(users, items, empty, empty, empty))


def test_cosine_logits_are_scaled_cosines() -> None:
    net = _network()
    net.cosine, net.temperature = True, 0.1
    hidden = torch.randn(3, 8)
    logits = net.logits(hidden)
    expected = torch.nn.functional.cosine_similarity(
        hidden[:, None, :], net.item_weights()[None, :, :], dim=-1
    )
    torch.testing.assert_close(logits, expected / 0.1)
    assert float(logits.detach().abs().max()) <= 10.0 + 1e-5


def test_cosine_model_learns_and_reloads(tmp_path: Path) -> None:
    config = {**SMALL, "cosine": True, "temperature": 0.1}
    model = SASRecRecommender(config)
    report = model.fit(planted_data()[0])
    losses = [row["loss"] for row in report.history]
    assert losses[-1] < 0.8 * losses[0]
    model.save(tmp_path / "m")
    hist = [np.array([1, 2, 3])]
    np.testing.assert_array_equal(
        SASRecRecommender.load(tmp_path / "m").score(np.array([0]), hist),
        model.score(np.array([0]), hist),
    )


def test_untied_output_embeddings_score_and_reload(tmp_path: Path) -> None:
    model = SASRecRecommender({**SMALL, "tie_output": False})
    report = model.fit(planted_data()[0])
    assert report.history[-1]["loss"] < 0.8 * report.history[0]["loss"]
    net = model._require(model.network)
    assert net.output_embedding is not None
    assert not torch.equal(net.item_weights(), net.item_embedding.weight[1 : net.n_items + 1])
    hidden = torch.randn(2, SMALL["dim"])
    torch.testing.assert_close(net.logits(hidden), hidden @ net.output_embedding.weight[1:].T)
    model.save(tmp_path / "m")
    hist = [np.array([1, 2, 3]), np.array([], dtype=np.int64)]
    np.testing.assert_array_equal(
        SASRecRecommender.load(tmp_path / "m").score(np.array([0, 1]), hist),
        model.score(np.array([0, 1]), hist),
    )
    tied = SASRecRecommender(SMALL)
    tied.fit(planted_data()[0])
    assert tied._require(tied.network).output_embedding is None


def test_label_smoothing_raises_the_loss_of_a_confident_model(
    fitted: SASRecRecommender,
) -> None:
    network = fitted.network
    assert network is not None
    inputs, targets = training_sequences(
        planted_data()[0].sequences(), SMALL["max_len"], network.start_token
    )
    network.eval()
    with torch.no_grad():
        batch = (torch.from_numpy(inputs), torch.from_numpy(targets))
        plain = SequenceTask(network, inputs, targets, 16).loss(batch)
        smooth = SequenceTask(network, inputs, targets, 16, label_smoothing=0.5).loss(batch)
    # The fitted model is confident on planted data; smoothing also charges it for the
    # probability it does not spread over the other items.
    assert float(smooth) > float(plain) + 0.1
    with pytest.raises(ConfigError, match="label_smoothing"):
        SASRecRecommender(label_smoothing=1.0)


def test_same_target_groups_and_partners() -> None:
    groups = _same_target_groups(np.array([3, 1, 3, 2, 1, 3]))
    assert [g.tolist() for g in groups] == [[0, 2, 5], [1, 4], [0, 2, 5], [3], [1, 4], [0, 2, 5]]
    network = _network()
    seqs = [np.array([1, 2, 3]), np.array([4, 3]), np.array([5, 6, 3]), np.array([0, 1])]
    inputs, targets = training_sequences(seqs, 10, network.start_token)
    task = SequenceTask(
        network, inputs, targets, 4, contrastive="same_target", contrastive_weight=0.1
    )
    picks = task._pick_partners(torch.arange(4), torch.Generator().manual_seed(0))
    # a row ending in item 3 gets another such row; the row ending in 1 keeps itself
    assert picks[3] == 3 and all(int(picks[j]) in {0, 1, 2} - {j} for j in range(3))


@pytest.mark.parametrize("mode", ["dropout", "same_target"])
def test_contrastive_regulariser_adds_a_finite_loss_and_trains(mode: str) -> None:
    config = SASRecConfig(**{**SMALL, "contrastive": mode, "contrastive_weight": 0.5})
    config.trainer.epochs = 3
    model = SASRecRecommender(config)
    report = model.fit(planted_data()[0])
    assert all(np.isfinite(row["loss"]) for row in report.history)
    network = model.network
    assert network is not None
    inputs, targets = training_sequences(
        planted_data()[0].sequences(), SMALL["max_len"], network.start_token
    )
    first = torch.randn(6, 8)
    task = SequenceTask(network, inputs, targets, 16, contrastive=mode, contrastive_weight=1.0)
    # identical views and distinct targets: the matching pair wins, the loss is small
    aligned = task.contrastive_loss(first * 10, first * 10, torch.arange(6))
    shuffled = task.contrastive_loss(first * 10, first.roll(1, 0) * 10, torch.arange(6))
    assert float(aligned) < float(shuffled)
    # rows with the same last target are not negatives of each other
    same = task.contrastive_loss(first, first, torch.zeros(6, dtype=torch.long))
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="contrastive"):
        SequenceTask(network, inputs, targets, 16, contrastive="nope")


def test_augmented_sequences_add_a_reversed_or_shuffled_copy() -> None:
    seqs = [np.array([1, 2, 3]), np.array([4]), np.array([5, 6])]
    assert [s.tolist() for s in augmented(seqs, "none", 0)] == [[1, 2, 3], [4], [5, 6]]
    rev = augmented(seqs, "reverse", 0)
    assert [s.tolist() for s in rev] == [[1, 2, 3], [4], [5, 6], [3, 2, 1], [6, 5]]
    shuffled = augmented(seqs, "shuffle", 3)
    assert len(shuffled) == 5 and [sorted(s.tolist()) for s in shuffled[3:]] == [[1, 2, 3], [5, 6]]
    assert [s.tolist() for s in augmented(seqs, "shuffle", 3)] == [s.tolist() for s in shuffled]
    with pytest.raises(ValueError, match="augmentation"):
        augmented(seqs, "sideways", 0)
    config = SASRecConfig(**{**SMALL, "augment": "reverse"})
    config.trainer.epochs = 2
    model = SASRecRecommender(config)
    report = model.fit(planted_data()[0])
    assert len(report.history) == 2 and np.isfinite(report.history[-1]["loss"])


@pytest.mark.parametrize("norm_first", [True, False])
def test_last_only_gives_the_last_slot_of_the_full_pass(norm_first: bool) -> None:
    net = _network(norm_first=norm_first)
    tokens = torch.from_numpy(encode_histories([np.array([3, 1, 4, 1, 5]), np.array([9])], 10, 21))
    full = net(tokens)[:, -1]
    last = net(tokens, last_only=True)
    assert last.shape == (2, 1, 8)
    torch.testing.assert_close(last[:, -1], full, rtol=1e-5, atol=1e-6)


def test_future_window_adds_the_later_items_losses_by_hand() -> None:
    network = _network()
    seqs = [np.array([1, 2, 3, 4]), np.array([5, 6])]
    inputs, targets = training_sequences(seqs, 10, network.start_token)
    batch = (torch.from_numpy(inputs), torch.from_numpy(targets))
    with torch.no_grad():
        plain = SequenceTask(network, inputs, targets, 4).loss(batch)
        dense = SequenceTask(network, inputs, targets, 4, future_window=3, future_decay=0.5)
        got = dense.loss(batch)
        assert torch.allclose(
            SequenceTask(network, inputs, targets, 4, future_window=1).loss(batch), plain
        )
        # by hand: slot states of each row; the j-th next item of the slot whose input is
        # token x_t is the (t + j)-th item of [start] + sequence
        log_probs = torch.log_softmax(network.logits(network(batch[0])), dim=-1)
        terms: dict[int, list[torch.Tensor]] = {1: [], 2: [], 3: []}
        for row, seq in enumerate(seqs):
            n = len(seq)
            for t in range(n):  # slot of input position t (0 = the start token)
                slot = 10 - n + t
                for j in (1, 2, 3):
                    if t + j - 1 < n:
                        terms[j].append(-log_probs[row, slot, int(seq[t + j - 1])])
        want = sum(0.5 ** (j - 1) * torch.stack(terms[j]).mean() for j in (1, 2, 3)) / 1.75
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ConfigError, match="future_window"):
        SASRecRecommender(future_window=0)


def test_cooccurrence_embeddings_group_items_that_share_histories() -> None:
    from lmrec.models.baselines.sasrec._init import cooccurrence_embeddings

    rng = np.random.default_rng(0)
    # items 0-9 are bought together, 10-19 together; item 20 never shares a history
    seqs = [rng.choice(10, 4, replace=False) + 10 * (u % 2) for u in range(200)] + [np.array([20])]
    vectors, has = cooccurrence_embeddings(seqs, 21, 4, 0.02, seed=0)
    assert vectors.shape == (21, 4) and vectors.dtype == np.float32
    assert has[:20].all() and not has[20] and (vectors[20] == 0).all()
    assert abs(float(vectors[has].std()) - 0.02) < 1e-6
    unit = vectors[:20] / np.linalg.norm(vectors[:20], axis=1, keepdims=True)
    cos = unit @ unit.T
    same = (cos[:10, :10].sum() - 10) / 90
    assert same > 0.5 and cos[:10, 10:].mean() < same - 0.5


def test_init_embeddings_cooccurrence_starts_from_them() -> None:
    model = SASRecRecommender(SMALL, init_embeddings="cooccurrence")
    model.config = model.config.model_copy(
        update={"trainer": model.config.trainer.model_copy(update={"epochs": 1})}
    )
    model.fit(planted_data()[0])
    assert model.network is not None
    with pytest.raises(ConfigError, match="init_embeddings"):
        SASRecRecommender(init_embeddings="word2vec")


def test_mixture_of_softmaxes_by_hand_trains_and_reloads(tmp_path: Path) -> None:
    model = SASRecRecommender({**SMALL, "mixture": 3})
    report = model.fit(planted_data()[0])
    assert report.history[-1]["loss"] < 0.8 * report.history[0]["loss"]
    net = model._require(model.network)
    assert net.mixture_contexts is not None and net.mixture_gate is not None
    hidden = torch.randn(4, SMALL["dim"])
    with torch.no_grad():
        got = net.logits(hidden)
        contexts = net.mixture_contexts(hidden).reshape(4, 3, SMALL["dim"])
        gate = torch.softmax(net.mixture_gate(hidden), dim=-1)
        probs = torch.zeros(4, net.n_items)
        for j in range(3):
            context = hidden + torch.tanh(contexts[:, j])
            probs += gate[:, j : j + 1] * torch.softmax(context @ net.item_weights().T, dim=-1)
    torch.testing.assert_close(got, probs.log(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.exp().sum(dim=-1), torch.ones(4))  # log-probabilities
    # The top-n shortcut (one dot product) steps aside; the full sort gives the same lists.
    model.fast_top_min_items = 0
    hist = [np.array([1, 2, 3]), np.array([22, 23]), np.array([], dtype=np.int64)]
    scores = model.score(np.arange(3), hist)
    for (items, _), row in zip(model.top_items(np.arange(3), hist, 5), scores, strict=True):
        np.testing.assert_array_equal(items, np.argsort(-row, kind="stable")[:5])
    assert scores[0, :20].mean() > scores[0, 20:].mean()  # the planted groups are learned
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(
        SASRecRecommender.load(tmp_path / "m").score(np.arange(3), hist), scores
    )


def test_mixture_of_one_is_the_plain_model() -> None:
    plain = SASRecModule(N_ITEMS, 16, 1, 2, 16, 12, 0.0, True)
    torch.manual_seed(0)
    assert plain.mixture_contexts is None and plain.mixture == 1
    with pytest.raises(ConfigError, match="mixture"):
        SASRecRecommender({**SMALL, "mixture": 0})
