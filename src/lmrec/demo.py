"""``lmrec demo``: train and evaluate the baselines on MovieLens-100K, show a table and titles."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lmrec.config import ExperimentConfig, parse_config
from lmrec.evaluation import markdown_table
from lmrec.experiment import TABLE_METRICS, read_catalog, run_experiment

DEMO_MODELS: list[dict[str, Any]] = [
    {"type": "pop"},
    {"type": "itemknn"},
    {"type": "bpr"},
    {"type": "sasrec", "max_len": 100},  # as configs/sasrec-ml100k.toml
]


def demo_configs(output_dir: Path, quick: bool = False) -> list[ExperimentConfig]:
    """One config per baseline on MovieLens-100K, leave-one-out, all ratings as implicit."""
    configs = []
    for model in DEMO_MODELS:
        model = dict(model)
        if quick and model["type"] == "bpr":
            model["epochs"] = 3
        if quick and model["type"] == "sasrec":
            model["trainer"] = {"epochs": 2}
        raw = {
            "data": {"dataset": "ml-100k", "split": "leave_one_out"},
            "model": model,
            "run": {"name": model["type"], "output_dir": str(output_dir), "show_progress": True},
        }
        configs.append(parse_config(raw, f"demo {model['type']}"))
    return configs


def run_demo(output_dir: Path = Path("runs/demo"), user: str = "1", quick: bool = False) -> str:
    """Run the demo; print and return the results table."""
    rows = []
    outputs = []
    start = time.perf_counter()
    for config in demo_configs(output_dir, quick):
        print(f"== training {config.model.type} on MovieLens-100K", flush=True)
        out = run_experiment(config)
        outputs.append(out)
        rec = out.record
        rows.append({"model": rec.model, **rec.metrics, "train s": rec.train_seconds})
    table = markdown_table(
        rows,
        ["model", *TABLE_METRICS, "train s"],
        title="MovieLens-100K, leave-one-out, full ranking (test)",
    )
    print()
    print(table)
    best = max(outputs, key=lambda o: o.record.metrics.get("ndcg@10", 0.0))
    catalog = read_catalog(best.run_dir)
    model = best.model
    history = model.history_of(user)
    recent = (
        [catalog[i]["title"] for i in model.item_map.decode(history[-5:])] if model.item_map else []
    )
    print(f"\nUser {user} recently watched: " + "; ".join(reversed(recent)))
    print(f"Top 10 from {best.record.model} (best NDCG@10):")
    for r in model.recommend(user, k=10):
        print(f"  {r.rank:>2}. {catalog[r.item_id]['title']}")
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s; runs are in {output_dir}/")
    print(f"Try: lmrec recommend {best.run_dir} --user {user} -k 10")
    return table
