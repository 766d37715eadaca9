"""The batched evaluator: hand examples, batching invariance, slices and input checks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from lmrec.evaluation import EvalTask, Evaluator, history_length_bucket


class TableModel:
    """A fake model that looks its scores up in a fixed users x items table."""

    name = "table"

    def __init__(self, table: np.ndarray) -> None:
        self.table = table
        self.batch_sizes: list[int] = []

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        assert len(users) == len(histories)
        self.batch_sizes.append(len(users))
        return self.table[users].astype(np.float32)


def arr(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def hand_task() -> tuple[TableModel, EvalTask]:
    table = np.array(
        [
            [0.9, 0.5, 0.7, 0.5, 0.1],  # history {0}: target 3 at rank 2 (tie lost to item 1)
            [0.1, 0.2, 0.3, 0.4, 0.5],  # no history: target 4 at rank 0
        ]
    )
    task = EvalTask(users=arr(0, 1), histories=[arr(0), arr()], targets=[arr(3), arr(4)], n_items=5)
    return TableModel(table), task


def test_evaluate_hand_example() -> None:
    model, task = hand_task()
    result = Evaluator(ks=(1, 5), list_k=2).evaluate(model, task)
    np.testing.assert_allclose(result.per_user["ndcg@5"], [1 / math.log2(4), 1.0])
    m = result.metrics
    assert m["ndcg@5"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["hit@1"] == pytest.approx(0.5)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["mrr@5"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["n_users"] == 2.0
    # Top-2 lists: user 0 -> [2, 1] (history item 0 hidden; 1 beats 3 on the tie by index),
    # user 1 -> [4, 3]. Four of five items covered; counts [0, 1, 1, 1, 1].
    assert m["coverage@2"] == pytest.approx(4 / 5)
    assert m["gini@2"] == pytest.approx((-4 * 0 + -2 * 1 + 0 + 2 + 4) / (5 * 4))
    assert "ild@2" not in m
    assert "novelty@2" not in m
    assert set(m) == {
        *(f"{name}@{k}" for name in ("ndcg", "recall", "mrr", "hit") for k in (1, 5)),
        "coverage@2",
        "gini@2",
        "n_users",
    }


def test_standard_errors_of_the_hand_example() -> None:
    model, task = hand_task()
    result = Evaluator(ks=(1, 5), list_k=2).evaluate(model, task)
    # ndcg@5 per user: 0.5 and 1.0; mean 0.75, deviations ±0.25,
    # sample variance 2 * 0.0625 / 1 = 0.125, se = sqrt(0.125 / 2) = 0.25
    assert result.standard_errors["ndcg@5"] == pytest.approx(0.25)
    assert result.standard_errors["recall@5"] == 0.0  # both users hit
    assert set(result.standard_errors) == set(result.per_user)
    one = EvalTask(users=arr(1), histories=[arr()], targets=[arr(4)], n_items=5)
    assert Evaluator(ks=(5,)).evaluate(model, one).standard_errors["ndcg@5"] == 0.0


def test_list_metrics_appear_with_their_inputs() -> None:
    model, task = hand_task()
    vectors = np.eye(5)
    popularity = np.array([4, 1, 2, 0, 3])
    result = Evaluator(
        ks=(5,), list_k=2, item_vectors=vectors, item_popularity=popularity, popularity_users=4
    ).evaluate(model, task)
    m = result.metrics
    assert m["ild@2"] == pytest.approx(1.0)  # one-hot vectors are orthogonal
    # Lists [2, 1] and [4, 3]: info -log2(pop/4) = [0, 2, 1, 2 (unseen), 0.415...].
    info = {1: 2.0, 2: 1.0, 3: 2.0, 4: -math.log2(3 / 4)}
    assert m["novelty@2"] == pytest.approx(((info[2] + info[1]) / 2 + (info[4] + info[3]) / 2) / 2)
    # Head = the most popular item (0); nothing recommended is in it.
    assert m["long_tail@2"] == 1.0


def random_task(seed: int, n_users: int = 37, n_items: int = 50) -> tuple[TableModel, EvalTask]:
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float64)  # many ties
    table[rng.random(table.shape) < 0.05] = np.nan
    histories = [
        rng.choice(n_items, size=rng.integers(0, 25), replace=False) for _ in range(n_users)
    ]
    targets = [rng.choice(n_items, size=rng.integers(1, 4), replace=False) for _ in range(n_users)]
    users = rng.permutation(n_users)
    task = EvalTask(
        users=users,
        histories=[histories[u] for u in users],
        targets=[targets[u] for u in users],
        n_items=n_items,
    )
    return TableModel(table), task


@pytest.mark.parametrize("seed", [0, 1])
def test_batch_size_does_not_change_any_result(seed: int) -> None:
    model, task = random_task(seed)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(task.n_items, 8))
    popularity = rng.integers(0, 30, size=task.n_items)
    results = [
        Evaluator(
            ks=(1, 5, 10), batch_size=b, item_vectors=vectors, item_popularity=popularity
        ).evaluate(model, task)
        for b in (1, 3, 1000)
    ]
    for other in results[1:]:
        assert other.metrics == results[0].metrics
        assert other.slices == results[0].slices
        for key, values in results[0].per_user.items():
            np.testing.assert_array_equal(other.per_user[key], values)


def test_users_are_scored_in_batches_of_at_most_batch_size() -> None:
    model, task = random_task(0, n_users=7)
    Evaluator(batch_size=3).evaluate(model, task)
    assert model.batch_sizes == [3, 3, 1]


def test_history_length_slice() -> None:
    n_items = 80
    histories = [arr(), arr(1, 2, 3), np.arange(5, 12), np.arange(10, 70), arr(4)]
    task = EvalTask(users=np.arange(5), histories=histories, targets=[arr(0)] * 5, n_items=n_items)
    table = np.zeros((5, n_items))
    table[[0, 1, 3], 0] = 1.0  # users 0, 1, 3 rank the target first; 2 and 4 last
    result = Evaluator(ks=(10,)).evaluate(TableModel(table), task)
    buckets = result.slices["history_length"]
    assert list(buckets) == ["0", "1-4", "5-9", "50+"]
    assert buckets["1-4"]["n_users"] == 2.0
    assert buckets["1-4"]["ndcg@10"] == pytest.approx(0.5)
    assert buckets["0"]["hit@10"] == 1.0
    assert buckets["5-9"]["hit@10"] == 0.0
    assert buckets["50+"]["recall@10"] == 1.0
    assert sum(b["n_users"] for b in buckets.values()) == 5
    assert [history_length_bucket(0, np.zeros(n)) for n in (0, 4, 9, 10, 49, 50)] == [
        "0",
        "1-4",
        "5-9",
        "10-19",
        "20-49",
        "50+",
    ]


def test_custom_slice_receives_user_index_and_history() -> None:
    model, task = random_task(3, n_users=10)
    seen: list[tuple[int, int]] = []

    def parity(user: int, history: np.ndarray) -> str:
        seen.append((user, len(history)))
        return "even" if user % 2 == 0 else "odd"

    result = Evaluator(ks=(5,), slices={"parity": parity}).evaluate(model, task)
    assert set(result.slices) == {"history_length", "parity"}
    assert seen == [(int(u), len(h)) for u, h in zip(task.users, task.histories, strict=True)]
    even = task.users % 2 == 0
    parity_slice = result.slices["parity"]
    assert parity_slice["even"]["n_users"] == float(even.sum())
    assert parity_slice["odd"]["ndcg@5"] == pytest.approx(result.per_user["ndcg@5"][~even].mean())


def test_top_lists_skip_history_items_and_leave_empty_slots() -> None:
    # Three items, two in the history: the list of 3 holds one item and two empty slots.
    task = EvalTask(users=arr(0), histories=[arr(0, 1)], targets=[arr(2)], n_items=3)
    result = Evaluator(ks=(1,), list_k=3).evaluate(TableModel(np.array([[9.0, 8.0, 1.0]])), task)
    assert result.metrics["coverage@3"] == pytest.approx(1 / 3)
    assert result.metrics["ndcg@1"] == 1.0


def test_with_prefix() -> None:
    model, task = hand_task()
    result = Evaluator(ks=(5,)).evaluate(model, task)
    flat = result.with_prefix("valid")
    assert flat["valid_ndcg@5"] == result.metrics["ndcg@5"]
    assert set(flat) == {f"valid_{k}" for k in result.metrics}
    assert result.with_prefix("test_") == {f"test_{k}": v for k, v in result.metrics.items()}
    assert result.with_prefix("") == result.metrics


def test_wrong_score_shape_names_the_model_and_shapes() -> None:
    model, task = hand_task()
    model.table = model.table[:, :4]
    with pytest.raises(ValueError, match=r"'table'.*\(2, 4\).*\(2, 5\)"):
        Evaluator().evaluate(model, task)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ks": ()}, "ks"),
        ({"ks": (0, 5)}, "ks"),
        ({"batch_size": 0}, "batch_size"),
        ({"list_k": 0}, "list_k"),
        ({"item_vectors": np.zeros(5)}, "item_vectors"),
        ({"item_popularity": np.zeros((5, 2))}, "item_popularity"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Evaluator(**kwargs)  # type: ignore[arg-type]


def test_item_inputs_must_match_the_catalog_and_task_must_not_be_empty() -> None:
    model, task = hand_task()
    with pytest.raises(ValueError, match="item_vectors has 4 rows"):
        Evaluator(item_vectors=np.zeros((4, 2))).evaluate(model, task)
    with pytest.raises(ValueError, match="item_popularity has 6"):
        Evaluator(item_popularity=np.zeros(6)).evaluate(model, task)
    empty = EvalTask(users=arr(), histories=[], targets=[], n_items=5)
    with pytest.raises(ValueError, match="no users"):
        Evaluator().evaluate(model, empty)


def test_progress_bar_does_not_change_results(capsys: pytest.CaptureFixture[str]) -> None:
    model, task = hand_task()
    quiet = Evaluator(ks=(5,)).evaluate(model, task)
    loud = Evaluator(ks=(5,), show_progress=True).evaluate(model, task)
    assert loud.metrics == quiet.metrics
    assert "eval table" in capsys.readouterr().err


@pytest.mark.parametrize("k", [1, 4, 9, 12])
def test_top_lists_order_by_score_then_item_index(k: int) -> None:
    from lmrec.evaluation.evaluator import _top_k

    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, size=(20, 10)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.3] = -np.inf
    expected = np.array([np.lexsort((np.arange(10), -row))[:k] for row in scores])
    expected[np.take_along_axis(scores, expected, axis=1) == -np.inf] = -1
    np.testing.assert_array_equal(_top_k(scores, k), expected)
