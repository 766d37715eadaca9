"""Benchmark cold-start items: items no model saw in training, added afterwards.

Split: ``cold_item_split`` (a random ``--cold-frac`` of the items with interactions is held
out entirely, seed 0; the other interactions leave-one-out by time). Every model is trained on
the warm part only:

- the text models (``text-mean``, ``text-frozen``, ``text-fusion``) on a catalog *without* the
  cold items; the cold items are then added with ``add_items`` (their dataset text, encoded by
  the model's encoder, zero id embedding in the fused model), no retraining;
- the id models (``pop``, ``itemknn``, ``sasrec``) on the whole catalog, where the cold items
  simply have no interaction: they cannot rank an item they have no data for;
- ``text-fusion-incat`` (``--models``, default on ml-100k only): the fused model trained as
  ``lmrec train --split cold_item`` does, with the cold items in the catalog as negatives but
  never as targets, evaluated with their id embeddings as trained and zeroed (what
  ``TextSeqRecommender`` does now to items without a training interaction);
- ``text-frozen-coldval`` (``--models`` only): text-frozen with the cold items in its catalog,
  early-stopped on validation targets that include half A of the cold items; it and
  text-frozen are also measured on half B (``half_b``), which neither used.

``--boost-only`` runs the new-item score-boost study instead (boost chosen on half A, reported
on half B); ``--set KEY=VALUE`` trains text-frozen / text-fusion with a config override, as
rows named with it.

Evaluation: full ranking over the whole catalog (warm + cold), pessimistic ties, one target
per query, and every *other* item the user interacted with (train, validation or test) left out
of the ranking:

- a *warm* query per user: the user's leave-one-out test item (always warm); the model reads
  all their train + validation interactions (the usual test protocol);
- a *cold* query per user with at least one interaction with a cold item: one of those
  interactions drawn at random (seed 0) is the target; the model reads the user's train +
  validation interactions *before it in time* (queries with nothing before are skipped). The
  user's later interactions are left out of the ranking, not fed to the model.

``overall`` averages over all queries. ``all targets`` is what ``lmrec train`` reports on the
same split: one query per user with every test item (the warm one and all cold ones) as
targets. Writes ``bench/results/coldstart-items.json`` and ``.md``.

Usage::

    OMP_NUM_THREADS=1 python bench/run_coldstart_items.py               # everything
    python bench/run_coldstart_items.py --datasets ml-100k --models pop text-frozen
    python bench/run_coldstart_items.py --tables-only                   # rewrite the .md
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch

from coldstart_items_tables import ALL_MODELS, DATASETS, DEFAULT_MODELS, EPOCHS, markdown
from lmrec.config import load_config
from lmrec.data import ITEM, TIME, USER, Dataset
from lmrec.data.registry import load_dataset
from lmrec.data.schema import IdMap, InteractionData
from lmrec.data.splitting import Split, cold_item_split
from lmrec.evaluation import Evaluator
from lmrec.evaluation.metrics import ndcg_at_k, recall_at_k, target_ranks
from lmrec.evaluation.task import EvalTask
from lmrec.experiment import seed_everything
from lmrec.models import BaseRecommender, build_model, load_model
from lmrec.models.text import TextSeqRecommender
from lmrec.models.text._model import TextSeqModule
from lmrec.text.cache import item_texts

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
CONFIGS = ROOT.parent / "configs"
OUT_JSON = RESULTS / "coldstart-items.json"
OUT_MD = RESULTS / "coldstart-items.md"
MODELS_DIR = ROOT.parent / "runs" / "coldstart-items"

KS = (10, 20)
BATCH = 256


# ------------------------------------------------------------------------------- data
@dataclass
class Queries:
    """One target per query; the model reads ``inputs``, ``exclude`` leaves the ranking."""

    users: np.ndarray
    inputs: list[np.ndarray]
    targets: list[np.ndarray]
    exclude: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.users)


class ColdItemData:
    """The split, the index space (warm items, then cold items) and the evaluation queries."""

    def __init__(self, dataset: Dataset, cold_frac: float, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.split: Split = cold_item_split(dataset.interactions, cold_frac=cold_frac, seed=seed)
        ids = dataset.item_map().to_list()
        self.cold_ids = [i for i in ids if i in self.split.cold_items]
        self.warm_ids = [i for i in ids if i not in self.split.cold_items]
        self.users = dataset.user_map()
        self.warm_map = IdMap(self.warm_ids, "item")
        self.full_map = IdMap(self.warm_ids + self.cold_ids, "item")
        split = self.split
        self.train_warm = InteractionData.from_frame(split.train, self.users, self.warm_map)
        self.valid_warm = InteractionData.from_frame(split.valid, self.users, self.warm_map)
        self.train_full = InteractionData.from_frame(split.train, self.users, self.full_map)
        self.valid_full = InteractionData.from_frame(split.valid, self.users, self.full_map)
        self.n_cold_interactions = int(split.test[ITEM].isin(self.split.cold_items).sum())
        self.warm, self.cold, self.skipped = self._queries(seed)
        known = pd.concat([split.train, split.valid])
        self.all_targets_task = EvalTask.from_interactions(
            InteractionData.from_frame(known, self.users, self.full_map),
            InteractionData.from_frame(split.test, self.users, self.full_map),
        )

    def _queries(self, seed: int) -> tuple[Queries, Queries, int]:
        split = self.split
        known = pd.concat([split.train, split.valid])
        known = known.assign(_row=known.index).sort_values([TIME, "_row"], kind="stable")
        by_user = {u: g for u, g in known.groupby(USER, sort=False)}
        everything = pd.concat([known, split.test])
        seen = {
            str(u): np.unique(self.full_map.encode(g[ITEM]))
            for u, g in everything.groupby(USER, sort=False)
        }
        test = split.test.assign(_row=split.test.index)
        is_cold = test[ITEM].isin(split.cold_items).to_numpy()

        def history(user: str, before: tuple[int, int] | None = None) -> np.ndarray:
            rows = by_user.get(user)
            if rows is None:
                return np.zeros(0, dtype=np.int64)
            if before is not None:
                t, r = before
                keep = (rows[TIME] < t) | ((rows[TIME] == t) & (rows["_row"] < r))
                rows = rows[keep.to_numpy()]
            return self.full_map.encode(rows[ITEM])

        warm_rows = test[~is_cold]
        warm = Queries(
            users=self.users.encode(warm_rows[USER]),
            inputs=[history(str(u)) for u in warm_rows[USER]],
            targets=[np.array([self.full_map.index(str(i))]) for i in warm_rows[ITEM]],
            exclude=[seen[str(u)] for u in warm_rows[USER]],
        )
        rng = np.random.default_rng(seed)
        cold = Queries(np.zeros(0, dtype=np.int64), [], [], [])
        users, skipped = [], 0
        for user, rows in test[is_cold].groupby(USER, sort=True):
            row = rows.iloc[int(rng.integers(len(rows)))]
            hist = history(str(user), (int(row[TIME]), int(row["_row"])))
            if len(hist) == 0:
                skipped += 1
                continue
            users.append(self.users.index(str(user)))
            cold.inputs.append(hist)
            cold.targets.append(np.array([self.full_map.index(str(row[ITEM]))]))
            cold.exclude.append(seen[str(user)])
        cold.users = np.array(users, dtype=np.int64)
        return warm, cold, skipped

    def summary(self) -> dict[str, Any]:
        s = self.split
        return {
            "items": len(self.full_map),
            "cold_items": len(self.cold_ids),
            "train_interactions": len(s.train),
            "valid_interactions": len(s.valid),
            "test_interactions": len(s.test),
            "cold_test_interactions": self.n_cold_interactions,
            "warm_queries": len(self.warm),
            "cold_queries": len(self.cold),
            "cold_queries_skipped_empty_history": self.skipped,
            "mean_input_length_warm": float(np.mean([len(h) for h in self.warm.inputs])),
            "mean_input_length_cold": float(np.mean([len(h) for h in self.cold.inputs])),
            "all_targets_users": len(self.all_targets_task),
        }


# ------------------------------------------------------------------------------- models
SETTINGS: dict[str, Any] = {}
"""``--set`` overrides of the trained text models' config (a variant row)."""


def model_config(model: str, dataset: str, epochs: int | None = None) -> Any:
    base = {"text-fusion-incat": "text-fusion", "text-frozen-coldval": "text-frozen"}.get(
        model, model
    )
    overrides: dict[str, Any] = {}
    if base in ("text-frozen", "text-fusion"):
        overrides.update({f"model.{k}": v for k, v in SETTINGS.items()})
    if base.startswith("text-"):
        overrides["model.encoder.cache"] = True  # encode each text once for all text models
    if base == "sasrec" or base in ("text-frozen", "text-fusion"):
        kind = "sasrec" if base == "sasrec" else "text"
        overrides["model.trainer.epochs"] = epochs or EPOCHS[dataset][kind]
    return load_config(CONFIGS / f"{base}-{DATASETS[dataset]}.toml", overrides).model


def fit_model(
    model_name: str, data: ColdItemData, epochs: int | None = None
) -> tuple[dict[str, BaseRecommender], dict]:
    """Fit one benchmark row's model; returns the model(s) to evaluate and timings."""
    dataset = data.dataset.name
    config = model_config(model_name, dataset, epochs)
    seed_everything(42)
    model = build_model(config)
    info: dict[str, Any] = {}
    if not model.uses_item_text:
        start = time.perf_counter()
        report = model.fit(
            data.train_full, EvalTask.from_interactions(data.train_full, data.valid_full)
        )
        info.update(train_seconds=time.perf_counter() - start, epochs=report.epochs)
        info["best_epoch"] = report.best_epoch
        return {model_name: model}, info
    fields = getattr(config.encoder, "fields", None)
    texts = dict(
        zip(data.dataset.item_map().to_list(), item_texts(data.dataset, fields), strict=True)
    )
    if model_name == "text-fusion-incat":
        return fit_in_catalog(model, texts, data, info)
    if model_name == "text-frozen-coldval":
        return fit_cold_validated(model, texts, data, info)
    model.set_item_texts([texts[i] for i in data.warm_ids])  # type: ignore[attr-defined]
    start = time.perf_counter()
    report = model.fit(
        data.train_warm, EvalTask.from_interactions(data.train_warm, data.valid_warm)
    )
    info.update(train_seconds=time.perf_counter() - start, epochs=report.epochs)
    info["best_epoch"] = report.best_epoch
    start = time.perf_counter()
    added = model.add_items({i: texts[i] for i in data.cold_ids})
    info["add_items_seconds"] = time.perf_counter() - start
    assert added.added == data.cold_ids and model.item_map is not None
    assert model.item_map.to_list() == data.full_map.to_list()
    return {model_name: model}, info


def fit_in_catalog(
    model: BaseRecommender, texts: dict[str, str], data: ColdItemData, info: dict[str, Any]
) -> tuple[dict[str, BaseRecommender], dict]:
    """The fused model with the cold items in the training catalog (``lmrec train`` style)."""
    assert isinstance(model, TextSeqRecommender)
    model.set_item_texts([texts[i] for i in data.full_map.to_list()])
    start = time.perf_counter()
    # Keep the id rows as training left them, to measure what zeroing them changes.
    with mock.patch.object(TextSeqModule, "clear_id_embeddings", lambda self, items: None):
        report = model.fit(
            data.train_full, EvalTask.from_interactions(data.train_full, data.valid_full)
        )
    info.update(train_seconds=time.perf_counter() - start, epochs=report.epochs)
    info["best_epoch"] = report.best_epoch
    module = model.module
    assert module is not None and module.id_embedding is not None
    weights = module.id_embedding.weight.detach()
    unseen = torch.from_numpy(data.train_full.item_counts() == 0)
    cold = torch.zeros(len(weights), dtype=torch.bool)
    cold[len(data.warm_ids) :] = True
    info["id_norm_cold_as_trained"] = float(weights[cold].norm(dim=1).mean())
    info["id_norm_warm"] = float(weights[~unseen].norm(dim=1).mean())
    trained = copy.deepcopy(model)
    module.clear_id_embeddings(unseen)
    return {"text-fusion-incat (ids as trained)": trained, "text-fusion-incat": model}, info


def variant_suffix() -> str:
    """`` [key=value, ...]`` for rows trained with ``--set`` overrides, else ``""``."""
    return f" [{', '.join(f'{k}={v}' for k, v in SETTINGS.items())}]" if SETTINGS else ""


def cold_half_a(data: ColdItemData) -> set[int]:
    """Half of the cold items (their rows in ``full_map``), drawn with the split's seed + 1:
    the half that may be used for choices (boost, epoch); the other half is reported."""
    rng = np.random.default_rng(data.seed + 1)
    cold_rows = np.arange(len(data.warm_ids), len(data.full_map))
    return set(rng.permutation(cold_rows)[: len(cold_rows) // 2].tolist())


def fit_cold_validated(
    model: BaseRecommender, texts: dict[str, str], data: ColdItemData, info: dict[str, Any]
) -> tuple[dict[str, BaseRecommender], dict]:
    """text-frozen with the cold items in its catalog (never trained on: they are left out of
    the softmax) and early stopping on validation targets that include half A of the cold
    items (their test interactions) next to every user's warm validation item, so the epoch is
    chosen for a catalog that grows. Half B is what the benchmark reports for it."""
    assert isinstance(model, TextSeqRecommender)
    model.set_item_texts([texts[i] for i in data.full_map.to_list()])
    half_a = {data.full_map.ids[r] for r in cold_half_a(data)}
    test = data.split.test
    valid = pd.concat([data.split.valid, test[test[ITEM].isin(half_a)]])
    start = time.perf_counter()
    report = model.fit(
        data.train_full,
        EvalTask.from_interactions(
            data.train_full, InteractionData.from_frame(valid, data.users, data.full_map)
        ),
    )
    info.update(train_seconds=time.perf_counter() - start, epochs=report.epochs)
    info["best_epoch"] = report.best_epoch
    return {"text-frozen-coldval": model}, info


def half_b_metrics(model: BaseRecommender, data: ColdItemData) -> dict[str, Any]:
    """Warm test NDCG@10 and the NDCG@10 of the cold queries whose target is in half B."""
    half_a = cold_half_a(data)
    in_b = np.array([int(t[0]) not in half_a for t in data.cold.targets], dtype=bool)
    warm = float(query_metrics(model, data.warm)["ndcg@10"].mean())
    cold = float(query_metrics(model, subset(data.cold, in_b))["ndcg@10"].mean())
    return {"warm_ndcg@10": warm, "cold_b_ndcg@10": cold, "cold_b_queries": int(in_b.sum())}


def trained_models(
    name: str, data: ColdItemData, epochs: int | None, reuse: bool
) -> tuple[dict[str, BaseRecommender], dict[str, Any]]:
    """Fit a row's model(s) and keep them under ``runs/coldstart-items/`` (or load them from
    there with ``reuse``), so the evaluation can change without training again."""
    if name.endswith("+content"):
        return with_content(name, data, epochs, reuse)
    folder = MODELS_DIR / data.dataset.name / _slug(name + variant_suffix())
    info_file = folder / "info.json"
    if reuse and info_file.exists():
        saved = json.loads(info_file.read_text())
        models = {row: load_model(folder / _slug(row)) for row in saved["rows"]}
        return models, saved["info"]
    models, info = fit_model(name, data, epochs)
    for row, model in models.items():
        model.save(folder / _slug(row))
    info_file.write_text(json.dumps({"rows": list(models), "info": info}, indent=2))
    return models, info


def with_content(
    name: str, data: ColdItemData, epochs: int | None, reuse: bool
) -> tuple[dict[str, BaseRecommender], dict[str, Any]]:
    """The model of ``name`` without ``+content`` (trained or kept), a copy of it scoring with
    the content prior, the weight chosen on the warm validation set."""
    base = name.removesuffix("+content")
    models, info = trained_models(base, data, epochs, reuse)
    model = copy.deepcopy(models[base])
    assert isinstance(model, TextSeqRecommender)
    start = time.perf_counter()
    values = model.tune_content_weight(EvalTask.from_interactions(data.train_full, data.valid_full))
    info = {
        **info,
        "content_weight": model.content_weight,
        "content_validation": {str(w): v for w, v in values.items()},
        "content_seconds": time.perf_counter() - start,
    }
    return {name: model}, info


def _slug(row: str) -> str:
    for bad in " ()[],=":
        row = row.replace(bad, "-")
    return row


# ------------------------------------------------------------------------------- evaluation
HALF_B_ROWS = ("text-frozen", "text-frozen-coldval", "text-frozen+content", "text-fusion+content")
"""Rows also measured on half B of the cold items (which no choice used)."""


def query_metrics(model: BaseRecommender, queries: Queries) -> dict[str, np.ndarray]:
    """Per query NDCG@k and Recall@k, full ranking with pessimistic ties."""
    ranks: list[np.ndarray] = []
    for start in range(0, len(queries), BATCH):
        stop = start + BATCH
        scores = model.score(queries.users[start:stop], queries.inputs[start:stop])
        ranks.extend(target_ranks(scores, queries.targets[start:stop], queries.exclude[start:stop]))
    out = {}
    for k in KS:
        out[f"ndcg@{k}"] = ndcg_at_k(ranks, k)
        out[f"recall@{k}"] = recall_at_k(ranks, k)
    return out


def evaluate(model: BaseRecommender, data: ColdItemData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    parts = {"warm": query_metrics(model, data.warm), "cold": query_metrics(model, data.cold)}
    for part, values in parts.items():
        out.update({f"{part}_{key}": float(v.mean()) for key, v in values.items()})
    for key in parts["warm"]:
        both = np.concatenate([parts["warm"][key], parts["cold"][key]])
        out[f"overall_{key}"] = float(both.mean())
    every = Evaluator(ks=KS, batch_size=BATCH).evaluate(model, data.all_targets_task)
    out["all_targets_ndcg@10"] = every.metrics["ndcg@10"]
    out["all_targets_recall@10"] = every.metrics["recall@10"]
    return out


# ------------------------------------------------------------------------- calibration queries
def validation_queries(data: ColdItemData) -> Queries:
    """One warm query per user from the validation split: train history in, valid item out."""
    train = data.split.train
    train = train.assign(_row=train.index).sort_values([TIME, "_row"], kind="stable")
    by_user = {str(u): data.full_map.encode(g[ITEM]) for u, g in train.groupby(USER, sort=False)}
    valid = data.split.valid
    users, inputs, targets, exclude = [], [], [], []
    for user, item in zip(valid[USER].astype(str), valid[ITEM].astype(str), strict=True):
        hist = by_user.get(user)
        if hist is None or len(hist) == 0:
            continue
        users.append(data.users.index(user))
        inputs.append(hist)
        targets.append(np.array([data.full_map.index(item)]))
        exclude.append(np.unique(hist))
    return Queries(np.asarray(users, dtype=np.int64), inputs, targets, exclude)


def subset(queries: Queries, keep: np.ndarray) -> Queries:
    rows = np.flatnonzero(keep)
    return Queries(
        queries.users[rows],
        [queries.inputs[j] for j in rows],
        [queries.targets[j] for j in rows],
        [queries.exclude[j] for j in rows],
    )


# ------------------------------------------------------------------------------- results
def load_rows() -> list[dict[str, Any]]:
    return json.loads(OUT_JSON.read_text())["rows"] if OUT_JSON.exists() else []


def load_boosts() -> list[dict[str, Any]]:
    return json.loads(OUT_JSON.read_text()).get("boost", []) if OUT_JSON.exists() else []


def load_data_info() -> dict[str, Any]:
    return json.loads(OUT_JSON.read_text()).get("datasets", {}) if OUT_JSON.exists() else {}


def save(
    rows: list[dict[str, Any]], datasets: dict[str, Any], boosts: list[dict[str, Any]] | None = None
) -> None:
    boosts = load_boosts() if boosts is None else boosts
    order = {m: j for j, m in enumerate(ALL_MODELS)}
    rows = sorted(
        rows,
        key=lambda r: (
            list(DATASETS).index(r["dataset"]),
            order.get(r["model"].split(" (")[0].split(" [")[0], 99),
            r["model"],
        ),
    )
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    document = {"datasets": datasets, "rows": rows, "boost": boosts}
    OUT_JSON.write_text(json.dumps(document, indent=2) + "\n")
    OUT_MD.write_text(markdown(rows, datasets, boosts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=ALL_MODELS)
    parser.add_argument("--cold-frac", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tables-only", action="store_true", help="rewrite the .md only")
    parser.add_argument("--epochs", type=int, help="cap every trained model's epochs (smoke)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override of text-frozen / text-fusion (e.g. adaptor_dropout=0.5); "
        "their rows are named with it",
    )
    parser.add_argument("--out", type=Path, help="write <out>.json and <out>.md instead")
    parser.add_argument(
        "--reuse", action="store_true", help="load the models kept in runs/coldstart-items/"
    )
    parser.add_argument(
        "--boost-only",
        action="store_true",
        help="only the new-item boost study (coldstart_items_boost.py) of the text models "
        "(with --reuse: on the kept models)",
    )
    args = parser.parse_args()
    global OUT_JSON, OUT_MD, MODELS_DIR
    if args.out is not None:
        OUT_JSON, OUT_MD = args.out.with_suffix(".json"), args.out.with_suffix(".md")
        MODELS_DIR = args.out.parent / "models"
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set needs KEY=VALUE, got {item!r}")
        try:
            SETTINGS[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            SETTINGS[key.strip()] = value
    rows, datasets = load_rows(), load_data_info()
    if args.tables_only:
        save(rows, datasets)
        return
    torch.set_num_threads(args.threads)
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": args.threads,
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
    }
    for dataset in args.datasets:
        start = time.perf_counter()
        data = ColdItemData(load_dataset(dataset), args.cold_frac, args.seed)
        datasets[dataset] = data.summary()
        print(f"[{dataset}] data ready in {time.perf_counter() - start:.1f} s: {data.summary()}")
        if args.boost_only:
            from coldstart_items_boost import BOOSTED_MODELS, boost_study, plot

            boosts = [b for b in load_boosts() if "curve_ndcg@10" in b]  # not the old study
            for name in args.models or BOOSTED_MODELS[dataset]:
                models, _ = trained_models(name, data, args.epochs, args.reuse)
                study = boost_study(name, models[name], data)
                boosts = [b for b in boosts if (b["dataset"], b["model"]) != (dataset, name)]
                boosts.append({**study, **meta})
                save(rows, datasets, boosts)
                plot(OUT_MD.with_suffix(".png"), boosts)
            continue
        for name in args.models or DEFAULT_MODELS[dataset]:
            models, info = trained_models(name, data, args.epochs, args.reuse)
            models = {row + variant_suffix(): model for row, model in models.items()}
            for row_name, model in models.items():
                start = time.perf_counter()
                metrics = evaluate(model, data)
                if row_name.split(" [")[0] in HALF_B_ROWS:
                    metrics["half_b"] = half_b_metrics(model, data)
                row = {
                    "dataset": dataset,
                    "model": row_name,
                    "metrics": metrics,
                    **info,
                    "eval_seconds": time.perf_counter() - start,
                    **meta,
                }
                rows = [r for r in rows if (r["dataset"], r["model"]) != (dataset, row_name)]
                rows.append(row)
                save(rows, datasets)
                shown = ", ".join(
                    f"{k} {metrics[k]:.4f}"
                    for k in ("warm_ndcg@10", "cold_ndcg@10", "overall_ndcg@10")
                )
                print(f"[{dataset}] {row_name}: {shown}; {info}", flush=True)
    print(OUT_MD.read_text())


if __name__ == "__main__":
    main()
