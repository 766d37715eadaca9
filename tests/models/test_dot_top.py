"""Exact top-n of inner-product scores without a full sort: the same answer as sorting rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmrec.data.schema import IdMap
from lmrec.models import dot_top
from lmrec.models.base import BaseRecommender
from lmrec.models.baselines.sasrec import SASRecRecommender
from lmrec.models.ctr._rerank import top_candidates
from lmrec.models.dot_top import DotTopTable, error_bound


def full_sort(
    table: DotTopTable, queries: torch.Tensor, n: int, masks: list[np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = (queries @ table.items.T / table.divisor).numpy()
    out = []
    for row, m in zip(rows, masks, strict=True):
        ids = top_candidates(row, m, n)
        out.append((ids, row[ids]))
    return out


def assert_same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (gi, gs), (wi, ws) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_allclose(gs, ws, rtol=1e-5, atol=1e-6)
        assert gi.dtype == np.int64 and gs.dtype == np.float32


@pytest.mark.parametrize("coarse", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("divisor", [1.0, 0.07])
def test_matches_the_full_sort(coarse: torch.dtype, divisor: float) -> None:
    gen = torch.Generator().manual_seed(0)
    items = torch.randn(6000, 24, generator=gen)
    queries = torch.randn(9, 24, generator=gen) * 3
    table = DotTopTable(items, divisor, coarse=coarse)
    rng = np.random.default_rng(0)
    masks = [rng.choice(6000, size=int(rng.integers(0, 50)), replace=False) for _ in range(9)]
    for n in (1, 10, 40):
        assert table.usable_for(n)
        assert_same(table.top(queries, n, masks), full_sort(table, queries, n, masks))


def test_the_candidates_are_few() -> None:
    """The point of the three passes: far fewer exact scores than items."""
    gen = torch.Generator().manual_seed(1)
    table = DotTopTable(torch.randn(50_000, 32, generator=gen))
    queries = torch.randn(4, 32, generator=gen)
    coarse = (queries.to(table.coarse_dtype) @ table.coarse.T).float()[:, : table.n_items]
    eps = table.bound * queries.norm(dim=1) * table.max_norm
    tenth = torch.topk(coarse, 10, dim=1).values[:, -1]
    assert int((coarse >= (tenth - 2 * eps)[:, None]).sum(dim=1).max()) < 500
    assert error_bound(32, torch.bfloat16) < 0.013


def test_ties_go_to_the_lower_index_and_masks_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dot_top, "MIN_ROWS", 1)  # one query through the block pass
    items = torch.randn(3000, 8, generator=torch.Generator().manual_seed(2)) * 0.1
    best = torch.ones(8)
    for i in (2999, 17, 1500, 640):  # four items with the best score, one masked
        items[i] = best
    table = DotTopTable(items)
    got = table.top(best[None], 5, [np.array([17])])[0][0]
    assert list(got[:3]) == [640, 1500, 2999]
    assert_same(
        table.top(best[None], 5, [np.array([17])]),
        full_sort(table, best[None], 5, [np.array([17])]),
    )


def test_one_or_two_queries_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    table = DotTopTable(torch.randn(2000, 6, generator=torch.Generator().manual_seed(4)))
    calls: list[int] = []
    plain = table._plain
    monkeypatch.setattr(table, "_plain", lambda q, n, m: calls.append(len(q)) or plain(q, n, m))
    queries = torch.randn(3, 6)
    none = [np.zeros(0, np.int64)] * 3
    assert_same(table.top(queries[:2], 5, none[:2]), full_sort(table, queries[:2], 5, none[:2]))
    assert_same(table.top(queries, 5, none), full_sort(table, queries, 5, none))
    assert calls == [2]


def test_non_finite_queries_and_masked_catalogs_take_the_plain_path() -> None:
    items = torch.randn(2000, 6, generator=torch.Generator().manual_seed(3))
    table = DotTopTable(items)
    queries = torch.randn(3, 6)
    queries[1, 2] = float("nan")
    masks = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.arange(1995)]  # 5 items left
    got = table.top(queries, 10, masks)
    assert_same(got, full_sort(table, queries, 10, masks))
    assert len(got[1][0]) == 0 and len(got[2][0]) == 5
    assert table.top(queries[:0], 10, []) == []


@settings(max_examples=60, deadline=None)
@given(
    n_items=st.integers(200, 3000),
    dim=st.integers(1, 12),
    n=st.integers(1, 20),
    levels=st.integers(2, 50),
    seed=st.integers(0, 2**16),
    block=st.sampled_from([None, 3, 5, 7, 16]),
)
def test_property_equals_the_full_sort(
    n_items: int, dim: int, n: int, levels: int, seed: int, block: int | None
) -> None:
    """Coarse integer-valued vectors make many ties; the answer must still be the sort's."""
    rng = np.random.default_rng(seed)
    items = torch.from_numpy(
        rng.integers(-levels, levels, (n_items, dim)).astype(np.float32) / levels
    )
    queries = torch.from_numpy(rng.normal(size=(3, dim)).astype(np.float32))
    table = DotTopTable(items, block=block)
    masks = [rng.choice(n_items, size=int(rng.integers(0, 30)), replace=False) for _ in range(3)]
    assert_same(table.top(queries, n, masks), full_sort(table, queries, n, masks))


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 12, 64])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_block_maxima_equal_torch_amax(block: int, dtype: torch.dtype) -> None:
    scores = torch.randn(block * 9, 4, generator=torch.Generator().manual_seed(block)).to(dtype)
    scores[block + 1, 2] = -torch.inf
    want = scores.view(-1, block, 4).amax(dim=1)
    assert torch.equal(dot_top._block_maxima(scores, block), want)


def _random_sasrec(n_items: int, **config: object) -> SASRecRecommender:
    model = SASRecRecommender({"dim": 16, "n_layers": 1, "n_heads": 2, "max_len": 8, **config})
    torch.manual_seed(0)
    model.item_map = IdMap([f"i{i}" for i in range(n_items)], "item")
    model.user_map = IdMap(["u0", "u1", "u2"], "user")
    rng = np.random.default_rng(0)
    model.histories = [rng.choice(n_items, size=s, replace=False) for s in (5, 12, 0)]
    network = model._build_network(n_items)
    with torch.no_grad():  # spread the output embeddings so that scores differ visibly
        network.item_embedding.weight.normal_(0, 1)
        network.output_table.normal_(0, 1)  # the same table unless tie_output is false
    model.network = network.eval()
    return model


@pytest.mark.parametrize(
    "config", [{}, {"cosine": True, "temperature": 0.1}, {"tie_output": False}]
)
def test_sasrec_top_items_equal_the_sorted_scores(config: dict) -> None:
    model = _random_sasrec(4000, **config)
    model.fast_top_min_items = 0
    histories = model._require(model.histories)
    users = np.arange(3)
    masks = [h for h in histories]
    for n in (10, 50):
        fast = model.top_items(users, histories, n, masks)
        assert model._table_cache is not None  # the fast path ran
        assert_same(fast, BaseRecommender.top_items(model, users, histories, n, masks))
    # a weight changed in place (a training step) is seen at once
    best = int(model.top_items(users, histories, 3, masks)[0][0][0])
    with torch.no_grad():
        model._require(model.network).output_table[1 + best] *= -1
    top = model.top_items(users, histories, 3, masks)
    assert best not in top[0][0]
    assert_same(top, BaseRecommender.top_items(model, users, histories, 3, masks))


def test_pipeline_recommends_the_same_from_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmrec.pipeline import Pipeline

    monkeypatch.setattr(dot_top, "MIN_ROWS", 1)  # recommend asks for one user at a time

    model = _random_sasrec(4000)
    vectors = np.random.default_rng(1).normal(size=(4000, 4))
    pipeline = Pipeline(model, catalog={f"i{i}": {"title": f"T{i}"} for i in range(4000)})
    pipeline.item_vectors = lambda: vectors  # type: ignore[method-assign]
    exclude = [f"i{i}" for i in range(0, 4000, 7)]

    def lists() -> list[list[tuple[str, float | None]]]:
        out = []
        for kwargs in ({"k": 10}, {"k": 5, "diversity": 0.5}, {"k": 8, "exclude": exclude}):
            for user in ("u0", "u1"):
                recs = pipeline.recommend(user, **kwargs)  # type: ignore[arg-type]
                out.append([(r.item_id, r.retrieval_score) for r in recs])
        return out

    model.fast_top_min_items = 10**9
    plain = lists()
    model.fast_top_min_items = 0
    fast = lists()
    assert model._table_cache is not None
    for a, b in zip(plain, fast, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-5)
