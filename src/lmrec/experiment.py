"""One experiment end to end: load, split, fit, evaluate, write a run directory.

A run directory holds everything needed to evaluate again or to recommend without the
original dataset::

    runs/<name>/
      config.json     the validated experiment config
      model/          the fitted model (``load_model``)
      catalog.json    item ids with display titles and categories
      result.json     the run record (metrics, slices, timings, versions, commit)
      result.md       the same as a Markdown table
      learning_curve.png  validation NDCG@10 per epoch (trained models)
      train_log.jsonl per-epoch log of trained models

Under ``torchrun`` (see :mod:`lmrec.training.distributed`) every process trains, the models
built on :class:`lmrec.training.Trainer` with ``DistributedDataParallel``; only rank 0 writes
the run directory and evaluates.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.config import ExperimentConfig, parse_config
from lmrec.data import CATEGORIES, ITEM, Dataset
from lmrec.data.registry import load_dataset
from lmrec.data.splitting import EncodedSplit, encode_split, implicit_feedback, split_dataset
from lmrec.errors import ModelFileError
from lmrec.evaluation import (
    EvalResult,
    Evaluator,
    RunRecord,
    markdown_table,
    plot_learning_curve,
)
from lmrec.evaluation.task import EvalTask
from lmrec.models import BaseRecommender, build_model, load_model
from lmrec.models.base import FitOptions
from lmrec.privacy import apply_privacy
from lmrec.text.cache import item_texts
from lmrec.training.distributed import (
    broadcast_object,
    init_from_env,
    is_main_process,
    main_process_first,
)

TABLE_METRICS = ["ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20", "coverage@10"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_data(config: ExperimentConfig) -> tuple[Dataset, EncodedSplit]:
    """Load the dataset, apply the ``[privacy]`` table, the implicit-feedback rule, and split.

    Pseudonymization and scrubbing happen first, so the split, the model, the logs and the
    run record never hold a raw user id or unscrubbed item text. Before them, the users of
    the deletion register named by ``data.deleted_users_from`` are left out.
    """
    spec = config.data.table if config.data.table is not None else config.data.dataset
    dataset = load_dataset(spec)
    if config.data.deleted_users_from is not None:
        from lmrec.privacy.forgetting import leave_out_deleted_users

        dataset = leave_out_deleted_users(dataset, config.data.deleted_users_from, config.privacy)
    dataset = apply_privacy(dataset, config.privacy)
    if config.data.implicit_threshold is not None:
        kept = implicit_feedback(dataset.interactions, config.data.implicit_threshold)
        dataset = Dataset(
            name=dataset.name,
            interactions=kept,
            items=dataset.items,
            users=dataset.users,
            text_fields=dataset.text_fields,
        )
    split = split_dataset(dataset, config.data.split, **config.data.split_params)
    return dataset, encode_split(split, dataset)


def attach_item_texts(model: BaseRecommender, dataset: Dataset) -> None:
    """Give a text model (``uses_item_text``) the text of every catalog item."""
    if not getattr(model, "uses_item_text", False):
        return
    encoder = getattr(getattr(model, "config", None), "encoder", None)
    fields = getattr(encoder, "fields", None)
    model.set_item_texts(item_texts(dataset, fields))  # type: ignore[attr-defined]


def category_vectors(dataset: Dataset) -> np.ndarray | None:
    """Multi-hot item-by-category matrix (for intra-list diversity), or None without categories."""
    if CATEGORIES not in dataset.items.columns:
        return None
    cats = dataset.items[CATEGORIES]
    names = sorted({c for row in cats for c in row})
    if not names:
        return None
    col = {c: j for j, c in enumerate(names)}
    out = np.zeros((len(cats), len(names)), dtype=np.float32)
    for i, row in enumerate(cats):
        for c in row:
            out[i, col[c]] = 1.0
    return out


def make_evaluator(
    config: ExperimentConfig, dataset: Dataset, data: EncodedSplit, progress: bool = False
) -> Evaluator:
    return Evaluator(
        ks=tuple(config.evaluation.ks),
        batch_size=config.evaluation.batch_size,
        item_vectors=category_vectors(dataset),
        item_popularity=data.train.item_counts(),
        popularity_users=data.train.n_users,
        list_k=config.evaluation.list_k,
        show_progress=progress,
    )


def write_catalog(dataset: Dataset, path: Path) -> None:
    """Store the display text of every item so a run can print titles on its own."""
    items = dataset.items
    title_col = next(
        (f for f in ("title", "name", *dataset.text_fields) if f in items.columns), None
    )
    rows = []
    for rec in items.to_dict("records"):
        title = str(rec[title_col]) if title_col else str(rec[ITEM])
        cats = [str(c) for c in (rec.get(CATEGORIES) or ())]
        rows.append({"item_id": str(rec[ITEM]), "title": title[:200], "categories": cats})
    path.write_text(json.dumps(rows))


def read_catalog(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Item id -> {"title", "categories"} from a run directory."""
    path = run_dir / "catalog.json"
    if not path.exists():
        return {}
    return {r["item_id"]: r for r in json.loads(path.read_text())}


@dataclass
class RunOutput:
    """The fitted model and the record of one experiment."""

    run_dir: Path
    model: BaseRecommender
    record: RunRecord


def run_experiment(
    config: ExperimentConfig, run_dir: Path | None = None, resume: bool = False
) -> RunOutput:
    """Fit the configured model, evaluate it on the test part and write the run directory.

    Started by ``torchrun`` with several processes, it joins their process group
    (:func:`lmrec.training.distributed.init_from_env`, gloo on CPU) and every process loads
    the data (rank 0 first, so that downloads and caches are filled once) and trains; the
    models built on :class:`lmrec.training.Trainer` synchronise their gradients with DDP
    and so end with identical weights. Only rank 0 then writes the run directory and
    evaluates; the other ranks wait for its record (within the process group's timeout,
    :data:`lmrec.training.distributed.DEFAULT_TIMEOUT`) and return it with their own model.
    The caller owns the group afterwards (``lmrec train`` destroys it; a script may call
    :func:`lmrec.training.distributed.cleanup`).

    Args:
        config: The validated experiment.
        run_dir: Where to write; default ``<run.output_dir>/<run name>``.
        resume: Continue training from the run directory's last checkpoint, if any.
    """
    init_from_env()
    main = is_main_process()
    seed_everything(config.run.seed)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    run_dir = run_dir or config.run.output_dir / config.run_name()
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(config.model_dump_json(indent=2))

    with main_process_first():
        dataset, data = prepare_data(config)
    model = build_model(config.model)
    attach_item_texts(model, dataset)
    progress = config.run.show_progress and main
    options = FitOptions(work_dir=run_dir, resume=resume, show_progress=progress)
    t0 = time.perf_counter()
    report = model.fit(data.train, data.valid_task(), options)
    train_seconds = time.perf_counter() - t0

    record: RunRecord | None = None
    if main:
        model.save(run_dir / "model")
        write_catalog(dataset, run_dir / "catalog.json")
        if any("valid_ndcg@10" in h for h in report.history):
            plot_learning_curve(report.history, run_dir / "learning_curve.png", "valid_ndcg@10")
        t0 = time.perf_counter()
        result = make_evaluator(config, dataset, data, progress).evaluate(model, data.test_task())
        eval_seconds = time.perf_counter() - t0
        record = make_record(config, dataset, result, train_seconds, eval_seconds, report.to_dict())
    if config.ranking is not None:
        ranking = run_ranking_stage(config, dataset, data, model, run_dir, resume, main)
        if record is not None:
            record.ranking = ranking
    if config.diversity is not None and record is not None:
        record.diversity = run_diversity_stage(config, dataset, data, model, run_dir, record)
    if record is not None:
        write_record(record, run_dir)
    record = broadcast_object(record)  # the other ranks wait here for rank 0's record
    assert record is not None
    return RunOutput(run_dir, model, record)


def _sample_users(task: EvalTask, n: int | None, seed: int) -> EvalTask:
    if n is None or n >= len(task):
        return task
    rows = np.sort(np.random.default_rng(seed).choice(len(task), size=n, replace=False))
    return EvalTask(
        users=task.users[rows],
        histories=[task.histories[r] for r in rows],
        targets=[task.targets[r] for r in rows],
        n_items=task.n_items,
    )


def run_ranking_stage(
    config: ExperimentConfig,
    dataset: Dataset,
    data: EncodedSplit,
    retrieval: BaseRecommender,
    run_dir: Path,
    resume: bool,
    main: bool,
) -> dict[str, Any]:
    """Fit the CTR ranker, save it with ``pipeline.json`` and measure what re-ranking does.

    Returns (on rank 0) the ranker's test AUC/GAUC/LogLoss and the NDCG/Recall of the
    retrieval model on the same sampled test users before and after re-ranking its top-N.
    """
    from lmrec.models.ctr import CTRModel
    from lmrec.pipeline import Pipeline

    ranking = config.ranking
    assert ranking is not None
    seed = config.run.seed
    test = _sample_users(data.test_task(), ranking.eval_users, seed)
    valid = _sample_users(data.valid_task(), ranking.eval_users, seed + 1)
    ctr = CTRModel(ranking.model)
    progress = config.run.show_progress and main
    options = FitOptions(work_dir=run_dir / "ranker_train", resume=resume, show_progress=progress)
    t0 = time.perf_counter()
    report = ctr.fit(
        dataset, data.train, ctr.heldout_examples(data, "valid", users=valid.users), options
    )
    train_seconds = time.perf_counter() - t0
    if not main:
        return {}
    pipeline = Pipeline(retrieval, ctr, ranking.top_n)
    ctr.save(run_dir / "ranker")
    (run_dir / "pipeline.json").write_text(
        json.dumps({"top_n": ranking.top_n, "ranker": True}, indent=2)
    )
    t0 = time.perf_counter()
    ctr_test = ctr.evaluate(ctr.heldout_examples(data, "test", users=test.users))
    evaluator = make_evaluator(config, dataset, data, progress)
    before = evaluator.evaluate(retrieval, test).metrics
    after = evaluator.evaluate(pipeline, test).metrics
    keep = ("ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20")
    return {
        "top_n": ranking.top_n,
        "eval_users": len(test),
        "ctr_test": ctr_test,
        "before": {k: before[k] for k in keep if k in before},
        "after": {k: after[k] for k in keep if k in after},
        "train_seconds": train_seconds,
        "eval_seconds": time.perf_counter() - t0,
        "fit": report.to_dict(),
    }


DIVERSITY_METRICS = ("ndcg@10", "recall@10", "ild@10", "coverage@10", "gini@10", "long_tail@10")


def run_diversity_stage(
    config: ExperimentConfig,
    dataset: Dataset,
    data: EncodedSplit,
    retrieval: BaseRecommender,
    run_dir: Path,
    record: RunRecord,
) -> dict[str, Any]:
    """Store the ``[diversity]`` setting in ``pipeline.json`` and measure it on test.

    The setting becomes the run's default for :meth:`lmrec.pipeline.Pipeline.recommend` and
    ``lmrec recommend``. The re-ranked lists of the retrieval model (with the similarity the
    pipeline uses, :meth:`~lmrec.pipeline.Pipeline.item_vectors`; a CTR ranker is not rerun
    on every test user) are evaluated with the same evaluator as ``record``'s metrics.

    Returns:
        The setting and the test metrics before and after re-ranking.
    """
    from lmrec.diversity import DiversifiedScorer
    from lmrec.pipeline import PIPELINE_FILE, Pipeline

    diversity = config.diversity
    assert diversity is not None
    path = run_dir / PIPELINE_FILE
    meta = json.loads(path.read_text()) if path.exists() else {"top_n": 50, "ranker": False}
    meta["diversity"] = diversity.model_dump()
    path.write_text(json.dumps(meta, indent=2))
    pipeline = Pipeline(retrieval, catalog=read_catalog(run_dir))
    vectors = pipeline.item_vectors() if diversity.lam > 0.0 else None
    categories = pipeline.item_categories() if diversity.max_per_category is not None else None
    scorer = DiversifiedScorer(retrieval, vectors, diversity, categories)
    t0 = time.perf_counter()
    evaluator = make_evaluator(config, dataset, data, config.run.show_progress)
    after = evaluator.evaluate(scorer, data.test_task()).metrics
    return {
        **diversity.model_dump(),
        "before": {k: record.metrics[k] for k in DIVERSITY_METRICS if k in record.metrics},
        "after": {k: after[k] for k in DIVERSITY_METRICS if k in after},
        "eval_seconds": time.perf_counter() - t0,
    }


def make_record(
    config: ExperimentConfig,
    dataset: Dataset,
    result: EvalResult,
    train_seconds: float,
    eval_seconds: float,
    fit: dict[str, Any] | None = None,
) -> RunRecord:
    fit = fit or {}
    return RunRecord(
        model=config.model.type,
        config=config.model_dump(mode="json"),
        dataset=dataset.name,
        dataset_fingerprint=dataset.fingerprint(),
        split={"method": config.data.split, **config.data.split_params},
        metrics=result.metrics,
        slice_metrics=result.slices,
        standard_errors=result.standard_errors,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        fit=fit,
        privacy=dict(fit.get("privacy") or {}),
    )


def write_record(record: RunRecord, run_dir: Path) -> None:
    record.write(run_dir / "result.json")
    row = {"model": record.model, **record.metrics, "train s": record.train_seconds}
    table = markdown_table([row], ["model", *TABLE_METRICS, "train s"], title=record.dataset)
    errors = [
        f"{m} ±{record.standard_errors[m]:.4f}"
        for m in TABLE_METRICS
        if m in record.standard_errors
    ]
    if errors:
        users = int(record.metrics.get("n_users", 0))
        table += f"\nStandard errors over {users} users: {', '.join(errors)}.\n"
    if record.ranking:
        r = record.ranking
        rows = [
            {"model": record.model, **r["before"]},
            {"model": f"{record.model} + ctr@{r['top_n']}", **r["after"]},
        ]
        table += "\n\n" + markdown_table(
            rows,
            ["model", *r["before"]],
            title=f"re-ranking on {r['eval_users']} sampled test users "
            f"(ranker test AUC {r['ctr_test'].get('auc', float('nan')):.4f})",
        )
    if record.diversity:
        d = record.diversity
        cap = f", at most {d['max_per_category']} per category" if d["max_per_category"] else ""
        rows = [
            {"model": record.model, **d["before"]},
            {"model": f"{record.model} + {d['method']} λ={d['lam']:g}", **d["after"]},
        ]
        table += "\n\n" + markdown_table(
            rows,
            ["model", *d["before"]],
            title=f"diversity re-ranking of the top {d['candidates']}{cap} (test)",
        )
    (run_dir / "result.md").write_text(table + "\n")


def read_run_config(run_dir: Path) -> ExperimentConfig:
    path = run_dir / "config.json"
    if not path.exists():
        raise ModelFileError(f"{run_dir} is not a run directory (config.json is missing)")
    return parse_config(json.loads(path.read_text()), str(path))


def evaluate_run(run_dir: Path, split_part: str = "test", progress: bool = False) -> RunRecord:
    """Load a run's model and data again and recompute its metrics on ``split_part``."""
    config = read_run_config(run_dir)
    model = load_model(run_dir / "model")
    dataset, data = prepare_data(config)
    if model.n_items != len(data.item_map):
        raise ModelFileError(
            f"{run_dir}: the model has {model.n_items} items but its dataset "
            f"{dataset.name!r} {len(data.item_map)}; items were added after training "
            "(lmrec items add), so the run no longer matches its dataset's splits"
        )
    task = data.test_task() if split_part == "test" else data.valid_task()
    t0 = time.perf_counter()
    result = make_evaluator(config, dataset, data, progress).evaluate(model, task)
    return make_record(config, dataset, result, 0.0, time.perf_counter() - t0)


def load_run_model(run_dir: Path) -> BaseRecommender:
    """The fitted model of a run directory."""
    if not (run_dir / "model").is_dir():
        raise ModelFileError(f"{run_dir} holds no model (expected {run_dir / 'model'})")
    return load_model(run_dir / "model")


__all__ = [
    "RunOutput",
    "attach_item_texts",
    "evaluate_run",
    "load_run_model",
    "prepare_data",
    "run_experiment",
]
