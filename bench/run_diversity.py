"""Benchmark diversity re-ranking: the accuracy/diversity curve over λ, MMR and DPP.

Protocol (leave-one-out by time, as every other benchmark here):

1. The trained runs ``runs/bench/<model>-<dataset>`` are loaded as they are (no training);
   data and split are re-created from each run's ``config.json`` as ``lmrec evaluate`` does.
2. Each model scores the whole catalog once for the validation and the test users; the
   scores are kept and served again for every λ.
3. For every method (``mmr``, ``dpp``) and λ, :class:`lmrec.diversity.DiversifiedScorer`
   re-ranks the model's top ``--candidates`` items (history excluded) with the similarity
   the pipeline uses (``Pipeline.item_vectors()``: the text model's own item vectors, the
   genres for SASRec on MovieLens; a run with neither — SASRec on Amazon, no categories —
   falls back to the frozen language-model vectors of the item text) and the ordinary
   :class:`lmrec.evaluation.Evaluator` measures NDCG@10, Recall@10 and, on the top-10 lists,
   ILD, catalog coverage, Gini and long-tail share.
4. ILD is measured in one space per dataset for every model and method: the genres on
   MovieLens (as in the main benchmark) and, Amazon Scientific having no categories, the
   frozen language model's vectors of the item text (the ``text-mean`` run's).
5. The default λ of each method is chosen on *validation*: among the λ whose NDCG@10 is at
   most ``--max-loss`` (2 %) below λ = 0 for every (dataset, model), the one with the largest
   mean relative ILD gain; the method with the larger gain is recommended. Test numbers are
   reported for it.

Writes ``bench/results/diversity-<dataset>.json`` / ``.md`` (the curves), and, over the
datasets whose JSON is present, ``bench/results/diversity.md`` (the chosen default) and
``bench/results/diversity.png`` (NDCG@10 against ILD@10 on test).

Usage::

    python bench/run_diversity.py                       # both datasets, ~12 min, 1 thread
    python bench/run_diversity.py --datasets ml-100k --lams 0 0.1 0.5
    python bench/run_diversity.py --select-only         # re-read the JSON, redo the choice

Only the top ``list_k`` = 10 of each re-ranked list is built greedily (``depth``); the other
candidates follow in relevance order, which leaves every metric reported here unchanged
(the greedy picks are the same whatever the list length) and saves 90 % of the work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.diversity import DiversifiedScorer, DiversityConfig
from lmrec.errors import ConfigError
from lmrec.evaluation import EvalTask, Evaluator, markdown_table
from lmrec.experiment import category_vectors, prepare_data, read_run_config
from lmrec.models import load_model
from lmrec.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DATASETS = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
"""Dataset name -> the suffix of its run directories under ``runs/bench``."""
METHODS = ("mmr", "dpp")
LAMS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
CURVE_METRICS = ("ndcg@10", "recall@10", "ild@10", "coverage@10", "gini@10", "long_tail@10")
LIST_K = 10


class CachedScores:
    """Full-catalog scores computed once per task user, served again by user index.

    Args:
        name: The model's name (shown by the evaluator).
        users: The task's user indices, one per row of ``scores``.
        scores: ``(len(users), n_items)`` retrieval scores.
    """

    def __init__(self, name: str, users: np.ndarray, scores: np.ndarray) -> None:
        if len(users) != len(scores):
            raise ValueError(f"{len(scores)} score rows for {len(users)} users")
        self.name = name
        self.scores = scores
        self.row = {int(u): r for r, u in enumerate(users)}

    @classmethod
    def of(cls, model: Any, task: EvalTask, batch_size: int = 256) -> CachedScores:
        rows = [
            np.asarray(
                model.score(task.users[s : s + batch_size], task.histories[s : s + batch_size]),
                dtype=np.float32,
            )
            for s in range(0, len(task), batch_size)
        ]
        return cls(str(getattr(model, "name", "model")), task.users, np.concatenate(rows))

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.scores[[self.row[int(u)] for u in users]]


def build_curve(
    scorer: Any,
    similarity: np.ndarray,
    evaluator: Evaluator,
    task: EvalTask,
    methods: Iterable[str] = METHODS,
    lams: Iterable[float] = LAMS,
    candidates: int = 100,
    depth: int | None = LIST_K,
) -> list[dict[str, Any]]:
    """Accuracy and diversity of the re-ranked lists for every method and λ.

    λ = 0 is the plain ranking, evaluated once and repeated under each method.

    Args:
        scorer: The retrieval model (anything with ``score(users, histories)``).
        similarity: ``(n_items, dim)`` vectors the re-rankers compare items with.
        evaluator: Measures each list (its ``item_vectors`` are the ILD space).
        task: The users to evaluate.
        methods: ``"mmr"`` and/or ``"dpp"``.
        lams: The λ values (0 to 1).
        candidates: Items of the retrieval top list that are re-ranked.
        depth: Greedy picks per list (see :class:`DiversifiedScorer`); ``None`` for all.

    Returns:
        One row per (method, λ): ``method``, ``lam``, the metrics of :data:`CURVE_METRICS`
        that the evaluator computed, and ``seconds``.
    """
    rows: list[dict[str, Any]] = []
    plain: dict[str, Any] | None = None
    for method in methods:
        for lam in lams:
            if lam == 0.0 and plain is not None:
                rows.append({**plain, "method": method})
                continue
            config = DiversityConfig.model_validate(
                {"method": method, "lam": lam, "candidates": candidates}
            )
            diversified = DiversifiedScorer(scorer, similarity, config, depth=depth)
            t0 = time.perf_counter()
            metrics = evaluator.evaluate(diversified, task).metrics
            row = {"method": method, "lam": float(lam)}
            row.update({m: metrics[m] for m in CURVE_METRICS if m in metrics})
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if lam == 0.0:
                plain = row
    return rows


def choose_lambda(
    curves: Sequence[Sequence[dict[str, Any]]], method: str, max_loss: float = 0.02
) -> dict[str, Any] | None:
    """The λ of ``method`` with the largest mean ILD gain that keeps NDCG@10 within bounds.

    A λ qualifies when, on every curve, its NDCG@10 is at least ``(1 - max_loss)`` times the
    curve's λ = 0 value; among those, the one with the largest mean relative ILD gain over
    λ = 0 wins (ties: the smaller λ). λ = 0 always qualifies (gain 0).

    Args:
        curves: Rows of :func:`build_curve`, one list per (dataset, model), all on the same
            (validation) part.
        method: Which method's rows to use.
        max_loss: The largest relative NDCG@10 loss allowed (0.02 = 2 %).

    Returns:
        ``{"method", "lam", "ild_gain", "worst_ndcg_loss"}`` (relative values), or ``None``
        when a curve lacks λ = 0 or ILD for ``method``.
    """
    per_lam: dict[float, list[tuple[float, float]]] = {}
    for curve in curves:
        rows = {float(r["lam"]): r for r in curve if r["method"] == method}
        base = rows.get(0.0)
        if base is None or "ild@10" not in base:
            return None
        for lam, row in rows.items():
            loss = 1.0 - row["ndcg@10"] / base["ndcg@10"] if base["ndcg@10"] > 0 else 0.0
            gain = row["ild@10"] / base["ild@10"] - 1.0 if base["ild@10"] > 0 else 0.0
            per_lam.setdefault(lam, []).append((loss, gain))
    best: dict[str, Any] | None = None
    for lam in sorted(per_lam):
        found = per_lam[lam]
        if len(found) != len(curves) or max(loss for loss, _ in found) > max_loss + 1e-12:
            continue
        gain = float(np.mean([g for _, g in found]))
        if best is None or gain > best["ild_gain"] + 1e-12:
            worst = max(loss for loss, _ in found)
            best = {"method": method, "lam": lam, "ild_gain": gain, "worst_ndcg_loss": worst}
    return best


# ----------------------------------------------------------------------------- data
def text_vectors(run_dir: Path, item_ids: Sequence[str]) -> np.ndarray:
    """The frozen language model's item-text vectors of a ``text-mean`` run, by ``item_ids``."""
    model = load_model(run_dir / "model")
    vectors = np.asarray(model.item_vectors, dtype=np.float32)  # type: ignore[attr-defined]
    item_map = model._require(model.item_map)
    return vectors[[item_map.index(i) for i in item_ids]]


def similarity_vectors(pipeline: Pipeline, fallback: np.ndarray) -> tuple[np.ndarray, str]:
    """What ``lmrec recommend`` would compare items with, or ``fallback`` when it has none."""
    try:
        vectors = pipeline.item_vectors()
    except ConfigError:
        return fallback, "item text (frozen LM)"
    source = getattr(pipeline.retrieval, "item_vectors", None)
    return vectors, "model item vectors" if source is not None else "categories"


def run_dataset(args: argparse.Namespace, dataset_name: str) -> dict[str, Any]:
    suffix = DATASETS[dataset_name]
    runs = {m: args.runs / f"{m}-{suffix}" for m in args.models}
    first = next(iter(runs.values()))
    config = read_run_config(first)
    dataset, data = prepare_data(config)
    item_ids = list(data.item_map.ids)
    lm_vectors = text_vectors(args.runs / f"text-mean-{suffix}", item_ids)
    ild_vectors = category_vectors(dataset)
    ild_space = "genres" if ild_vectors is not None else "item text (frozen LM)"
    if ild_vectors is None:
        ild_vectors = lm_vectors
    evaluator = Evaluator(
        ks=(10,),
        item_vectors=ild_vectors,
        item_popularity=data.train.item_counts(),
        popularity_users=data.train.n_users,
        list_k=LIST_K,
    )
    tasks = {"valid": data.valid_task(), "test": data.test_task()}
    models: dict[str, Any] = {}
    for name, run_dir in runs.items():
        if read_run_config(run_dir).data != config.data:
            raise ConfigError(f"{run_dir} uses other data than {first}")
        pipeline = Pipeline.load(run_dir)
        if list(pipeline.retrieval._require(pipeline.retrieval.item_map).ids) != item_ids:
            raise ConfigError(f"{run_dir}: item order differs from the split's")
        similarity, source = similarity_vectors(pipeline, lm_vectors)
        entry: dict[str, Any] = {"run": str(run_dir), "similarity": source, "curves": {}}
        for part, task in tasks.items():
            t0 = time.perf_counter()
            cached = CachedScores.of(pipeline.retrieval, task)
            entry["score_seconds_" + part] = time.perf_counter() - t0
            entry["curves"][part] = build_curve(
                cached, similarity, evaluator, task, args.methods, args.lams, args.candidates
            )
            print(
                f"  {dataset_name} {name} {part}: {len(entry['curves'][part])} points", flush=True
            )
        models[name] = entry
    return {
        "dataset": dataset_name,
        "ild_space": ild_space,
        "candidates": args.candidates,
        "users": {part: len(task) for part, task in tasks.items()},
        "models": models,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }


# ----------------------------------------------------------------------------- reports
def curve_table(result: dict[str, Any], part: str = "test") -> str:
    rows = []
    for name, entry in result["models"].items():
        for row in entry["curves"][part]:
            if row["lam"] == 0.0 and row["method"] != entry["curves"][part][0]["method"]:
                continue  # λ = 0 is the same plain ranking under every method
            method = "–" if row["lam"] == 0.0 else row["method"]
            rows.append({"model": name, **row, "method": method})
    return markdown_table(
        rows,
        ["model", "method", "lam", *CURVE_METRICS],
        title=f"{result['dataset']}: diversity re-ranking of the top {result['candidates']}, "
        f"{part} split ({result['users'][part]} users)",
        float_fmt=".4f",
    )


def write_dataset(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    name = result["dataset"]
    (out / f"diversity-{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    sims = "; ".join(f"{m}: {e['similarity']}" for m, e in result["models"].items())
    lines = [
        curve_table(result, "test"),
        "",
        f"λ = 0 is the plain ranking. Similarity for re-ranking — {sims}. ILD@10 measured on "
        f"{result['ild_space']}. Validation curves in the JSON file. {result['machine']}, "
        f"threads {result['threads']}, `{result['command']}`, {result['date']}.",
    ]
    (out / f"diversity-{name}.md").write_text("\n".join(lines) + "\n")


def select_default(results: Sequence[dict[str, Any]], max_loss: float) -> dict[str, Any]:
    """Choose λ per method on validation over every (dataset, model); the best method wins."""
    valid = [e["curves"]["valid"] for r in results for e in r["models"].values()]
    choices = {m: choose_lambda(valid, m, max_loss) for m in METHODS}
    found = [c for c in choices.values() if c is not None]
    if not found:
        raise ConfigError("no curve has λ = 0 and ILD: nothing to choose from")
    best = max(found, key=lambda c: (c["ild_gain"], c["method"] == "mmr"))
    models = sorted({m for r in results for m in r["models"]})
    per_model = {
        model: {
            m: choose_lambda(
                [r["models"][model]["curves"]["valid"] for r in results if model in r["models"]],
                m,
                max_loss,
            )
            for m in METHODS
        }
        for model in models
    }
    return {
        "max_loss": max_loss,
        "per_method": choices,
        "per_model": per_model,
        "recommended": best,
    }


def at_lambda(curve: Sequence[dict[str, Any]], method: str, lam: float) -> dict[str, Any]:
    return next(r for r in curve if r["method"] == method and r["lam"] == lam)


def write_summary(out: Path, results: Sequence[dict[str, Any]], choice: dict[str, Any]) -> None:
    rows = []
    for result in results:
        for name, entry in result["models"].items():
            for part in ("valid", "test"):
                curve = entry["curves"][part]
                for method, picked in choice["per_method"].items():
                    if picked is None or picked["lam"] == 0.0:
                        continue  # λ = 0 is the plain ranking: nothing to show
                    base = at_lambda(curve, method, 0.0)
                    row = at_lambda(curve, method, picked["lam"])
                    rows.append(
                        {
                            "dataset": result["dataset"],
                            "model": name,
                            "part": part,
                            "method": method,
                            "lam": picked["lam"],
                            "ndcg@10 λ=0": base["ndcg@10"],
                            "ndcg@10": row["ndcg@10"],
                            "ndcg Δ": f"{100 * (row['ndcg@10'] / base['ndcg@10'] - 1):+.1f} %",
                            "ild@10 λ=0": base["ild@10"],
                            "ild@10": row["ild@10"],
                            "ild Δ": f"{100 * (row['ild@10'] / base['ild@10'] - 1):+.1f} %",
                            "coverage@10": row["coverage@10"],
                            "long_tail@10": row["long_tail@10"],
                        }
                    )
    rec = choice["recommended"]
    per = ", ".join(
        f"{m} λ = {c['lam']:g} (+{100 * c['ild_gain']:.1f} % ILD, worst NDCG@10 "
        f"-{100 * c['worst_ndcg_loss']:.1f} %)"
        for m, c in choice["per_method"].items()
        if c is not None
    )
    lines = [
        markdown_table(
            rows,
            list(rows[0]),
            title="Default diversity λ: chosen on validation, reported on test",
            float_fmt=".4f",
        ),
        "",
        f"Rule: the λ with the largest mean relative ILD@10 gain whose NDCG@10 is at most "
        f"{100 * choice['max_loss']:g} % below λ = 0 on validation for every dataset and "
        f"model. Per method: {per}. Recommended: `{rec['method']}` with λ = {rec['lam']:g}.",
        "",
        "The same rule for one model at a time (both datasets): "
        + "; ".join(
            f"{model}: "
            + ", ".join(f"{m} λ = {c['lam']:g}" for m, c in picks.items() if c is not None)
            for model, picks in choice.get("per_model", {}).items()
        )
        + ".",
    ]
    (out / "diversity.md").write_text("\n".join(lines) + "\n")
    (out / "diversity-choice.json").write_text(json.dumps(choice, indent=2) + "\n")


def plot(out: Path, results: Sequence[dict[str, Any]], choice: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.6), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for name, entry in result["models"].items():
            for method, style in zip(METHODS, ("-o", "--s"), strict=True):
                curve = [r for r in entry["curves"]["test"] if r["method"] == method]
                if not curve:
                    continue
                x = [r["ild@10"] for r in curve]
                y = [r["ndcg@10"] for r in curve]
                (line,) = ax.plot(x, y, style, ms=4, label=f"{name} {method}")
                for r in curve:
                    ax.annotate(
                        f"{r['lam']:g}",
                        (r["ild@10"], r["ndcg@10"]),
                        fontsize=6,
                        xytext=(3, 3),
                        textcoords="offset points",
                        color=line.get_color(),
                    )
                picked = choice["per_method"].get(method)
                if picked is not None:
                    row = at_lambda(curve, method, picked["lam"])
                    ax.plot(row["ild@10"], row["ndcg@10"], "*", ms=12, color=line.get_color())
        ax.set_title(f"{result['dataset']} (test): ILD on {result['ild_space']}", fontsize=10)
        ax.set_xlabel("ILD@10 (higher = more diverse)")
        ax.set_ylabel("NDCG@10")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Diversity re-ranking over λ (labels); ★ = λ chosen on validation", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "diversity.png", dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--models", nargs="+", default=["text-fusion", "sasrec"])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--lams", nargs="+", type=float, default=list(LAMS))
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--max-loss", type=float, default=0.02)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--select-only", action="store_true", help="reuse the JSON files")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.select_only:
        for name in args.datasets:
            t0 = time.perf_counter()
            result = run_dataset(args, name)
            result["seconds"] = time.perf_counter() - t0
            write_dataset(args.out, result)
            print((args.out / f"diversity-{name}.md").read_text(), flush=True)
    results = [
        json.loads((args.out / f"diversity-{name}.json").read_text())
        for name in DATASETS
        if (args.out / f"diversity-{name}.json").exists()
    ]
    choice = select_default(results, args.max_loss)
    write_summary(args.out, results, choice)
    plot(args.out, results, choice)
    print((args.out / "diversity.md").read_text())


if __name__ == "__main__":
    main()
