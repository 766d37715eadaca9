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
        lines += boost_markdown([b for b in boosts if b["dataset"] == dataset])
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


def boost_markdown(boosts: list[dict[str, Any]]) -> list[str]:
    """The new-item boost table of one dataset."""
    if not boosts:
        return []
    lines = [
        "A score boost for new items (added to every item without a training interaction; "
        "chosen on half A of the cold items and the warm validation queries, reported on "
        "half B and the warm test queries):",
        "",
        "| model | boost | warm ndcg@10 | cold (B) ndcg@10 | cold / warm | overall ndcg@10 "
        "| queries (warm, cold B) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for b in boosts:
        q = b["report_queries"]
        for j, boost in enumerate((0.0, b["boost"]) if b["boost"] else (0.0,)):
            warm, cold = b["warm_ndcg@10"][j], b["cold_b_ndcg@10"][j]
            lines.append(
                f"| {b['model']} | {boost:g} | {warm:.4f} | {cold:.4f} "
                f"| {cold / warm if warm else float('nan'):.0%} | {b['overall_ndcg@10'][j]:.4f} "
                f"| {q['warm_test']}, {q['cold_b']} |"
            )
    for b in boosts:
        grid = ", ".join(
            f"{g:g}: {v:.4f}" for g, v in zip(b["grid"], b["calibration_ndcg@10"], strict=True)
        )
        lines.append(
            f"- {b['model']}: calibration NDCG@10 by boost ({grid}); chosen {b['boost']:g}. "
            f"Unboosted, the cold queries of half A score {b['cold_a_ndcg@10_no_boost']:.4f} "
            f"and those of half B {b['cold_b_ndcg@10'][0]:.4f}: one half's cold / warm ratio "
            "depends much on which items fell in it (compare the full table above)."
        )
    lines.append("")
    return lines
