"""Diversity re-ranking: MMR, greedy DPP, category caps, the evaluator, pipeline and CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from lmrec.cli.main import main
from lmrec.diversity import (
    DiversifiedScorer,
    DiversityConfig,
    cap_per_category,
    diversity_config,
    dpp_rerank,
    mmr_rerank,
)
from lmrec.errors import ConfigError
from lmrec.evaluation import EvalTask, Evaluator
from lmrec.evaluation.metrics import intra_list_diversity
from lmrec.models.baselines import ItemKNNRecommender
from lmrec.pipeline import Pipeline

sys.path.insert(0, str(Path(__file__).parent / "models"))
sys.path.insert(0, str(Path(__file__).parent / "cli"))
from contract import planted_data
from test_cli import write_config

Reranker = Callable[..., np.ndarray]
RERANKERS: list[Reranker] = [mmr_rerank, dpp_rerank]


def two_clusters(per_cluster: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items 0..n-1 near axis 0 (cluster A), n..2n-1 near axis 1 (cluster B).

    Each item also has a small private axis, so items of a cluster are alike (cosine about
    0.92) but not identical. Cluster A is slightly more relevant than cluster B.

    Returns:
        ``(candidates, relevance, item_vectors)``.
    """
    n = 2 * per_cluster
    vectors = np.zeros((n, 2 + n))
    vectors[:per_cluster, 0] = 1.0
    vectors[per_cluster:, 1] = 1.0
    vectors[np.arange(n), 2 + np.arange(n)] = 0.3
    relevance = np.r_[np.linspace(1.0, 0.9, per_cluster), np.linspace(0.85, 0.75, per_cluster)]
    return np.arange(n), relevance, vectors


def cluster_of(items: np.ndarray, per_cluster: int = 5) -> list[str]:
    return ["A" if i < per_cluster else "B" for i in items]


# ----------------------------------------------------------------------------- re-rankers
@pytest.mark.parametrize("rerank", RERANKERS)
def test_lambda_zero_is_the_plain_order(rerank: Reranker) -> None:
    rng = np.random.default_rng(1)
    candidates = rng.permutation(50)[:30]
    relevance = rng.integers(0, 8, size=30).astype(float) * 0.37  # many ties
    vectors = rng.standard_normal((50, 6))
    expected = candidates[np.lexsort((candidates, -relevance))]
    assert np.array_equal(rerank(candidates, relevance, vectors, 30, 0.0), expected)
    assert np.array_equal(rerank(candidates, relevance, vectors, 7, 0.0), expected[:7])


@pytest.mark.parametrize("rerank", RERANKERS)
def test_high_lambda_mixes_clusters_that_lambda_zero_keeps_apart(rerank: Reranker) -> None:
    candidates, relevance, vectors = two_clusters()
    plain = rerank(candidates, relevance, vectors, 10, 0.0)
    assert cluster_of(plain) == ["A"] * 5 + ["B"] * 5
    diverse = rerank(candidates, relevance, vectors, 10, 0.7)
    assert diverse[0] == 0  # the most relevant item still comes first
    assert cluster_of(diverse[:2]) == ["A", "B"]
    assert sorted(diverse.tolist()) == list(range(10))


def test_dpp_alternates_clusters() -> None:
    candidates, relevance, vectors = two_clusters()
    assert dpp_rerank(candidates, relevance, vectors, 10, 0.1)[:4].tolist() == [0, 1, 2, 3]
    picked = dpp_rerank(candidates, relevance, vectors, 10, 0.9)
    # the determinant penalises a third A item more than a second B item
    assert cluster_of(picked) == ["A", "B"] * 5
    # within a cluster the more relevant item still comes first
    assert picked.tolist() == [0, 5, 1, 6, 2, 7, 3, 8, 4, 9]


def test_mmr_intra_list_distance_grows_with_lambda() -> None:
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((60, 8))
    relevance = vectors @ rng.standard_normal(8)  # relevant items point the same way
    candidates = np.arange(60)
    ild = []
    for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
        top = mmr_rerank(candidates, relevance, vectors, 10, lam)
        ild.append(intra_list_diversity(top[None, :], vectors))
    assert ild == sorted(ild)
    assert ild[-1] > ild[0] + 0.2


@pytest.mark.parametrize("lam", [0.3, 1.0])
def test_dpp_never_repeats_even_with_duplicate_vectors(lam: float) -> None:
    rng = np.random.default_rng(4)
    base = rng.standard_normal((5, 3))
    vectors = np.vstack([base, base, base, np.zeros((2, 3))])  # triples and zero vectors
    candidates = rng.permutation(17)
    relevance = rng.random(17)
    picked = dpp_rerank(candidates, relevance, vectors, 17, lam)
    assert sorted(picked.tolist()) == list(range(17))
    # the 3-dim vectors are exhausted after 3 picks; the ridge still ranks copies of picked
    # items after the other items
    first = [int(i) % 5 for i in picked[:5] if i < 15]
    assert len(set(first)) == len(first)


@pytest.mark.parametrize("rerank", RERANKERS)
@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_category_cap_is_respected(rerank: Reranker, lam: float) -> None:
    candidates, relevance, vectors = two_clusters()
    categories = [["a"]] * 5 + [["b"]] * 4 + [["a", "b"]]  # item 9 counts for both
    picked = rerank(
        candidates, relevance, vectors, 10, lam, item_categories=categories, max_per_category=3
    )
    counts = {c: sum(c in categories[i] for i in picked) for c in ("a", "b")}
    assert counts == {"a": 3, "b": 3}  # the cap stops the list at 6 items
    assert len(picked) == 6
    if lam == 0.0:
        assert picked.tolist() == [0, 1, 2, 5, 6, 7]


def test_plain_ranking_with_a_cap() -> None:
    candidates = np.array([4, 3, 2, 1, 0])
    relevance = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    categories = [["x"], ["y"], ["x"], ["x"], []]  # item 4 has no category: never capped
    picked = cap_per_category(candidates, relevance, 5, categories, 1)
    assert picked.tolist() == [4, 3, 1]


@pytest.mark.parametrize("rerank", RERANKERS)
def test_k_larger_than_the_candidates(rerank: Reranker) -> None:
    candidates, relevance, vectors = two_clusters()
    picked = rerank(candidates[:4], relevance[:4], vectors, 50, 0.5)
    assert sorted(picked.tolist()) == [0, 1, 2, 3]
    assert len(rerank(candidates[:0], relevance[:0], vectors, 5, 0.5)) == 0


def test_bad_values_name_the_field() -> None:
    candidates, relevance, vectors = two_clusters()
    with pytest.raises(ConfigError, match="lam"):
        mmr_rerank(candidates, relevance, vectors, 5, 1.5)
    with pytest.raises(ConfigError, match="lam"):
        dpp_rerank(candidates, relevance, vectors, 5, float("nan"))
    with pytest.raises(ConfigError, match="k must"):
        dpp_rerank(candidates, relevance, vectors, 0, 0.5)
    with pytest.raises(ConfigError, match="max_per_category"):
        mmr_rerank(candidates, relevance, vectors, 5, 0.5, max_per_category=2)
    with pytest.raises(ValueError, match="relevance"):
        mmr_rerank(candidates, relevance[:3], vectors, 5, 0.5)
    with pytest.raises(ValueError, match="finite"):
        mmr_rerank(candidates, np.full(10, np.nan), vectors, 5, 0.5)
    with pytest.raises(ConfigError, match=r"DiversityConfig\.method.*'maxvol'"):
        diversity_config("maxvol", 0.5)
    with pytest.raises(ConfigError, match=r"DiversityConfig\.lam"):
        diversity_config("mmr", -0.1)
    with pytest.raises(ConfigError, match=r"DiversityConfig\.max_per_category"):
        diversity_config("dpp", 0.5, max_per_category=0)
    with pytest.raises(ConfigError, match=r"DiversityConfig\.candidates"):
        diversity_config("dpp", 0.5, candidates=0)
    with pytest.raises(ConfigError, match="needs item vectors"):
        DiversifiedScorer(ItemKNNRecommender(), None, DiversityConfig(lam=0.5))


# ----------------------------------------------------------------------------- evaluator
@pytest.fixture(scope="module")
def knn() -> ItemKNNRecommender:
    model = ItemKNNRecommender()
    model.fit(planted_data()[0])
    return model


@pytest.fixture(scope="module")
def task() -> EvalTask:
    train, held = planted_data()
    return EvalTask.from_interactions(train, held)


def genre_vectors(n_items: int = 40, n_genres: int = 4) -> np.ndarray:
    """Item i has genre i % n_genres (one-hot)."""
    return np.eye(n_genres)[np.arange(n_items) % n_genres]


class NoisyScorer:
    """Random continuous scores (no ties), fixed per user."""

    name = "noisy"

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.stack([np.random.default_rng(int(u)).random(40) for u in users])


def test_scorer_lambda_zero_measures_the_retrieval_model(
    knn: ItemKNNRecommender, task: EvalTask
) -> None:
    vectors = genre_vectors()
    evaluator = Evaluator(ks=(5, 10), item_vectors=vectors)
    plain = evaluator.evaluate(knn, task).metrics
    for method in ("mmr", "dpp"):
        scorer = DiversifiedScorer(knn, vectors, DiversityConfig(method=method, lam=0.0))
        assert evaluator.evaluate(scorer, task).metrics == plain
    # the re-ranking path itself keeps the order at λ = 0 (a cap that never binds)
    noisy = NoisyScorer()
    capped = DiversifiedScorer(
        noisy,
        vectors,
        DiversityConfig(lam=0.0, candidates=15, max_per_category=100),
        item_categories=[["g"]] * 40,
    )
    assert evaluator.evaluate(capped, task).metrics == evaluator.evaluate(noisy, task).metrics


@pytest.mark.parametrize("method", ["mmr", "dpp"])
def test_scorer_trades_accuracy_for_diversity(
    knn: ItemKNNRecommender, task: EvalTask, method: str
) -> None:
    vectors = genre_vectors()
    evaluator = Evaluator(ks=(10,), item_vectors=vectors, list_k=10)
    plain = evaluator.evaluate(knn, task).metrics
    config = DiversityConfig(method=method, lam=0.9, candidates=20)  # type: ignore[arg-type]
    scorer = DiversifiedScorer(knn, vectors, config)
    diverse = evaluator.evaluate(scorer, task).metrics
    assert diverse["ild@10"] > plain["ild@10"]
    assert scorer.name == f"itemknn+{method}@0.9"
    # the scores put the re-ranked list first, history excluded
    users, histories = task.users[:3], task.histories[:3]
    scores = scorer.score(users, histories)
    base = knn.score(users, histories)
    for row, history in enumerate(histories):
        order = np.lexsort((np.arange(40), -scores[row]))
        order = order[~np.isin(order, history)]
        kept = np.setdiff1d(np.arange(40), history)
        cands = kept[np.lexsort((kept, -base[row, kept]))][:20]
        assert set(order[:20].tolist()) == set(cands.tolist())
        expected = (mmr_rerank if method == "mmr" else dpp_rerank)(
            cands, base[row, cands], vectors, 20, 0.9
        )
        assert order[:20].tolist() == expected.tolist()


# ----------------------------------------------------------------------------- pipeline
def catalog(n_items: int = 40) -> dict[str, dict[str, object]]:
    """Items 0-19 are "A" (the planted group A), 20-39 "B"; plus a genre by i % 4."""
    return {
        f"i{i}": {"title": f"T{i}", "categories": ["A" if i < 20 else "B", f"g{i % 4}"]}
        for i in range(n_items)
    }


def test_pipeline_diversity_option(knn: ItemKNNRecommender) -> None:
    pipeline = Pipeline(knn, catalog=catalog())
    history = ["i0", "i2", "i4"]
    plain = pipeline.recommend(history=history, k=8)
    assert pipeline.recommend(history=history, k=8, diversity=0.0, diversity_method="dpp") == plain
    assert all(r.categories[0] == "A" for r in plain)
    for method in ("mmr", "dpp"):
        recs = pipeline.recommend(history=history, k=8, diversity=0.8, diversity_method=method)
        assert len(recs) == 8 and recs[0].item_id == plain[0].item_id
        assert any(r.categories[0] == "B" for r in recs)
        assert not set(history) & {r.item_id for r in recs}
        assert [r.rank for r in recs] == list(range(1, 9))
    capped = pipeline.recommend("u0", k=10, max_per_category=2)
    counts: dict[str, int] = {}
    for r in capped:
        for c in r.categories:
            counts[c] = counts.get(c, 0) + 1
    assert max(counts.values()) <= 2 and len(capped) == 4  # "A" and "B" allow 2 + 2 items
    with pytest.raises(ConfigError, match="method"):
        pipeline.recommend("u0", diversity=0.5, diversity_method="nope")
    with pytest.raises(ConfigError, match="lam"):
        pipeline.recommend("u0", diversity=3.0)


class VectorModel:
    """Stands in for a text model: has its own item vectors (as a method or an array)."""

    def __init__(self, knn: ItemKNNRecommender, as_method: bool) -> None:
        self.knn = knn
        self.vectors = np.arange(80, dtype=np.float32).reshape(40, 2)
        if as_method:
            self.item_vectors = lambda: self.vectors
        else:
            self.item_vectors = self.vectors  # type: ignore[assignment]

    def __getattr__(self, name: str) -> object:
        return getattr(self.knn, name)


@pytest.mark.parametrize("as_method", [True, False])
def test_pipeline_item_vectors_prefer_the_model(knn: ItemKNNRecommender, as_method: bool) -> None:
    pipeline = Pipeline(VectorModel(knn, as_method), catalog=catalog())  # type: ignore[arg-type]
    assert np.array_equal(pipeline.item_vectors(), np.arange(80).reshape(40, 2))


def test_pipeline_item_vectors_from_categories_or_error(knn: ItemKNNRecommender) -> None:
    vectors = Pipeline(knn, catalog=catalog()).item_vectors()
    assert vectors.shape == (40, 6)  # A, B, g0..g3
    assert vectors.sum(axis=1).tolist() == [2.0] * 40
    bare = Pipeline(knn)
    with pytest.raises(ConfigError, match="item vectors or categories"):
        bare.recommend("u0", diversity=0.5)
    with pytest.raises(ConfigError, match="categories"):
        bare.recommend("u0", max_per_category=2)
    assert len(bare.recommend("u0", diversity=0.0)) == 10


# ----------------------------------------------------------------------------- CLI
def test_cli_recommend_with_diversity(
    movielens_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "c.toml", movielens_like, tmp_path / "runs")
    assert main(["train", "--config", str(cfg)]) == 0
    run = str(tmp_path / "runs" / "t")
    capsys.readouterr()

    def genres(*extra: str) -> list[list[str]]:
        assert main(["recommend", run, "--user", "2", "-k", "5", "--json", *extra]) == 0
        return [r["categories"] for r in json.loads(capsys.readouterr().out)]

    plain = genres()
    assert sum(g == ["Action"] for g in plain) >= 4  # even users watch the Action half
    diverse = genres("--diversity", "0.5")
    assert len(diverse) == 5 and ["Romance"] in diverse
    assert genres("--diversity", "0.5", "--diversity-method", "dpp").count(["Romance"]) >= 2
    capped = genres("--max-per-category", "2")
    assert sorted(map(tuple, capped)) == [("Action",)] * 2 + [("Romance",)] * 2
    assert main(["recommend", run, "--user", "2", "--diversity", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "lam" in err and err.count("\n") == 1
