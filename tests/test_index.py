"""Tests of lmrec.index: exact and HNSW search, exclusions, removal, persistence, bad input."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from lmrec.errors import ConfigError, DataError, ModelFileError, UnknownIdError
from lmrec.index import IndexConfig, VectorIndex, index_config

faiss = pytest.importorskip("faiss")


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    faiss.omp_set_num_threads(1)


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _ids(n: int) -> list[str]:
    return [f"i{j}" for j in range(n)]


def _numpy_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    scores = queries.astype(np.float64) @ items.astype(np.float64).T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def test_exact_search_matches_numpy_argsort() -> None:
    items, queries = _vectors(500), _vectors(30, seed=1)
    index = VectorIndex.build(_ids(500), items)
    assert index.kind == "flat"
    results = index.search(queries, k=10)
    expected = _numpy_top(items, queries, 10)
    for hits, want, q in zip(results, expected, queries, strict=True):
        assert hits.ids == [f"i{j}" for j in want]
        np.testing.assert_allclose(hits.scores, items[want] @ q, rtol=1e-5, atol=1e-5)


def test_cosine_metric_normalises_items_and_queries() -> None:
    items = _vectors(200) * np.linspace(0.1, 10, 200, dtype=np.float32)[:, None]
    query = _vectors(1, seed=2)[0] * 7
    index = VectorIndex.build(_ids(200), items, metric="cosine")
    hits = index.search_one(query, k=5)
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    want = _numpy_top(unit, query[None], 5)[0]
    assert hits.ids == [f"i{j}" for j in want]
    assert np.all(hits.scores <= 1.0 + 1e-5)


def test_hnsw_recall_at_10_is_at_least_0_9() -> None:
    items, queries = _vectors(3000, dim=32), _vectors(100, dim=32, seed=3)
    index = VectorIndex.build(_ids(3000), items, hnsw_threshold=1000, hnsw_m=16, ef_search=64)
    assert index.kind == "hnsw"
    expected = _numpy_top(items, queries, 10)
    found = index.search(queries, k=10)
    recall = np.mean(
        [
            len({f"i{j}" for j in want} & set(hits.ids)) / 10
            for hits, want in zip(found, expected, strict=True)
        ]
    )
    assert recall >= 0.9


def test_exclude_leaves_items_out() -> None:
    items = _vectors(300)
    index = VectorIndex.build(_ids(300), items)
    query = items[7]
    plain = index.search_one(query, k=5)
    banned = set(plain.ids[:3])
    hits = index.search_one(query, k=5, exclude=banned | {"not-an-item"})
    assert not banned & set(hits.ids)
    assert hits.ids[:2] == plain.ids[3:5]
    assert len(hits) == 5


@pytest.mark.parametrize("threshold", [10_000, 0])
def test_remove_and_update(threshold: int) -> None:
    items = _vectors(400)
    index = VectorIndex.build(_ids(400), items, hnsw_threshold=threshold, compact_ratio=None)
    query = items[11]
    assert index.search_one(query, k=1).ids == ["i11"]
    assert index.remove(["i11"]) == 1
    assert "i11" not in index and len(index) == 399
    assert "i11" not in index.search_one(query, k=50).ids
    with pytest.raises(UnknownIdError, match="i11"):
        index.remove(["i11"])
    assert index.remove(["i11"], missing_ok=True) == 0
    # Re-adding an id replaces its vector: the old one no longer matches.
    index.add(["i12"], -items[12][None])
    assert len(index) == 399
    assert index.search_one(-items[12], k=1).ids == ["i12"]
    assert "i12" not in index.search_one(items[12], k=20).ids
    index.add(["new"], items[11][None])
    assert index.search_one(query, k=1).ids == ["new"]


def test_compaction_drops_dead_rows_and_keeps_results() -> None:
    items = _vectors(100)
    index = VectorIndex.build(_ids(100), items, compact_ratio=0.2)
    index.remove([f"i{j}" for j in range(15)])
    assert index._index.ntotal == 100  # below the ratio: rows stay, marked dead
    index.remove([f"i{j}" for j in range(15, 30)])
    assert index._index.ntotal == 70
    expected = _numpy_top(items[30:], items[40:41], 10)[0] + 30
    assert index.search_one(items[40], k=10).ids == [f"i{j}" for j in expected]


def test_grows_from_flat_to_hnsw_past_the_threshold() -> None:
    index = VectorIndex(16, hnsw_threshold=100)
    index.add(_ids(50), _vectors(50))
    assert index.kind == "flat"
    index.add([f"x{j}" for j in range(60)], _vectors(60, seed=4))
    assert index.kind == "hnsw" and len(index) == 110


def test_similar_items_excludes_the_item_itself() -> None:
    base = _vectors(50)
    items = np.concatenate([base, base[:1] + 0.01])
    index = VectorIndex.build([*_ids(50), "twin"], items, metric="cosine")
    hits = index.similar_items("i0", k=3)
    assert hits.ids[0] == "twin" and "i0" not in hits.ids
    assert hits.scores[0] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(UnknownIdError, match="nope"):
        index.similar_items("nope", k=3)


def test_fewer_results_when_the_catalog_is_small() -> None:
    index = VectorIndex.build(_ids(4), _vectors(4))
    hits = index.search_one(_vectors(1)[0], k=10, exclude={"i0"})
    assert sorted(hits.ids) == ["i1", "i2", "i3"]
    empty = VectorIndex(16)
    assert empty.search_one(_vectors(1)[0], k=3).ids == []


@pytest.mark.parametrize("threshold", [10_000, 0])
def test_save_load_round_trip(tmp_path: Path, threshold: int) -> None:
    items = _vectors(300)
    index = VectorIndex.build(_ids(300), items, hnsw_threshold=threshold, compact_ratio=None)
    index.remove(["i5"])
    queries = _vectors(5, seed=9)
    before = index.search(queries, k=10)
    index.save(tmp_path / "idx")
    index.save(tmp_path / "idx")  # a second save replaces the first and leaves no stale files
    assert len(list((tmp_path / "idx").iterdir())) == 3
    loaded = VectorIndex.load(tmp_path / "idx")
    assert loaded.kind == index.kind and len(loaded) == 299 and "i5" not in loaded
    assert loaded.config == index.config
    after = loaded.search(queries, k=10)
    for a, b in zip(before, after, strict=True):
        assert a.ids == b.ids
        np.testing.assert_allclose(a.scores, b.scores)
    assert VectorIndex.load(tmp_path / "idx", ef_search=200).config.ef_search == 200


def test_load_rejects_missing_or_inconsistent_directories(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no vector index"):
        VectorIndex.load(tmp_path)
    VectorIndex.build(_ids(10), _vectors(10)).save(tmp_path)
    manifest = json.loads((tmp_path / "index.json").read_text())
    (tmp_path / manifest["files"]["ids"]).write_text(json.dumps(_ids(9)))
    with pytest.raises(ModelFileError, match="10 16-d"):
        VectorIndex.load(tmp_path)


def test_bad_input_raises_errors_naming_the_problem() -> None:
    index = VectorIndex.build(_ids(20), _vectors(20))
    with pytest.raises(DataError, match="dimension is 8"):
        index.search(np.zeros((2, 8), dtype=np.float32), k=3)
    bad = _vectors(3)
    bad[1, 4] = np.nan
    with pytest.raises(DataError, match="row 1 holds NaN"):
        index.search(bad, k=3)
    for k in (0, -1):
        with pytest.raises(ConfigError, match="k must be"):
            index.search(_vectors(1), k=k)
    with pytest.raises(DataError, match="'x1' holds NaN"):
        index.add(["x0", "x1"], np.array([[0.0] * 16, [np.inf] * 16]))
    assert "x0" not in index
    with pytest.raises(DataError, match=r"shape \(n, 16\)"):
        index.add(["x0"], np.zeros((1, 4)))
    with pytest.raises(DataError, match="'a' appears twice"):
        index.add(["a", "a"], _vectors(2))
    with pytest.raises(DataError, match="expected str"):
        index.add([3], _vectors(1))  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="hnsw_m"):
        VectorIndex(16, hnsw_m=0)
    with pytest.raises(ConfigError, match="dim"):
        VectorIndex(0)
    with pytest.raises(ConfigError, match="ef_search"):
        index.search(_vectors(1), k=3, ef_search=0)


def test_index_config_validates_and_names_the_field() -> None:
    assert index_config(ef_search=10) == IndexConfig(ef_search=10)
    with pytest.raises(ConfigError, match=r"IndexConfig\.metric"):
        index_config({"metric": "l2"})


def test_searches_run_while_items_are_added_and_removed() -> None:
    items = _vectors(500)
    index = VectorIndex.build(_ids(500), items, hnsw_threshold=400)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                for hits in index.search(items[:4], k=5, exclude={"i1"}):
                    assert len(hits) == 5 and "i1" not in hits.ids
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for j in range(40):
        index.add([f"n{j}"], _vectors(1, seed=100 + j))
        index.remove([f"i{100 + j}"])
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 500
