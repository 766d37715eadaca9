"""The new-item boost study of ``bench/run_coldstart_items.py --boost-only``.

``TextSeqConfig.new_item_boost`` lifts every item without a training interaction by ``b``
standard deviations of each user's scores (:func:`lmrec.models.text._content.boost_new_items`,
what ``score`` applies). The study measures the whole curve over :data:`BOOSTS` and chooses
one ``b`` without looking at the reported queries:

- the cold items are split in two at random (the split's seed + 1);
- calibration: the warm *validation* queries and the cold queries whose target is in half A;
  the chosen boost is the smallest of the grid whose half-A cold NDCG@10 is at least
  :data:`GOAL` times the warm validation NDCG@10 (the issue's goal, stated on calibration
  data), or 0 when no boost of the grid reaches it;
- report: the warm *test* queries and the cold queries of half B (and, for reference, all
  cold queries: half A included, so optimistic for the chosen boost).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from coldstart_items_tables import GOAL
from lmrec.evaluation.metrics import ndcg_at_k, target_ranks
from lmrec.models import BaseRecommender
from lmrec.models.text import TextSeqRecommender
from lmrec.models.text._content import boost_new_items
from run_coldstart_items import (
    BATCH,
    ColdItemData,
    Queries,
    cold_half_a,
    subset,
    validation_queries,
)

BOOSTS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
BOOSTED_MODELS = {
    "ml-100k": ("text-frozen", "text-fusion"),
    "amazon-scientific": (
        "text-frozen",
        "text-fusion",
        "text-frozen+content",
        "text-fusion+content",
    ),
}
PARTS = ("valid", "cold_a", "warm", "cold_b", "cold")


def boosted_ndcg(model: TextSeqRecommender, queries: Queries) -> np.ndarray:
    """``(len(BOOSTS), len(queries))`` NDCG@10 of ``model`` at every boost of the grid."""
    if model.config.new_item_boost != 0.0:
        raise ValueError("the study needs the model without a boost")
    new = model.new_items()
    ranks: list[list[np.ndarray]] = [[] for _ in BOOSTS]
    for start in range(0, len(queries), BATCH):
        stop = start + BATCH
        base = model.score(queries.users[start:stop], queries.inputs[start:stop])
        for j, b in enumerate(BOOSTS):
            scores = boost_new_items(base.copy(), new, b)
            ranks[j].extend(
                target_ranks(scores, queries.targets[start:stop], queries.exclude[start:stop])
            )
    return np.stack([ndcg_at_k(r, 10) for r in ranks])


def _check_against_score(model: TextSeqRecommender, queries: Queries, boost: float) -> None:
    """The study's boosted scores are what the model itself serves with ``new_item_boost``."""
    users, inputs = queries.users[:8], queries.inputs[:8]
    expected = boost_new_items(model.score(users, inputs), model.new_items(), boost)
    model.set_new_item_boost(boost)
    try:
        np.testing.assert_allclose(model.score(users, inputs), expected, rtol=1e-5, atol=1e-5)
    finally:
        model.set_new_item_boost(0.0)


def boost_study(name: str, model: BaseRecommender, data: ColdItemData) -> dict[str, Any]:
    """The boost curve of one model and the boost the calibration data chooses."""
    assert isinstance(model, TextSeqRecommender)
    half_a = cold_half_a(data)
    in_a = np.array([int(t[0]) in half_a for t in data.cold.targets], dtype=bool)
    queries = {
        "valid": validation_queries(data),
        "cold_a": subset(data.cold, in_a),
        "warm": data.warm,
        "cold_b": subset(data.cold, ~in_a),
        "cold": data.cold,
    }
    _check_against_score(model, data.warm, BOOSTS[-1])
    per_query = {part: boosted_ndcg(model, q) for part, q in queries.items()}
    curve = {part: v.mean(axis=1).tolist() for part, v in per_query.items()}
    report = np.concatenate([per_query["warm"], per_query["cold_b"]], axis=1).mean(axis=1)
    curve["report_overall"] = report.tolist()
    ratio_a = [a / v if v else 0.0 for a, v in zip(curve["cold_a"], curve["valid"], strict=True)]
    reaching = [j for j, r in enumerate(ratio_a) if r >= GOAL]
    chosen = reaching[0] if reaching else 0
    print(
        f"[{data.dataset.name}] {name}: boost {BOOSTS[chosen]:g}; half-A ratio by boost "
        f"{np.round(ratio_a, 2).tolist()}"
    )
    return {
        "dataset": data.dataset.name,
        "model": name,
        "grid": list(BOOSTS),
        "chosen": BOOSTS[chosen],
        "goal_reached_on_calibration": bool(reaching),
        "content_weight": model.content_weight,
        "curve_ndcg@10": curve,
        "queries": {part: len(q) for part, q in queries.items()},
    }


def plot(out: Path, studies: list[dict[str, Any]]) -> None:
    """Warm test NDCG@10 against cold NDCG@10 (half B) along the boost grid, per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s["dataset"] for s in studies))
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        for s in (s for s in studies if s["dataset"] == dataset):
            c = s["curve_ndcg@10"]
            line = ax.plot(c["cold_b"], c["warm"], marker="o", ms=3, label=s["model"])[0]
            j = s["grid"].index(s["chosen"])
            ax.plot(c["cold_b"][j], c["warm"][j], marker="*", ms=12, color=line.get_color())
            ax.annotate("0", (c["cold_b"][0], c["warm"][0]), fontsize=7)
            ax.annotate(f"{s['grid'][-1]:g}", (c["cold_b"][-1], c["warm"][-1]), fontsize=7)
        mine = [s for s in studies if s["dataset"] == dataset]
        x_max = 1.08 * max(max(s["curve_ndcg@10"]["cold_b"]) for s in mine)
        y_max = 1.3 * max(max(s["curve_ndcg@10"]["warm"]) for s in mine)
        xs = np.linspace(0, x_max, 10)
        ax.plot(xs, xs / GOAL, ls=":", color="grey", lw=1, label=f"cold = {GOAL:g} x warm")
        ax.fill_between(xs, 0, np.minimum(xs / GOAL, y_max), color="grey", alpha=0.08)
        ax.set_xlim(0, x_max)
        ax.set_ylim(0, y_max)
        ax.set_xlabel("cold items (half B) NDCG@10")
        ax.set_ylabel("warm items NDCG@10 (test)")
        ax.set_title(
            f"{dataset}: new-item boost 0 to {BOOSTS[-1]:g}\n(star: chosen; shaded: goal met)"
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
