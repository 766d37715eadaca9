"""SASRec trained with several seeds, alone and averaged: how much of the gap to ItemKNN is
the variance of one training run?

Each member is ``configs/sasrec-<dataset>.toml`` with ``model.trainer.seed`` set (the
benchmark's own run is seed 42), trained and early-stopped exactly as ``lmrec train`` does
(the run directories are kept under ``--runs-dir`` and reused when present). The ensemble of
the first ``k`` members scores an item by the mean of the members' log-softmax scores; ``k``
is not chosen on validation (validation NDCG@10 rises with every member): every ``k`` is
shown, on validation and test, next to the benchmark's ItemKNN row. Same protocol as the
benchmark (full ranking, history excluded, pessimistic ties).

Writes ``bench/results/seed-ensemble-<dataset>.json`` and ``.md``.

Usage::

    OMP_NUM_THREADS=1 python bench/seed_ensemble.py --dataset amazon-scientific \\
        --seeds 42 43 44 45 46
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.config import load_config
from lmrec.evaluation import Evaluator
from lmrec.experiment import load_run_model, prepare_data, run_experiment
from lmrec.models import BaseRecommender

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIGS = ROOT.parent / "configs"
SHORT = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
METRICS = ("ndcg@10", "recall@10", "mrr@10", "ndcg@50", "recall@50")


class MeanLogSoftmax:
    """Scores of several models averaged after a log-softmax over the catalog each."""

    def __init__(self, models: Sequence[BaseRecommender]) -> None:
        self.models = list(models)
        self.name = f"ensemble of {len(self.models)}"

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        total: np.ndarray | None = None
        for model in self.models:
            scores = torch.from_numpy(np.asarray(model.score(users, histories), np.float32))
            part = torch.log_softmax(scores, dim=1).numpy()
            total = part if total is None else total + part
        assert total is not None
        return total / len(self.models)


def member(dataset: str, seed: int, runs_dir: Path) -> tuple[BaseRecommender, dict[str, Any]]:
    """The run of one seed, trained now unless its directory already holds it."""
    run_dir = runs_dir / f"sasrec-{SHORT[dataset]}-seed{seed}"
    if not (run_dir / "result.json").exists():
        config = load_config(
            CONFIGS / f"sasrec-{SHORT[dataset]}.toml",
            {"model.trainer.seed": seed, "run.show_progress": False},
        )
        run_experiment(config, run_dir)
    record = json.loads((run_dir / "result.json").read_text())
    return load_run_model(run_dir), record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="amazon-scientific", choices=sorted(SHORT))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--runs-dir", type=Path, default=ROOT.parent / "runs" / "seed-ensemble")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(CONFIGS / f"sasrec-{SHORT[args.dataset]}.toml")
    _, data = prepare_data(config)
    tasks = {"valid": data.valid_task(), "test": data.test_task()}
    evaluator = Evaluator(ks=(10, 50), batch_size=256)
    models, rows = [], []
    for seed in args.seeds:
        model, record = member(args.dataset, seed, args.runs_dir)
        models.append(model)
        fit = record.get("fit", {})
        rows.append(
            {
                "model": f"sasrec seed {seed}",
                "members": 1,
                "best_epoch": fit.get("best_epoch"),
                "train_seconds": record.get("train_seconds"),
                **evaluate(evaluator, model, tasks),
            }
        )
        print(rows[-1], flush=True)
    for k in range(2, len(models) + 1):
        rows.append(
            {
                "model": f"sasrec, mean of seeds {', '.join(map(str, args.seeds[:k]))}",
                "members": k,
                **evaluate(evaluator, MeanLogSoftmax(models[:k]), tasks),
            }
        )
        print(rows[-1], flush=True)
    write(args.dataset, rows, "python " + " ".join(sys.argv), args.threads)


def evaluate(
    evaluator: Evaluator, model: Any, tasks: dict[str, Any]
) -> dict[str, dict[str, float]]:
    out = {}
    for part, task in tasks.items():
        result = evaluator.evaluate(model, task)
        values = {m: float(result.metrics[m]) for m in METRICS}
        values["ndcg@10_se"] = float(result.standard_errors["ndcg@10"])
        out[part] = values
    return out


def write(dataset: str, rows: list[dict[str, Any]], command: str, threads: int) -> None:
    baseline = json.loads((RESULTS / f"{dataset}.json").read_text())
    itemknn = next(r for r in baseline if r["model"] == "itemknn")["metrics"]
    meta = {
        "date": date.today().isoformat(),
        "command": command,
        "machine": f"{platform.machine()}, 2 cores, torch threads {threads}",
        "itemknn_test": {m: itemknn[m] for m in METRICS if m in itemknn},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"seed-ensemble-{dataset}"
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    lines = [
        f"# SASRec seeds and their ensembles on {dataset}",
        "",
        f"`{command}` ({meta['date']}, {meta['machine']}). Members: the SASRec config with "
        "another trainer seed, each early-stopped on validation; ensembles average the "
        "members' log-softmax scores. ItemKNN (the benchmark's row): test NDCG@10 "
        f"{itemknn['ndcg@10']:.4f}, Recall@10 {itemknn['recall@10']:.4f}.",
        "",
        "| model | valid NDCG@10 | test NDCG@10 | ± | test R@10 | test NDCG@50 | test R@50 "
        "| vs ItemKNN (test NDCG@10) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        v, t = r["valid"], r["test"]
        lines.append(
            f"| {r['model']} | {v['ndcg@10']:.4f} | {t['ndcg@10']:.4f} | {t['ndcg@10_se']:.4f} "
            f"| {t['recall@10']:.4f} | {t['ndcg@50']:.4f} | {t['recall@50']:.4f} "
            f"| {t['ndcg@10'] / itemknn['ndcg@10']:.3f} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
