"""Benchmark differential privacy: the privacy/utility curve and the membership-inference audit.

Protocol, on each dataset (ML-100K, Amazon Scientific):

1. The text sequential recommender with a frozen encoder (small settings so that the whole
   benchmark fits about an hour of one CPU thread: ``dim`` 64, one block, ``max_len`` 50 /
   20, 10 / 5 epochs, batch 128 / 256, early stopping on validation NDCG@10 with patience 3)
   is trained with DP-SGD (:mod:`lmrec.privacy.dp`) at target ε ∈ {1, 3, 8} (δ = 1/N,
   N = training users: user-level DP; per-user clipping norm 1.0, RDP accountant) and
   without DP (ε = ∞), on the usual leave-one-out split. Reported: test NDCG@10 and
   Recall@10 (full ranking), the spent ε and the noise multiplier.
2. The membership-inference audit (:mod:`lmrec.privacy.audit`, loss-threshold attack, AUC
   with a 95% bootstrap interval) of every run: on leave-one-out runs the members are each
   user's last training interaction and the non-members the same users' test interaction
   (the ``interactions`` design, confounded by time, see the module). The clean ``users``
   design needs a ``cold_user`` split: the same four models are trained on it too (ML-100K
   by default, ``--cold-datasets``), with training users as members and the never-seen test
   users as non-members.

The selection of the best epoch on validation data is not covered by ε (reported as such);
everything else the models saw is.

Writes ``bench/results/privacy.json``, ``privacy.md`` and ``privacy.png``. Finished runs are
reused (their run directories under ``--runs``), so an interrupted benchmark continues.

Usage::

    python bench/run_privacy.py                         # ~60 min of one CPU thread
    python bench/run_privacy.py --quick                 # smoke test (1 epoch, ML-100K only)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lmrec.config import parse_config
from lmrec.evaluation import markdown_table
from lmrec.experiment import run_experiment
from lmrec.privacy.audit import AUDIT_FILE, audit_run

RESULTS = Path(__file__).resolve().parent / "results"
EPSILONS: list[float | None] = [1.0, 3.0, 8.0, None]  # None: no DP (ε = ∞)
SETTINGS: dict[str, dict[str, Any]] = {
    "ml-100k": {"max_len": 50, "epochs": 10, "batch_size": 128},
    "amazon-scientific": {"max_len": 20, "epochs": 5, "batch_size": 256},
}


def experiment(dataset: str, split: str, epsilon: float | None, quick: bool) -> dict[str, Any]:
    s = SETTINGS[dataset]
    trainer: dict[str, Any] = {
        "epochs": 1 if quick else s["epochs"],
        "batch_size": s["batch_size"],
        "lr": 1e-3,
        "patience": 3,
        "seed": 42,
    }
    if epsilon is not None:
        trainer["dp"] = {"target_epsilon": epsilon, "max_grad_norm": 1.0, "accountant": "rdp"}
    return {
        "data": {"dataset": dataset, "split": split},
        "model": {
            "type": "text_seq",
            "encoder": {"cache": True},
            "dim": 64,
            "n_layers": 1,
            "n_heads": 2,
            "max_len": s["max_len"],
            "dropout": 0.2,
            "adaptor_dropout": 0.1,
            "trainer": trainer,
        },
        "run": {"seed": 42, "threads": 1, "show_progress": False},
    }


def run_name(dataset: str, split: str, epsilon: float | None) -> str:
    eps = "inf" if epsilon is None else f"{epsilon:g}"
    return f"{dataset}-{split}-eps{eps}"


def run_one(
    dataset: str, split: str, epsilon: float | None, runs: Path, quick: bool
) -> dict[str, Any]:
    run_dir = runs / run_name(dataset, split, epsilon)
    record_file = run_dir / "result.json"
    if not record_file.exists():
        config = parse_config(experiment(dataset, split, epsilon, quick), "bench")
        run_experiment(config, run_dir)
    record = json.loads(record_file.read_text())
    if not (run_dir / AUDIT_FILE).exists():
        audit_run(run_dir, max_users=2000, bootstrap=1000, seed=0)
    audit = json.loads((run_dir / AUDIT_FILE).read_text())
    privacy = record.get("privacy") or {}
    fit = record.get("fit") or {}
    return {
        "dataset": dataset,
        "split": split,
        "target_epsilon": epsilon if epsilon is not None else math.inf,
        "epsilon": privacy.get("epsilon", math.inf),
        "delta": privacy.get("delta"),
        "noise_multiplier": privacy.get("noise_multiplier"),
        "steps": privacy.get("steps"),
        "ndcg@10": record["metrics"].get("ndcg@10"),
        "recall@10": record["metrics"].get("recall@10"),
        "epochs": fit.get("epochs"),
        "best_epoch": fit.get("best_epoch"),
        "train_seconds": record.get("train_seconds"),
        "audit_design": audit["design"],
        "audit_auc": audit["auc"],
        "audit_ci_low": audit["ci_low"],
        "audit_ci_high": audit["ci_high"],
        "audit_advantage": audit["advantage"],
        "audit_members": audit["n_members"],
        "audit_nonmembers": audit["n_nonmembers"],
    }


def _eps(value: Any) -> str:
    return "∞" if value is None or math.isinf(float(value)) else f"{float(value):.2f}"


def markdown(results: dict[str, Any]) -> str:
    rows = results["rows"]
    parts = [
        "### Privacy/utility: DP-SGD text_seq (frozen encoder), user-level DP, δ = 1/N",
        "",
    ]
    table_rows = [
        {
            "dataset": r["dataset"],
            "split": r["split"],
            "target ε": _eps(r["target_epsilon"]),
            "spent ε": _eps(r["epsilon"]),
            "σ": r["noise_multiplier"],
            "ndcg@10": r["ndcg@10"] if r["split"] == "leave_one_out" else None,
            "recall@10": r["recall@10"] if r["split"] == "leave_one_out" else None,
            "attack AUC": r["audit_auc"],
            "95% CI": f"{r['audit_ci_low']:.3f}–{r['audit_ci_high']:.3f}",
            "design": r["audit_design"],
            "epochs": r["epochs"],
            "train s": r["train_seconds"],
        }
        for r in rows
    ]
    columns = list(table_rows[0]) if table_rows else []
    parts.append(markdown_table(table_rows, columns))
    meta = results["meta"]
    parts += [
        "",
        "`ndcg@10`/`recall@10`: leave-one-out test, full ranking (cold_user rows train the "
        "audit's clean design only; their test users arrive with no history). `attack AUC`: "
        "loss-threshold membership inference, 0.5 = nothing leaks; `interactions` design: "
        "each user's last training interaction vs. the same user's held-out test "
        "interaction (confounded by time); `users` design (cold_user split): training users "
        "vs. users never trained on. The best epoch is chosen on validation data, which ε "
        "does not cover.",
        "",
        f"Machine: {meta['machine']}, torch threads {meta['threads']}; command "
        f"`{meta['command']}`; {meta['date']}.",
    ]
    return "\n".join(parts) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    positions = {1.0: 0, 3.0: 1, 8.0: 2, math.inf: 3}
    labels = ["1", "3", "8", "∞"]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        loo = [r for r in rows if r["dataset"] == dataset and r["split"] == "leave_one_out"]
        loo.sort(key=lambda r: positions[float(r["target_epsilon"])])
        xs = [positions[float(r["target_epsilon"])] for r in loo]
        axes[0].plot(xs, [r["ndcg@10"] for r in loo], marker="o", label=dataset)
        for split in ("leave_one_out", "cold_user"):
            part = [r for r in rows if r["dataset"] == dataset and r["split"] == split]
            part.sort(key=lambda r: positions[float(r["target_epsilon"])])
            if not part:
                continue
            xs = [positions[float(r["target_epsilon"])] for r in part]
            ys = [r["audit_auc"] for r in part]
            err = [
                [y - r["audit_ci_low"] for y, r in zip(ys, part, strict=True)],
                [r["audit_ci_high"] - y for y, r in zip(ys, part, strict=True)],
            ]
            design = part[0]["audit_design"]
            axes[1].errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=f"{dataset} ({design})")
    axes[0].set(title="Utility: test NDCG@10", xlabel="target ε (user-level, δ = 1/N)")
    axes[1].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes[1].set(title="Membership-inference attack AUC", xlabel="target ε")
    for ax in axes:
        ax.set_xticks(range(4), labels)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETTINGS))
    parser.add_argument("--cold-datasets", nargs="*", default=["ml-100k"])
    parser.add_argument("--runs", default="runs/privacy", help="where the run directories go")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 epoch, ML-100K only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    datasets = ["ml-100k"] if args.quick else args.datasets
    cold = [] if args.quick else args.cold_datasets
    runs = Path(args.runs) / ("quick" if args.quick else "")
    plan = [(d, "leave_one_out", e) for d in datasets for e in EPSILONS]
    plan += [(d, "cold_user", e) for d in cold for e in EPSILONS]
    results: dict[str, Any] = {
        "meta": {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "threads": args.threads,
            "command": "python " + " ".join(["bench/run_privacy.py", *sys.argv[1:]]),
            "date": datetime.now(UTC).date().isoformat(),
            "settings": SETTINGS,
        },
        "rows": [],
    }
    out = RESULTS / ("privacy-quick" if args.quick else "privacy")
    start = time.perf_counter()
    for dataset, split, epsilon in plan:
        t0 = time.perf_counter()
        row = run_one(dataset, split, epsilon, runs, args.quick)
        results["rows"].append(row)
        print(
            f"{dataset} {split} ε={_eps(epsilon)}: spent {_eps(row['epsilon'])}, "
            f"ndcg@10 {row['ndcg@10']:.4f}, attack AUC {row['audit_auc']:.4f} "
            f"[{row['audit_ci_low']:.4f}, {row['audit_ci_high']:.4f}] "
            f"({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
        results["meta"]["seconds"] = time.perf_counter() - start
        out.with_suffix(".json").write_text(
            json.dumps(results, indent=2, allow_nan=True, default=str) + "\n"
        )
        out.with_suffix(".md").write_text(markdown(results))
        plot(results, out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
