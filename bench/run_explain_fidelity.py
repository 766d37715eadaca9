"""Fidelity of explanations: do the cited history items really carry the recommendation?

For each trained run (``runs/bench/<model>-<dataset>``, loaded with ``Pipeline.load``) and
``--users`` sampled users (seed 0) with at least ``max(m) + 1`` distinct training items, the
model recommends its top 10 items from the user's training history, and
:class:`lmrec.explain.Explainer` (leave-one-out occlusion, the item-kNN fast path for
item-kNN) ranks the history items by their contribution to each recommended item. Then, for
``m = 1, 2, 3``:

- *cited*: the ``m`` history items with the largest contribution are removed (every
  occurrence) and the item's score drop is measured;
- *random*: ``m`` distinct history items drawn uniformly are removed instead; the drop is
  averaged over ``--draws`` draws per user (the same draws for the user's 10 items).

The explanation's sentence names the items with a positive contribution (at most 3); the
``m`` largest are cited here whatever their sign, so every case counts. Reported per run and
``m``: the mean score drop of cited and random removal (in the model's score units), their
ratio, the share of (user, item) cases where the cited drop beats the random mean, and the
mean drop of the item's rank. All removals of a user are scored in one batched ``score``
call. Writes ``bench/results/explain-fidelity.json`` and ``.md``.

Usage::

    OMP_NUM_THREADS=1 LMREC_DATA_DIR=../shared/datasets python bench/run_explain_fidelity.py
    python bench/run_explain_fidelity.py --runs sasrec-ml100k --users 50
    python bench/run_explain_fidelity.py --tables-only     # rewrite the .md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.explain import distinct_recent
from lmrec.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_RUNS = (
    "text-fusion-ml100k",
    "text-frozen-ml100k",
    "sasrec-ml100k",
    "itemknn-ml100k",
    "text-fusion-scientific",
    "text-frozen-scientific",
    "sasrec-scientific",
    "itemknn-scientific",
)
MS = (1, 2, 3)
K = 10


def remove(history: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``history`` without any occurrence of ``items``."""
    return history[~np.isin(history, items)]


def run_fidelity(run: str, n_users: int, draws: int, seed: int) -> dict[str, Any]:
    """The fidelity numbers of one run (see the module docstring)."""
    pipeline = Pipeline.load(ROOT / "runs" / "bench" / run)
    model = pipeline.retrieval
    explainer = pipeline.explainer()
    assert model.user_map is not None and model.histories is not None
    rng = np.random.default_rng(seed)
    eligible = [u for u, h in enumerate(model.histories) if len(np.unique(h)) >= max(MS) + 1]
    users = np.sort(rng.choice(eligible, size=min(n_users, len(eligible)), replace=False))
    cited_drops: dict[int, list[float]] = {m: [] for m in MS}
    random_drops: dict[int, list[float]] = {m: [] for m in MS}
    cited_rank: dict[int, list[float]] = {m: [] for m in MS}
    random_rank: dict[int, list[float]] = {m: [] for m in MS}
    n_positive: dict[int, int] = {m: 0 for m in MS}
    explain_seconds = 0.0
    hist_lengths = []
    start = time.perf_counter()
    for u in users:
        hist = np.asarray(model.histories[u], dtype=np.int64)
        hist_lengths.append(len(hist))
        base = model.score(np.array([u]), [hist])[0].astype(np.float64)
        masked = base.copy()
        masked[hist] = -np.inf
        top = np.argsort(-masked, kind="stable")[:K]
        t0 = time.perf_counter()
        occ = explainer.contributions(int(u), hist, top)
        explain_seconds += time.perf_counter() - t0
        distinct = distinct_recent(hist)
        rows: list[np.ndarray] = []
        cited_rows: dict[tuple[int, int], int] = {}
        for t in range(len(top)):
            order = np.argsort(-occ.drops[:, t], kind="stable")
            for m in MS:
                cited = occ.history_items[order[:m]]
                n_positive[m] += int((occ.drops[order[:m], t] > 0).all())
                cited_rows[(t, m)] = len(rows)
                rows.append(remove(hist, cited))
        random_rows: dict[tuple[int, int], int] = {}
        for m in MS:
            for r in range(draws):
                random_rows[(m, r)] = len(rows)
                rows.append(remove(hist, rng.choice(distinct, size=m, replace=False)))
        reduced = model.score(np.full(len(rows), u), rows).astype(np.float64)
        reduced[:, hist] = -np.inf  # ranks among the items the user has not seen

        def rank_of(scores: np.ndarray, item: int) -> int:
            return int((scores > scores[item]).sum()) + 1

        for t, item in enumerate(top):
            base_rank = t + 1
            for m in MS:
                c = reduced[cited_rows[(t, m)]]
                cited_drops[m].append(base[item] - c[item])
                cited_rank[m].append(rank_of(c, int(item)) - base_rank)
                rand = [reduced[random_rows[(m, r)]] for r in range(draws)]
                random_drops[m].append(float(np.mean([base[item] - s[item] for s in rand])))
                random_rank[m].append(
                    float(np.mean([rank_of(s, int(item)) - base_rank for s in rand]))
                )
    seconds = time.perf_counter() - start
    by_m = {}
    for m in MS:
        cd, rd = np.array(cited_drops[m]), np.array(random_drops[m])
        by_m[str(m)] = {
            "cases": len(cd),
            "cited_drop": float(cd.mean()),
            "random_drop": float(rd.mean()),
            # A random removal may raise the score on average: no meaningful ratio then.
            "ratio": float(cd.mean() / rd.mean()) if rd.mean() > 0 else None,
            "cited_beats_random": float((cd > rd).mean()),
            "cited_rank_drop": float(np.mean(cited_rank[m])),
            "random_rank_drop": float(np.mean(random_rank[m])),
            "all_cited_positive": n_positive[m] / len(cd),
        }
    return {
        "run": run,
        "model": model.name,
        "dataset": pipeline.dataset,
        "users": len(users),
        "mean_history": float(np.mean(hist_lengths)),
        "explain_ms_per_user": 1000.0 * explain_seconds / max(len(users), 1),
        "seconds": seconds,
        "by_m": by_m,
    }


def markdown(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Explanation fidelity",
        "",
        f"Top-{K} recommendations of {meta['users']} sampled users per run (seed "
        f"{meta['seed']}); the `m` history items with the largest leave-one-out contribution "
        f"(*cited*) vs `m` random distinct history items ({meta['draws']} draws, mean) are "
        "removed and the recommended item's score drop is measured (model score units; "
        "rank drop = places the item falls among unseen items). *beats* = share of "
        "(user, item) cases where the cited drop exceeds the random mean. "
        "Command: `OMP_NUM_THREADS=1 python bench/run_explain_fidelity.py`.",
        "",
        "| run | m | cited drop | random drop | ratio | beats | cited rank drop "
        "| random rank drop | explain ms/user |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for m, v in r["by_m"].items():
            ratio = f"{v['ratio']:.1f}" if v["ratio"] is not None else "– (random ≤ 0)"
            lines.append(
                f"| {r['run']} | {m} | {v['cited_drop']:.4f} | {v['random_drop']:.4f} | {ratio} "
                f"| {v['cited_beats_random']:.1%} | {v['cited_rank_drop']:.1f} "
                f"| {v['random_rank_drop']:.1f} | {r['explain_ms_per_user']:.0f} |"
            )
    lines += [
        "",
        "For `m = 1` the cited item is by definition the single removal with the largest "
        "drop, so cited ≥ random holds by construction there; `m = 2, 3` test what "
        "leave-one-out weights do not guarantee for a non-additive model (SASRec, the text "
        "transformers): that removing the cited items *together* still hurts most. For "
        "item-kNN the drops are additive, so cited ≥ random holds for every `m`; ties (short "
        "Amazon histories, many items with zero similarity) count as not beating.",
        "",
        f"Machine: {meta['machine']}, {meta['threads']} torch thread(s), CPU.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(DEFAULT_RUNS))
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "explain-fidelity"))
    parser.add_argument(
        "--tables-only", action="store_true", help="rewrite the .md from the existing .json"
    )
    args = parser.parse_args()
    out = Path(args.out)
    if args.tables_only:
        saved = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(markdown(saved["results"], saved["meta"]))
        return
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    results = []
    for run in args.runs:
        t0 = time.perf_counter()
        result = run_fidelity(run, args.users, args.draws, args.seed)
        results.append(result)
        one = result["by_m"]["1"]
        print(
            f"{run}: m=1 cited {one['cited_drop']:.4f} vs random {one['random_drop']:.4f}, "
            f"beats {one['cited_beats_random']:.1%} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    meta = {
        "users": args.users,
        "draws": args.draws,
        "seed": args.seed,
        "k": K,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    out.with_suffix(".md").write_text(markdown(results, meta))
    print(f"wrote {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
