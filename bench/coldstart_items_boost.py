"""The new-item score-boost study of ``bench/run_coldstart_items.py --boost-only``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmrec.evaluation.metrics import ndcg_at_k, target_ranks
from lmrec.models import BaseRecommender
from run_coldstart_items import (
    BATCH,
    ColdItemData,
    Queries,
    cold_half_a,
    subset,
    validation_queries,
)

BOOSTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
BOOSTED_MODELS = ("text-frozen", "text-fusion")


def boosted_ndcg(
    model: BaseRecommender, queries: Queries, untrained: np.ndarray, boosts: Sequence[float]
) -> np.ndarray:
    """``(len(boosts), len(queries))`` NDCG@10 with each boost added to untrained items."""
    ranks: list[list[np.ndarray]] = [[] for _ in boosts]
    for start in range(0, len(queries), BATCH):
        stop = start + BATCH
        base = model.score(queries.users[start:stop], queries.inputs[start:stop])
        for j, b in enumerate(boosts):
            scores = base.copy()
            scores[:, untrained] += b
            ranks[j].extend(
                target_ranks(scores, queries.targets[start:stop], queries.exclude[start:stop])
            )
    return np.stack([ndcg_at_k(r, 10) for r in ranks])


def boost_study(name: str, model: BaseRecommender, data: ColdItemData, seed: int) -> dict:
    """Choose a score boost for new items on half of the cold items, report the other half.

    The boost is added to the score of every item without a training interaction: a prior
    for new items, which the learned scores of trained items (their popularity included)
    leave behind.

    The cold items are split in two at random (``seed`` + 1). The boost maximises NDCG@10
    over the warm *validation* queries plus the cold queries whose target is in the first
    half; the model is then measured on the warm test queries and the cold queries of the
    second half, with no boost and with the chosen one.
    """
    untrained = np.ones(len(data.full_map), dtype=bool)  # no training interaction
    untrained[: len(data.warm_ids)] = data.train_warm.item_counts() == 0
    half_a = cold_half_a(data)
    in_a = np.array([int(t[0]) in half_a for t in data.cold.targets], dtype=bool)
    valid = validation_queries(data)
    cold_a = boosted_ndcg(model, subset(data.cold, in_a), untrained, BOOSTS)
    calib = np.concatenate([boosted_ndcg(model, valid, untrained, BOOSTS), cold_a], axis=1)
    calib = calib.mean(axis=1)
    best = float(BOOSTS[int(np.argmax(calib))])
    warm = boosted_ndcg(model, data.warm, untrained, (0.0, best)).mean(axis=1)
    cold = boosted_ndcg(model, subset(data.cold, ~in_a), untrained, (0.0, best))
    n_warm, n_cold = len(data.warm), cold.shape[1]
    overall = (warm * n_warm + cold.sum(axis=1)) / (n_warm + n_cold)
    print(f"[{data.dataset.name}] {name}: boost {best} (calibration {np.round(calib, 4)})")
    return {
        "dataset": data.dataset.name,
        "model": name,
        "boost": best,
        "grid": list(BOOSTS),
        "calibration_ndcg@10": calib.tolist(),
        "calibration_queries": {"warm_valid": len(valid), "cold_a": int(in_a.sum())},
        "report_queries": {"warm_test": n_warm, "cold_b": int(n_cold)},
        "warm_ndcg@10": warm.tolist(),
        "cold_b_ndcg@10": cold.mean(axis=1).tolist(),
        "cold_a_ndcg@10_no_boost": float(cold_a[0].mean()),
        "overall_ndcg@10": overall.tolist(),
    }
