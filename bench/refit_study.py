"""Refit on train + validation, then test: does the ranking of SASRec and ItemKNN change?

The benchmark (``run_baselines.py``) fits every model on the training part, chooses its
epoch on validation and tests with train + validation as the history. A common alternative
protocol refits the chosen configuration on train + validation (the validation targets
become training data, so the model has seen each user's most recent transition) before
testing. This study runs that protocol for the given models on one dataset:

* ItemKNN: its config, fitted on train + validation;
* SASRec: its config with early stopping off, trained for ``--sasrec-epochs`` epochs (the
  best validation epoch of its benchmark run) on train + validation.

The test protocol is the benchmark's (full ranking, history excluded, pessimistic ties).
Writes ``bench/results/refit-<dataset>.json`` and ``.md`` with the benchmark's own
(train-only) test rows of the same models next to the refitted ones.

Usage::

    python bench/refit_study.py --dataset amazon-scientific --sasrec-epochs 45
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import torch

from lmrec.config import load_config
from lmrec.experiment import make_evaluator, prepare_data, seed_everything
from lmrec.models import build_model
from lmrec.models.base import FitOptions

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIGS = ROOT.parent / "configs"
SHORT = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
METRICS = ("ndcg@10", "recall@10", "mrr@10", "ndcg@50", "recall@50")


def refit(dataset: str, name: str, epochs: int | None) -> dict[str, Any]:
    config = load_config(CONFIGS / f"{name}-{SHORT[dataset]}.toml")
    seed_everything(config.run.seed)
    data_set, data = prepare_data(config)
    model_config = config.model
    trainer = getattr(model_config, "trainer", None)
    if trainer is not None:
        if epochs is None:
            raise SystemExit(f"{name}: give --sasrec-epochs (its best validation epoch)")
        trainer = trainer.model_copy(update={"epochs": epochs, "patience": None})
        model_config = model_config.model_copy(update={"trainer": trainer})
    model = build_model(model_config)
    t0 = time.perf_counter()
    model.fit(data.train_and_valid(), None, FitOptions(show_progress=False))
    seconds = time.perf_counter() - t0
    result = make_evaluator(config, data_set, data).evaluate(model, data.test_task())
    return {
        "model": name,
        "protocol": "refit on train + valid",
        "epochs": epochs if trainer is not None else None,
        "metrics": {m: result.metrics[m] for m in METRICS},
        "train_seconds": seconds,
    }


def benchmark_rows(dataset: str, names: list[str]) -> list[dict[str, Any]]:
    rows = json.loads((RESULTS / f"{dataset}.json").read_text())
    out = []
    for row in rows:
        if row["model"] in names:
            out.append(
                {
                    "model": row["model"],
                    "protocol": "fit on train (the benchmark row)",
                    "epochs": None,
                    "metrics": {m: row["metrics"][m] for m in METRICS},
                    "train_seconds": row.get("train_seconds"),
                }
            )
    return out


def write(dataset: str, rows: list[dict[str, Any]], command: str) -> None:
    (RESULTS / f"refit-{dataset}.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"# Refit on train + validation: {dataset}",
        "",
        f"`{command}` ({date.today().isoformat()}, {platform.machine()}, "
        f"torch threads {torch.get_num_threads()}). Test split, full ranking, history excluded.",
        "",
        "| model | protocol | epochs | " + " | ".join(METRICS) + " | train s |",
        "|---|---|---:|" + "---:|" * (len(METRICS) + 1),
    ]
    for r in rows:
        cells = " | ".join(f"{r['metrics'][m]:.4f}" for m in METRICS)
        epochs = r["epochs"] if r["epochs"] is not None else "–"
        secs = f"{r['train_seconds']:.1f}" if r["train_seconds"] is not None else "–"
        lines.append(f"| {r['model']} | {r['protocol']} | {epochs} | {cells} | {secs} |")
    (RESULTS / f"refit-{dataset}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="amazon-scientific", choices=sorted(SHORT))
    parser.add_argument("--models", nargs="+", default=["itemknn", "sasrec"])
    parser.add_argument("--sasrec-epochs", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = benchmark_rows(args.dataset, args.models)
    for name in args.models:
        epochs = args.sasrec_epochs if name == "sasrec" else None
        row = refit(args.dataset, name, epochs)
        print(row["model"], row["protocol"], {k: round(v, 4) for k, v in row["metrics"].items()})
        rows.append(row)
    command = "python bench/refit_study.py --dataset " + args.dataset
    command += " --models " + " ".join(args.models)
    if args.sasrec_epochs is not None:
        command += f" --sasrec-epochs {args.sasrec_epochs}"
    write(args.dataset, rows, command)


if __name__ == "__main__":
    main()
