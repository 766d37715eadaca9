"""Benchmark the baselines and the text models on MovieLens-100K and Amazon Scientific.

Protocol: leave-one-out by time (last interaction = test, second last = validation), full
ranking over the whole catalog with the user's history excluded and pessimistic ties, every
interaction as implicit feedback, no filtering. Hyperparameters come from
``configs/<model>-<dataset>.toml`` (chosen on validation NDCG@10, see ``bench/notes``).

Writes ``bench/results/<dataset>.json`` (a list of rows) and ``bench/results/<dataset>.md``.

Usage::

    python bench/run_baselines.py                      # both datasets, the baselines
    python bench/run_baselines.py --datasets ml-100k --models pop itemknn
    python bench/run_baselines.py --models text-mean text-frozen text-fusion text-topk \
        text-lora text-full --no-implicit             # the language-model rows
    python bench/run_baselines.py --content           # + content prior, from runs/bench/
    python bench/run_baselines.py --datasets amazon-scientific --models sasrec-x3 \
        --no-implicit                                 # three SASRec seeds averaged
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

from lmrec.config import ExperimentConfig, load_config
from lmrec.evaluation import RunRecord, markdown_table
from lmrec.experiment import make_evaluator, prepare_data, run_experiment

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIGS = ROOT.parent / "configs"

DATASETS = {"ml-100k": "ml100k", "amazon-scientific": "scientific"}
MODELS = ["pop", "itemknn", "bpr", "sasrec"]
ENSEMBLES = ["sasrec-x3"]
"""Seed ensembles (``SASRecConfig.members``), run only when named: ``--models sasrec-x3``."""
TEXT_MODELS = ["text-mean", "text-frozen", "text-fusion", "text-topk", "text-lora", "text-full"]
CONTENT_MODELS = ["text-frozen", "text-fusion"]
"""Rows also shown with the content prior (``--content``: ``<model>+content``)."""
COLUMNS = ["model", "ndcg@10", "recall@10", "mrr@10", "ndcg@50", "recall@50", "coverage@10"]

# Test NDCG@10 / Recall@10 measured with RecBole 1.2.1 and `implicit` 0.7.3 on this kind of
# machine under the same protocol (quoted from the project's issue tracker, not re-run here).
REFERENCES: dict[str, dict[str, tuple[float, float, float | None]]] = {
    "ml-100k": {
        "RecBole Pop": (0.0321, 0.0732, None),
        "RecBole ItemKNN": (0.0630, 0.1145, None),
        "RecBole BPR": (0.0613, 0.1198, None),
        "RecBole SASRec (CE)": (0.0572, 0.1251, 142.0),
        "implicit ALS": (0.0702, 0.1357, None),
        "implicit BPR": (0.0732, 0.1357, None),
    },
    "amazon-scientific": {
        "RecBole BPR": (0.0404, 0.0643, None),
        "RecBole SASRec (CE)": (0.0561, 0.0980, 57.0),
    },
}


class _FactorScorer:
    """Scores from fixed user and item factor matrices (for the `implicit` reference rows)."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.users, self.items = users, items

    def score(self, users: np.ndarray, histories: Any) -> np.ndarray:
        return (self.users[users] @ self.items.T).astype(np.float32)


def implicit_rows(config: ExperimentConfig, threads: int) -> list[dict[str, Any]]:
    """Run `implicit` BPR and ALS as external reference rows (skipped when not installed)."""
    try:
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking
    except ImportError:
        print("implicit is not installed: skipping its reference rows", file=sys.stderr)
        return []
    dataset, data = prepare_data(config)
    matrix = data.train.matrix().tocsr()
    evaluator = make_evaluator(config, dataset, data)
    rows = []
    makers = {
        "implicit-bpr": lambda: BayesianPersonalizedRanking(
            factors=64,
            learning_rate=0.01,
            regularization=0.01,
            iterations=100,
            num_threads=threads,
            random_state=config.run.seed,
        ),
        "implicit-als": lambda: AlternatingLeastSquares(
            factors=64,
            regularization=0.05,
            iterations=15,
            num_threads=threads,
            random_state=config.run.seed,
        ),
    }
    for name, make in makers.items():
        model = make()
        t0 = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds = time.perf_counter() - t0
        scorer = _FactorScorer(np.asarray(model.user_factors), np.asarray(model.item_factors))
        result = evaluator.evaluate(scorer, data.test_task())
        rows.append(
            {"model": name, "metrics": result.metrics, "train_seconds": seconds, "external": True}
        )
    return rows


def encoder_stage_won(fit: dict[str, Any]) -> bool | None:
    """For a warm-started trained encoder: whether its encoder stage beat the frozen stage
    on validation (``None`` for models without such a stage)."""
    history = fit.get("history") or []
    if not any(h.get("stage") == 2.0 for h in history):
        return None
    first = sum(1 for h in history if h.get("stage") == 1.0)
    best = fit.get("best_epoch")
    return best is not None and best > first


def _stage_of_run(row: dict[str, Any], dataset: str) -> bool | None:
    """``encoder_stage_won`` of a committed row, read back from its run directory."""
    if "encoder_stage_won" in row:
        return row["encoder_stage_won"]
    record = ROOT.parent / "runs" / "bench" / f"{row['model']}-{DATASETS[dataset]}" / "result.json"
    if not record.exists():
        return None
    return encoder_stage_won(json.loads(record.read_text()).get("fit") or {})


def make_row(name: str, path: Path, rec: RunRecord, meta: dict[str, Any]) -> dict[str, Any]:
    """One table row from a run record."""
    fit = rec.fit or {}
    epochs = fit.get("epochs") or 0
    iterative = bool(epochs and fit.get("history"))  # pop and itemknn have no epochs
    return {
        "model": name,
        "config": str(path.relative_to(ROOT.parent)),
        "metrics": rec.metrics,
        "slice_metrics": rec.slice_metrics,
        "standard_errors": rec.standard_errors,
        "train_seconds": rec.train_seconds,
        "eval_seconds": rec.eval_seconds,
        "epochs": epochs,
        "best_epoch": fit.get("best_epoch"),
        "seconds_per_epoch": rec.train_seconds / epochs if iterative else None,
        "seconds_to_best": fit.get("seconds_to_best"),
        "encode_seconds": fit.get("encode_seconds"),
        "encoder_stage_won": encoder_stage_won(fit),
        "best_valid_ndcg@10": (fit.get("best_valid") or {}).get("ndcg@10"),
        **meta,
    }


def collect_runs(dataset: str, models: list[str], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows from finished run directories (``runs/bench/<model>-<dataset>/result.json``)."""
    tag = DATASETS[dataset]
    rows = []
    for name in models:
        record = ROOT.parent / "runs" / "bench" / f"{name}-{tag}" / "result.json"
        if record.exists():
            rows.append(
                make_row(name, CONFIGS / f"{name}-{tag}.toml", RunRecord.read(record), meta)
            )
    return rows


def content_rows(dataset: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """``<model>+content`` rows: the saved ``runs/bench/`` text models with the content prior,
    its weight chosen on the validation set (``tune_content_weight``), evaluated on test.

    The prior changes no training (``content_weight = "auto"`` chooses it after training), so
    the saved models are the ones ``lmrec train`` with ``"auto"`` would fit.
    """
    from lmrec.models import load_model
    from lmrec.models.text import TextSeqRecommender

    tag = DATASETS[dataset]
    rows = []
    for name in CONTENT_MODELS:
        run = ROOT.parent / "runs" / "bench" / f"{name}-{tag}"
        if not (run / "result.json").exists():
            print(f"[{dataset}] {run} is missing: no {name}+content row", file=sys.stderr)
            continue
        path = CONFIGS / f"{name}-{tag}.toml"
        config = load_config(path, {"run.show_progress": False})
        data_set, data = prepare_data(config)
        model = load_model(run / "model")
        assert isinstance(model, TextSeqRecommender)
        start = time.perf_counter()
        values = model.tune_content_weight(data.valid_task())
        tune_seconds = time.perf_counter() - start
        result = make_evaluator(config, data_set, data).evaluate(model, data.test_task())
        record = RunRecord.read(run / "result.json")
        row = make_row(f"{name}+content", path, record, meta)
        row.update(
            metrics=result.metrics,
            slice_metrics=result.slices,
            content_weight=model.content_weight,
            content_validation={str(w): v for w, v in values.items()},
            content_tune_seconds=tune_seconds,
        )
        print(
            f"[{dataset}] {name}+content: weight {model.content_weight} (validation "
            f"{values}), test ndcg@10 {result.metrics['ndcg@10']:.4f} "
            f"(without: {record.metrics['ndcg@10']:.4f})",
            flush=True,
        )
        rows.append(row)
    return rows


def run_dataset(
    dataset: str, models: list[str], threads: int, with_implicit: bool, meta: dict[str, Any]
) -> list[dict[str, Any]]:
    tag = DATASETS[dataset]
    rows: list[dict[str, Any]] = []
    base: ExperimentConfig | None = None
    for name in models:
        path = CONFIGS / f"{name}-{tag}.toml"
        if name in ENSEMBLES and not path.exists():
            print(f"[{dataset}] no {path.name}: no {name} row", file=sys.stderr)
            continue
        config = load_config(
            path,
            {"run.output_dir": "runs/bench", "run.show_progress": False, "run.threads": threads},
        )
        base = base or config
        print(f"[{dataset}] {name} ...", flush=True)
        out = run_experiment(config)
        rec = out.record
        rows.append(make_row(name, path, rec, meta))
        print(
            f"    ndcg@10 {rec.metrics['ndcg@10']:.4f}  recall@10 {rec.metrics['recall@10']:.4f}"
            f"  ({rec.train_seconds:.1f} s)",
            flush=True,
        )
    if with_implicit and base is not None:
        rows.extend({**r, **meta} for r in implicit_rows(base, threads))
    return rows


def merge_rows(dataset: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """New rows replace the committed rows of the same model; other models' rows are kept.

    Lets one model be re-run (``--models sasrec``) without losing the rest of the table;
    every row records its own command, threads and date.
    """
    path = RESULTS / f"{dataset}.json"
    old = json.loads(path.read_text()) if path.exists() else []
    fresh = {r["model"] for r in rows}
    kept = [r for r in old if r["model"] not in fresh]
    names = [*MODELS, *ENSEMBLES, "implicit-bpr", "implicit-als", *TEXT_MODELS]
    names += [f"{m}+content" for m in CONTENT_MODELS]
    order = {m: i for i, m in enumerate(names)}
    return sorted(kept + rows, key=lambda r: order.get(r["model"], len(order)))


def write_results(dataset: str, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{dataset}.json").write_text(json.dumps(rows, indent=2) + "\n")
    pop = next((r for r in rows if r["model"] == "pop"), None)
    sasrec = next((r for r in rows if r["model"] == "sasrec"), None)
    flat = []
    for r in rows:
        row = {
            "model": r["model"],
            **r["metrics"],
            "± ndcg@10": (r.get("standard_errors") or {}).get("ndcg@10"),
            "train s": r["train_seconds"],
            "s/epoch": r.get("seconds_per_epoch"),
            "s to best": r.get("seconds_to_best"),
            "encode s": r.get("encode_seconds"),
            "enc. stage": {True: "won", False: "lost", None: None}[_stage_of_run(r, dataset)],
        }
        if pop:
            row["vs pop"] = r["metrics"]["ndcg@10"] / pop["metrics"]["ndcg@10"]
        if sasrec:
            row["vs sasrec"] = r["metrics"]["ndcg@10"] / sasrec["metrics"]["ndcg@10"]
        flat.append(row)
    cols = [COLUMNS[0], COLUMNS[1], "± ndcg@10", *COLUMNS[2:]]
    cols += ["train s", "s/epoch", "s to best", "encode s", "enc. stage", "vs pop"]
    cols.append("vs sasrec")
    lines = [
        markdown_table(
            flat, cols, title=f"{dataset}: leave-one-out, full ranking, test split", float_fmt=".4f"
        ),
        "",
        "`enc. stage`: for the trained-encoder rows (warm start), whether training the encoder "
        "beat the frozen stage on validation; when it `lost`, the frozen stage's model is kept, "
        "so the row equals the frozen model trained with the same settings. "
        "`train s` includes `encode s`, the seconds the language model ran over item text "
        "(a frozen encoder's vectors come from the on-disk cache when it is warm). "
        "`± ndcg@10`: the standard error of NDCG@10 over the test users (`–` for rows run "
        "before it was recorded). "
        "Ratios compare NDCG@10 between rows of this table. Each row's machine, torch threads, "
        "command and date are in the JSON file next to this one; the last run: "
        f"{meta['machine']}, threads {meta['threads']}, `{meta['command']}`, {meta['date']}.",
        "",
        "Reference numbers (test NDCG@10 / Recall@10, same protocol, from the issue tracker):",
        "",
        "| reference | NDCG@10 | Recall@10 | s/epoch |",
        "|---|---|---|---|",
    ]
    for name, (ndcg, recall, spe) in REFERENCES.get(dataset, {}).items():
        lines.append(f"| {name} | {ndcg:.4f} | {recall:.4f} | {spe if spe else '–'} |")
    (RESULTS / f"{dataset}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--models", nargs="+", default=MODELS, choices=MODELS + ENSEMBLES + TEXT_MODELS
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-implicit", action="store_true", help="skip the implicit rows")
    parser.add_argument(
        "--from-runs",
        action="store_true",
        help="collect finished runs/bench/ run directories instead of training",
    )
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the Markdown from the JSON, run nothing"
    )
    parser.add_argument(
        "--content",
        action="store_true",
        help="only the <model>+content rows: the runs/bench/ text models with the content "
        "prior chosen on validation",
    )
    args = parser.parse_args()
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "command": "python "
        + " ".join(a for a in sys.argv if a != "--from-runs")
        + (" (rows collected from runs/bench/ after the run)" if args.from_runs else ""),
        "date": time.strftime("%Y-%m-%d"),
    }
    for dataset in args.datasets:
        if args.tables_only:
            rows = json.loads((RESULTS / f"{dataset}.json").read_text())
            latest = max(rows, key=lambda r: str(r.get("date") or ""))  # the last run's meta
            write_results(dataset, rows, latest)
            continue
        if args.content:
            rows = content_rows(dataset, meta)
        elif args.from_runs:
            rows = collect_runs(dataset, args.models, meta)
        else:
            rows = run_dataset(dataset, args.models, args.threads, not args.no_implicit, meta)
        write_results(dataset, merge_rows(dataset, rows), meta)
        print((RESULTS / f"{dataset}.md").read_text())


if __name__ == "__main__":
    main()
