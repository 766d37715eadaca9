"""Benchmark the CTR cross-encoder: click / like prediction, and re-ranking a retrieval model.

Protocol (leave-one-out by time, as every other benchmark here):

1. Data and split come from ``configs/sasrec-<dataset>.toml`` (the retrieval baseline's).
2. A share of users (``--ctr-heldout-users``) is kept away from the CTR model. It trains on
   the *train* part of the other users (explicit ratings: like iff rating >= 4; implicit
   data: one sampled unseen negative per interaction), at most ``--max-examples`` of them,
   and early-stops on the AUC of the validation interactions of ``--eval-users`` of them.
3. CTR metrics (AUC, GAUC per user, LogLoss) on (a) the interactions of randomly chosen
   held-out users, about ``--eval-examples`` in all (profiles from their own earlier
   history) and (b) the test interaction of ``--eval-users`` sampled training users (GAUC
   is undefined there on explicit data: one example per user).
4. Re-ranking: the retrieval model (SASRec trained with its config, or a saved model / run
   directory) scores the whole catalog for ``--users`` sampled test users; NDCG@10 and
   Recall@10 before and after the CTR model re-orders its top ``--top-n`` (history
   excluded), with the same :class:`lmrec.evaluation.Evaluator`.

Writes ``bench/results/ctr-<dataset>.json`` and ``.md``.

Usage::

    python bench/run_ctr.py --dataset ml-100k --strategy frozen
    python bench/run_ctr.py --dataset ml-100k --retrieval runs/sasrec-ml100k --strategy lora
    # a quick end-to-end check
    python bench/run_ctr.py --max-examples 500 --users 20 --epochs 1 --retrieval-epochs 1 \
        --eval-examples 200 --eval-users 100

CPU cost: every example, validation pair and re-ranked candidate runs the language model
over a whole (profile, item) pair, roughly 10-30 ms per pair on one core for MiniLM at
~100 tokens. ``frozen`` computes each pair's vector once (20k examples: some minutes);
the other strategies run forward and backward every epoch, so keep ``--max-examples`` in
the low thousands for them on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.config import load_config
from lmrec.data.schema import InteractionData
from lmrec.evaluation import EvalTask, markdown_table
from lmrec.experiment import make_evaluator, prepare_data, seed_everything
from lmrec.models import BaseRecommender, build_model, load_model
from lmrec.models.base import FitOptions
from lmrec.models.ctr import (
    CTRConfig,
    CTRExamples,
    CTRModel,
    RerankedRecommender,
    interaction_examples,
    merge_interactions,
)

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIGS = ROOT.parent / "configs"
DATASETS = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
STRATEGIES = ["frozen", "top_k", "full", "lora", "adalora", "prefix", "adapter"]
RANK_METRICS = ["ndcg@10", "recall@10", "mrr@10", "ndcg@50", "recall@50"]


def subset(data: InteractionData, users: np.ndarray) -> InteractionData:
    """The interactions of ``users`` only (same id maps)."""
    keep = np.isin(data.users, users)
    ratings = data.ratings[keep] if data.ratings is not None else None
    return InteractionData(
        data.user_map,
        data.item_map,
        data.users[keep],
        data.items[keep],
        data.timestamps[keep],
        ratings,
    )


def whole_users(examples: CTRExamples, limit: int, rng: np.random.Generator) -> CTRExamples:
    """Examples of randomly chosen users, whole users only, about ``limit`` in all (so that
    GAUC, a per-user AUC, keeps every chosen user's examples)."""
    users, counts = np.unique(examples.users, return_counts=True)
    order = rng.permutation(len(users))
    total = np.cumsum(counts[order])
    keep = users[order[: max(1, int(np.searchsorted(total, limit, side="right")))]]
    return examples.subset(np.isin(examples.users, keep))


def retrieval_model(
    spec: str, config_path: Path, overrides: dict[str, Any], data: Any, progress: bool
) -> tuple[BaseRecommender, float, str]:
    """The retrieval model: ``sasrec`` trains one; a path loads a model or run directory."""
    if spec == "sasrec":
        config = load_config(config_path, overrides)
        model = build_model(config.model)
        t0 = time.perf_counter()
        model.fit(data.train, data.valid_task(), FitOptions(show_progress=progress))
        return model, time.perf_counter() - t0, f"sasrec ({config_path.name})"
    path = Path(spec)
    model_dir = path / "model" if (path / "model" / "model.json").exists() else path
    return load_model(model_dir), 0.0, str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=list(DATASETS))
    parser.add_argument(
        "--retrieval", default="sasrec", help="'sasrec' (train it) or a model / run directory"
    )
    parser.add_argument("--strategy", default="frozen", choices=STRATEGIES)
    parser.add_argument("--max-examples", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=300, help="test users re-ranked")
    parser.add_argument("--top-n", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="CTR epochs (config default)")
    parser.add_argument("--lr", type=float, default=None, help="CTR peak learning rate")
    parser.add_argument("--retrieval-epochs", type=int, default=None)
    parser.add_argument("--ctr-heldout-users", type=float, default=0.1)
    parser.add_argument(
        "--eval-examples", type=int, default=5000, help="examples of the held-out users scored"
    )
    parser.add_argument(
        "--eval-users", type=int, default=1000, help="training users whose test item is scored"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)

    tag = DATASETS[args.dataset]
    config_path = CONFIGS / f"sasrec-{tag}.toml"
    overrides: dict[str, Any] = {"run.show_progress": args.progress, "run.threads": args.threads}
    if args.retrieval_epochs is not None:
        overrides["model.trainer.epochs"] = args.retrieval_epochs
    experiment = load_config(config_path, overrides)
    dataset, data = prepare_data(experiment)
    print(f"[{args.dataset}] {len(data.train)} train interactions", flush=True)

    # 1. Retrieval.
    retrieval, retrieval_seconds, retrieval_name = retrieval_model(
        args.retrieval, config_path, overrides, data, args.progress
    )

    # 2. CTR: trained on the train part of all but the held-out users.
    users_with_data = np.unique(data.train.users)
    n_heldout = round(args.ctr_heldout_users * len(users_with_data))
    heldout = np.sort(rng.choice(users_with_data, size=n_heldout, replace=False))
    ctr_users = np.setdiff1d(users_with_data, heldout)
    trainer: dict[str, Any] = {"seed": args.seed}
    if args.epochs is not None:
        trainer["epochs"] = args.epochs
    if args.lr is not None:
        trainer["lr"] = args.lr
    config = CTRConfig.model_validate(
        {
            "tuning": {"strategy": args.strategy},
            "max_examples": args.max_examples,
            "trainer": trainer,
        }
    )
    ctr = CTRModel(config)
    ctr_train = subset(data.train, ctr_users)
    train_examples = ctr.training_examples(ctr_train)
    valid_users = rng.choice(ctr_users, size=min(args.eval_users, len(ctr_users)), replace=False)
    valid = ctr.heldout_examples(data, "valid", users=set(valid_users.tolist()))
    t0 = time.perf_counter()
    options = FitOptions(show_progress=args.progress)
    report = ctr.fit(dataset, ctr_train, valid, options, examples=train_examples)
    ctr_seconds = time.perf_counter() - t0
    print(f"    CTR fit {ctr_seconds:.1f} s, best valid {report.best_valid}", flush=True)

    # 3. CTR metrics. Held-out users' profiles read their own earlier interactions.
    everything, _ = merge_interactions(data.train_and_valid(), data.test)
    heldout_examples = interaction_examples(
        subset(everything, heldout),
        profile_items=config.history_items,
        positive_threshold=config.positive_threshold,
        negatives_per_positive=config.negatives_per_positive,
        exclude=everything.sequences(),
        seed=args.seed + 3,
    )
    heldout_examples = whole_users(heldout_examples, args.eval_examples, rng)
    t0 = time.perf_counter()
    ctr_heldout = ctr.evaluate(heldout_examples, show_progress=args.progress)
    test_users = rng.choice(ctr_users, size=min(args.eval_users, len(ctr_users)), replace=False)
    ctr_test = ctr.evaluate(
        ctr.heldout_examples(data, "test", users=set(test_users.tolist())),
        show_progress=args.progress,
    )
    ctr_eval_seconds = time.perf_counter() - t0
    print(f"    CTR held-out users {ctr_heldout}", flush=True)
    print(f"    CTR test interactions {ctr_test}", flush=True)

    # 4. Re-ranking on sampled test users.
    full_task = data.test_task()
    pick = np.sort(rng.choice(len(full_task), size=min(args.users, len(full_task)), replace=False))
    task = EvalTask(
        full_task.users[pick],
        [full_task.histories[i] for i in pick],
        [full_task.targets[i] for i in pick],
        full_task.n_items,
    )
    evaluator = make_evaluator(experiment, dataset, data, args.progress)
    before = evaluator.evaluate(retrieval, task).metrics
    t0 = time.perf_counter()
    after = evaluator.evaluate(RerankedRecommender(retrieval, ctr, args.top_n), task).metrics
    rerank_seconds = time.perf_counter() - t0

    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
    }
    result = {
        "dataset": args.dataset,
        "retrieval": retrieval_name,
        "retrieval_train_seconds": retrieval_seconds,
        "ctr_config": config.model_dump(mode="json"),
        "ctr_trainable_parameters": ctr.trainable_parameters(),
        "ctr_train_examples": len(train_examples),
        "ctr_fit": report.to_dict(),
        "ctr_train_seconds": ctr_seconds,
        "ctr_eval_seconds": ctr_eval_seconds,
        "ctr_heldout_users": {"n_users": n_heldout, **ctr_heldout},
        "ctr_test_interactions": ctr_test,
        "rerank": {
            "users": len(task),
            "top_n": args.top_n,
            "before": {k: before[k] for k in RANK_METRICS if k in before},
            "after": {k: after[k] for k in RANK_METRICS if k in after},
            "seconds": rerank_seconds,
        },
        **meta,
    }
    write(args.out, args.dataset, result)
    print((args.out / f"ctr-{args.dataset}.md").read_text())


def write(out: Path, dataset: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ctr-{dataset}.json").write_text(json.dumps(result, indent=2) + "\n")
    ctr_rows = [
        {"examples": "held-out users (whole users sampled)", **result["ctr_heldout_users"]},
        {
            "examples": "test interaction of sampled training users",
            **result["ctr_test_interactions"],
        },
    ]
    for row in ctr_rows:  # counts print as integers
        for key in ("n_examples", "gauc_users", "n_users"):
            if key in row:
                row[key] = int(row[key])
    rr = result["rerank"]
    rank_rows = [
        {"model": result["retrieval"], **rr["before"]},
        {"model": f"{result['retrieval']} + CTR re-rank top {rr['top_n']}", **rr["after"]},
    ]
    strategy = result["ctr_config"]["tuning"]["strategy"]
    lines = [
        markdown_table(
            ctr_rows,
            ["examples", "auc", "gauc", "logloss", "n_examples", "positive_rate", "gauc_users"],
            title=f"{dataset}: CTR cross-encoder ({strategy}), "
            f"{result['ctr_train_examples']} training examples",
            float_fmt=".4f",
        ),
        "",
        markdown_table(
            rank_rows,
            ["model", *RANK_METRICS],
            title=f"{dataset}: re-ranking on {rr['users']} sampled test users (leave-one-out)",
            float_fmt=".4f",
        ),
        "",
        f"CTR training {result['ctr_train_seconds']:.1f} s "
        f"({result['ctr_trainable_parameters']} trainable parameters); re-ranking "
        f"{rr['seconds']:.1f} s. {result['machine']}, threads {result['threads']}, "
        f"`{result['command']}`, {result['date']}.",
    ]
    (out / f"ctr-{dataset}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
