"""The Markdown report of ``bench/run_coldstart_items.py`` and the names both share."""

from __future__ import annotations

import json
from typing import Any

DATASETS = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
ID_MODELS = ["pop", "itemknn", "sasrec"]
TEXT_MODELS = ["text-mean", "text-frozen", "text-fusion"]
CONTENT_MODELS = ["text-frozen+content", "text-fusion+content"]
"""The trained text models with the content prior (``content_weight = "auto"``): the saved
model of the row without ``+content``, its weight chosen on the warm validation set."""
VARIANTS = ["text-fusion-incat", "text-frozen-coldval"]
ALL_MODELS = ID_MODELS + TEXT_MODELS + CONTENT_MODELS + VARIANTS
DEFAULT_MODELS = {
    "ml-100k": ALL_MODELS,
    "amazon-scientific": ID_MODELS + TEXT_MODELS + CONTENT_MODELS,
}
# Epoch caps that keep the whole benchmark near 35 CPU minutes on one thread (the configs
# allow 200 with early stopping; bench/results/<dataset>.md shows where the best epochs were).
EPOCHS = {"ml-100k": {"sasrec": 30, "text": 30}, "amazon-scientific": {"sasrec": 30, "text": 15}}
GOAL = 0.5
"""Share of its warm NDCG@10 a text model should keep on cold items."""


def markdown(
    rows: list[dict[str, Any]], datasets: dict[str, Any], boosts: list[dict[str, Any]]
) -> str:
    from lmrec.evaluation import markdown_table

    lines = ["# Cold-start items", ""]
    for dataset in DATASETS:
        mine = [r for r in rows if r["dataset"] == dataset]
        if not mine:
            continue
        info = datasets.get(dataset, {})
        best_id_cold = max(
            (r["metrics"]["cold_ndcg@10"] for r in mine if r["model"] in ID_MODELS), default=None
        )
        sasrec = next((r for r in mine if r["model"] == "sasrec"), None)
        table = []
        for r in mine:
            m = r["metrics"]
            table.append(
                {
                    "model": r["model"],
                    "warm ndcg@10": m["warm_ndcg@10"],
                    "warm R@10": m["warm_recall@10"],
                    "cold ndcg@10": m["cold_ndcg@10"],
                    "cold R@10": m["cold_recall@10"],
                    "overall ndcg@10": m["overall_ndcg@10"],
                    "overall R@10": m["overall_recall@10"],
                    "cold / warm": m["cold_ndcg@10"] / m["warm_ndcg@10"]
                    if m["warm_ndcg@10"]
                    else None,
                    "overall vs sasrec": m["overall_ndcg@10"] / sasrec["metrics"]["overall_ndcg@10"]
                    if sasrec
                    else None,
                    "warm vs sasrec": m["warm_ndcg@10"] / sasrec["metrics"]["warm_ndcg@10"]
                    if sasrec
                    else None,
                    "all targets ndcg@10": m["all_targets_ndcg@10"],
                    "epochs": r.get("epochs"),
                    "train s": r.get("train_seconds"),
                    "add s": r.get("add_items_seconds"),
                }
            )
        columns = list(table[0])
        title = (
            f"{dataset}: {info.get('cold_items')} of {info.get('items')} items cold "
            f"({info.get('cold_test_interactions')} test interactions); "
            f"{info.get('warm_queries')} warm and {info.get('cold_queries')} cold queries"
        )
        lines += [markdown_table(table, columns, title=title, float_fmt=".4f"), ""]
        if best_id_cold is not None:
            lines.append(
                f"- The id models' best cold NDCG@10 is {best_id_cold:.4f}: they have no "
                "data on an item without interactions and rank it below every item they know."
            )
        for r in mine:
            if r["model"].split(" [")[0] in TEXT_MODELS + CONTENT_MODELS:
                m = r["metrics"]
                kept = m["cold_ndcg@10"] / m["warm_ndcg@10"]
                verdict = "meets" if kept >= GOAL else "misses"
                lines.append(
                    f"- {r['model']} keeps {kept:.0%} of its warm NDCG@10 on cold items "
                    f"({verdict} the goal of {GOAL:.0%})"
                    + (
                        f"; content weight {r['content_weight']:g}, chosen on the warm "
                        f"validation set ({_grid(r['content_validation'])})."
                        if "content_weight" in r
                        else "."
                    )
                )
        incat = {r["model"]: r for r in mine if r["model"].startswith("text-fusion-incat")}
        if len(incat) == 2:
            zeroed = incat["text-fusion-incat"]
            raw = incat["text-fusion-incat (ids as trained)"]
            lines.append(
                "- Trained with the cold items in its catalog (as `lmrec train --split cold_item`"
                " does; they are left out of the training softmax, so they get no gradient), "
                "the fused model never trains their id embeddings (random initial values, at "
                "most shrunk by weight decay; mean "
                f"norm {zeroed.get('id_norm_cold_as_trained', float('nan')):.3f} vs "
                f"{zeroed.get('id_norm_warm', float('nan')):.3f} for trained items): cold "
                f"NDCG@10 {raw['metrics']['cold_ndcg@10']:.4f} with those, "
                f"{zeroed['metrics']['cold_ndcg@10']:.4f} with them zeroed (what the model does "
                "for items without a training interaction). Before the softmax left them out, "
                "they were pushed down as negatives: 0.0008 with them zeroed."
            )
        lines.append("")
        lines += half_b_markdown(mine)
        lines += boost_markdown([b for b in boosts if b["dataset"] == dataset], info)
    if boosts:
        lines += ["![New-item boost: warm vs cold NDCG@10](coldstart-items.png)", ""]
    meta = rows[-1] if rows else {}
    lines += [
        "## Protocol",
        "",
        "- Split: `cold_item_split(cold_frac=0.15, seed=0)`: 15% of the items with "
        "interactions are held out with all their interactions (test only); the other "
        "interactions are split leave-one-out by time (last = test, second last = validation).",
        "- `+content` rows are the saved `text-frozen` / `text-fusion` models scored with "
        "the content prior (`content_weight`, `lmrec.models.text`): `(1 - w) * z(trained) + "
        "w * z(text_mean)`, standardised per user; `w` is chosen from (0, 0.05, 0.1, 0.2, "
        "0.3, 0.5) by NDCG@10 on the warm validation set (no cold item is used).",
        "- Text models (`text-mean`, `text-frozen`, `text-fusion`) are trained on a catalog "
        "without the cold items, which are then added with `add_items` (their dataset text, "
        "the model's own encoder; a zero id embedding in the fused model) without retraining "
        "(`add s`). Id models (`pop`, `itemknn`, `sasrec`) are trained on the whole catalog, "
        "where the cold items have no interaction. `text-fusion-incat` is the fused model "
        "trained with the cold items in its catalog (negatives, never targets), as "
        '`lmrec train` with `split = "cold_item"` trains it.',
        "- Queries, full ranking over all items with pessimistic ties, one target each; every "
        "other item the user interacted with (in train, validation or test) is left out of the "
        "ranking. A *warm* query per user: their leave-one-out test item, the model reading "
        "their train + validation history. A *cold* query per user with a cold-item "
        "interaction: one drawn at random (seed 0), the model reading their train + "
        "validation interactions before it in time (queries with an empty history skipped); "
        "their later items are excluded from the ranking, not shown to the model. `overall` "
        "averages all queries. With one target, Recall@10 is the hit rate.",
        "- `all targets ndcg@10` is what `lmrec train` reports on this split: one query per "
        "user whose targets are every test item (the warm one and all cold ones), history "
        "= train + validation. Many targets per user make it larger and not comparable with "
        "the one-target columns.",
        "- `cold / warm`: the model's cold NDCG@10 over its own warm NDCG@10 (the goal: at "
        "least 50% for the text models). `overall vs sasrec` and `warm vs sasrec`: the "
        "overall and warm NDCG@10 over SASRec's.",
        f"- Hyperparameters from `configs/<model>-<dataset>.toml` with epochs capped "
        f"({json.dumps(EPOCHS)}) to fit the CPU budget; early stopping on validation "
        "NDCG@10 (warm items only).",
        "- `train s` and `add s` are wall-clock seconds on a machine shared with other jobs "
        "(compare them only roughly); `add s` encodes every cold item and indexes it.",
        f"- Machine: {meta.get('machine')}, torch threads {meta.get('threads')}; the rows come "
        "from these commands: "
        + "; ".join(f"`{c}`" for c in dict.fromkeys(str(r.get("command")) for r in rows))
        + f"; last run {max(str(r.get('date')) for r in rows) if rows else None}.",
        "",
    ]
    return "\n".join(lines)


def _grid(values: dict[str, float]) -> str:
    return ", ".join(f"{float(w):g}: {v:.4f}" for w, v in values.items())


def half_b_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """text-frozen vs text-frozen-coldval on the cold items neither used (half B)."""
    found = [r for r in rows if "half_b" in r["metrics"]]
    if not any(r["model"].startswith("text-frozen-coldval") for r in found):
        return []
    lines = [
        "Choosing the epoch for a growing catalog: `text-frozen-coldval` is text-frozen "
        "trained with the cold items in its catalog (never in its softmax) and early-stopped "
        "on the warm validation items plus the test interactions of half A of the cold items. "
        "Its `cold` column above includes half A, so it is optimistic; here both models on "
        "half B, which neither saw. (The validation counts every target, and a user's "
        "cold half-A interactions outnumber their one warm validation item, so the choice "
        "leans towards cold items.) The `+content` rows chose their weight on warm "
        "validation items only, so both halves are unseen by them.",
        "",
        "| model | warm ndcg@10 | cold (B) ndcg@10 | cold / warm | best epoch / epochs |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in found:
        h = r["metrics"]["half_b"]
        ratio = h["cold_b_ndcg@10"] / h["warm_ndcg@10"] if h["warm_ndcg@10"] else float("nan")
        lines.append(
            f"| {r['model']} | {h['warm_ndcg@10']:.4f} | {h['cold_b_ndcg@10']:.4f} "
            f"| {ratio:.0%} | {r.get('best_epoch')} / {r.get('epochs')} |"
        )
    lines.append("")
    return lines


def cold_share(info: dict[str, Any]) -> float:
    """The cold items' share of all the dataset's interactions."""
    total = sum(info[f"{p}_interactions"] for p in ("train", "valid", "test"))
    return float(info["cold_test_interactions"]) / total if total else 0.0


def boost_markdown(boosts: list[dict[str, Any]], info: dict[str, Any]) -> list[str]:
    """The new-item boost curves of one dataset (``coldstart_items_boost.py``)."""
    if not boosts:
        return []
    share_cold = cold_share(info)
    lines = [
        "**New-item boost** (`new_item_boost`: every item without a training interaction "
        "lifted by b standard deviations of the user's scores; models retrained for this "
        "study, so b = 0 may differ a little from the table above). Calibration: warm "
        "validation queries and the cold queries of half A of the cold items; the chosen b "
        f"(bold) is the smallest whose half-A cold NDCG@10 is at least {GOAL:.0%} of the warm "
        "validation NDCG@10. Report: warm test queries and the cold queries of half B, which "
        "no choice used; `all cold` includes half A. `warm + cold B` averages over queries "
        "(about as many cold as warm ones); `by interactions` weighs warm test and all cold "
        f"NDCG@10 by the cold items' share of all interactions ({share_cold:.1%}), the mix a "
        "stream of next items would have.",
        "",
        "| model | b | valid (warm) | cold A | A / valid | warm (test) | cold B | B / warm "
        "| all cold | all cold / warm | warm + cold B | by interactions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b in boosts:
        c = b["curve_ndcg@10"]
        for j, boost in enumerate(b["grid"]):
            mark = "**" if boost == b["chosen"] else ""
            warm = c["warm"][j]

            def share(x: float, y: float) -> str:
                return f"{x / y:.0%}" if y else "–"

            lines.append(
                f"| {b['model']} | {mark}{boost:g}{mark} | {c['valid'][j]:.4f} "
                f"| {c['cold_a'][j]:.4f} | {share(c['cold_a'][j], c['valid'][j])} "
                f"| {warm:.4f} | {c['cold_b'][j]:.4f} | {share(c['cold_b'][j], warm)} "
                f"| {c['cold'][j]:.4f} | {share(c['cold'][j], warm)} "
                f"| {c['report_overall'][j]:.4f} "
                f"| {(1 - share_cold) * warm + share_cold * c['cold'][j]:.4f} |"
            )
    for b in boosts:
        c, j = b["curve_ndcg@10"], b["grid"].index(b["chosen"])
        warm0, warm = c["warm"][0], c["warm"][j]
        reached = "" if b["goal_reached_on_calibration"] else " (no boost of the grid reaches "
        reached += "" if b["goal_reached_on_calibration"] else "the goal on calibration data)"
        lines.append(
            f"- {b['model']}: b = {b['chosen']:g}{reached}; warm test NDCG@10 {warm0:.4f} -> "
            f"{warm:.4f} ({warm / warm0 - 1:+.0%}), cold half B {c['cold_b'][0]:.4f} -> "
            f"{c['cold_b'][j]:.4f}, all cold {c['cold'][0]:.4f} -> {c['cold'][j]:.4f} "
            f"(all cold / warm {c['cold'][j] / warm:.0%})."
        )
    lines.append("")
    return lines
