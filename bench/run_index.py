"""Benchmark lmrec.index.VectorIndex: HNSW recall@10 against exact search, and query latency.

Catalogs:

* the item vectors of two trained runs, ``runs/bench/text-fusion-ml100k`` (1,682 items) and
  ``runs/bench/text-fusion-scientific`` (Amazon Scientific), as
  :meth:`lmrec.pipeline.Pipeline.load` gives them (``pipeline.item_vectors()``);
* a synthetic catalog of ``--synthetic-items`` (100,000) 128-d vectors: each a real item vector
  of either run (L2-normalised, chosen at random) plus Gaussian noise of norm about
  ``--noise`` (0.5), seeded. It keeps the real vectors' cluster structure while having
  ~16 times as many items as both catalogs together.

Queries are real user states: the text_seq model's hidden state after each training user's
history (what the model scores the catalog with), at most ``--queries`` of them per catalog;
for the synthetic catalog the users of both runs. Both text_seq runs score by cosine, so the
index uses ``metric="cosine"``; the bench first checks that the exact index reproduces the
model's own top-10 (``model_agreement``).

Measured, with one thread (``OMP_NUM_THREADS=1``, ``faiss.omp_set_num_threads(1)``):

* recall@10 of HNSW at several ``efSearch`` values against exact search (the flat index),
  and, at the default ``efSearch``, with each user's history excluded (the service's case);
* latency of one query through ``VectorIndex.search_one`` (Python overhead included): p50
  and p99 in µs, exact and HNSW;
* HNSW build time, for each ``M`` in ``--m``.

Writes ``bench/results/index.json`` and ``bench/results/index.md``.

Usage::

    OMP_NUM_THREADS=1 python bench/run_index.py
    OMP_NUM_THREADS=1 python bench/run_index.py --synthetic-items 20000 --m 16   # quick

CPU cost (one core): each 100k HNSW build takes one to two and a half minutes (M=16, M=32;
more on a busy machine); everything else about a minute; 5 to 8 minutes in all.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from lmrec.index import IndexConfig, VectorIndex
from lmrec.models.baselines.sasrec._recommender import encode_histories
from lmrec.models.text import TextSeqRecommender
from lmrec.pipeline import Pipeline

RUNS = {
    "ml-100k": "runs/bench/text-fusion-ml100k",
    "amazon-scientific": "runs/bench/text-fusion-scientific",
}
K = 10


def user_states(pipeline: Pipeline, limit: int, rng: np.random.Generator) -> dict[str, Any]:
    """Hidden states of up to ``limit`` training users, with their histories and the model's
    own top-10 item indices (history excluded) for the agreement check."""
    model = pipeline.retrieval
    if not isinstance(model, TextSeqRecommender):
        raise SystemExit(f"{model.name}: the bench needs a text_seq run for user states")
    module = model._require(model.module)
    histories = model._require(model.histories)
    users = np.arange(len(histories))
    if len(users) > limit:
        users = np.sort(rng.choice(users, limit, replace=False))
    chosen = [histories[u] for u in users]
    with torch.no_grad():
        module.eval()
        table = module.item_table()
        tokens = encode_histories(chosen, model.config.max_len, module.start_token)
        hidden = module(torch.from_numpy(tokens), table)[:, -1].float().numpy()
    scores = model.score(users, chosen)
    for row, hist in zip(scores, chosen, strict=True):
        row[hist] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return {"states": hidden, "histories": chosen, "model_top": top, "cosine": module.cosine}


def latencies_us(index: VectorIndex, queries: np.ndarray, ef: int | None) -> dict[str, float]:
    """p50/p99 of single-query search time, after a short warm-up.

    Wall-clock time, and the thread's CPU time (``time.thread_time_ns``), which leaves out
    the time the thread waited for a core: on a busy machine the wall-clock p99 measures
    the scheduler, the CPU time the search.
    """
    for q in queries[:20]:
        index.search_one(q, K, ef_search=ef)
    wall = np.empty(len(queries))
    cpu = np.empty(len(queries))
    for j, q in enumerate(queries):
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        index.search_one(q, K, ef_search=ef)
        cpu[j] = (time.thread_time_ns() - start_cpu) / 1e3
        wall[j] = (time.perf_counter_ns() - start) / 1e3
    return {
        "p50_us": round(float(np.percentile(wall, 50)), 1),
        "p99_us": round(float(np.percentile(wall, 99)), 1),
        "cpu_p50_us": round(float(np.percentile(cpu, 50)), 1),
        "cpu_p99_us": round(float(np.percentile(cpu, 99)), 1),
    }


def recall(found: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]) -> float:
    hits = [len(set(f) & set(t)) / max(len(t), 1) for f, t in zip(found, truth, strict=True)]
    return round(float(np.mean(hits)), 4)


def bench_catalog(
    name: str,
    vectors: np.ndarray,
    queries: np.ndarray,
    histories: Sequence[np.ndarray] | None,
    model_top: np.ndarray | None,
    ms: Sequence[int],
    efs: Sequence[int],
    default_ef: int,
    ef_construction: int,
) -> dict[str, Any]:
    ids = [str(i) for i in range(len(vectors))]
    exact = VectorIndex.build(ids, vectors, metric="cosine", hnsw_threshold=len(ids) + 1)
    assert exact.kind == "flat"
    truth = [h.ids for h in exact.search(queries, K)]
    out: dict[str, Any] = {
        "catalog": name,
        "items": len(vectors),
        "dim": int(vectors.shape[1]),
        "queries": len(queries),
        "exact": latencies_us(exact, queries, None),
    }
    hist_truth = None
    if histories is not None:
        hist_truth = [
            exact.search_one(q, K, exclude={str(i) for i in h}).ids
            for q, h in zip(queries, histories, strict=True)
        ]
        if model_top is not None:
            model_ids = [[str(i) for i in m] for m in model_top]
            out["model_agreement"] = recall(hist_truth, model_ids)
    out["hnsw"] = []
    for m in ms:
        config = IndexConfig(
            metric="cosine",
            hnsw_threshold=0,
            hnsw_m=m,
            ef_construction=ef_construction,
            ef_search=default_ef,
        )
        start = time.perf_counter()
        hnsw = VectorIndex.build(ids, vectors, config)
        build_s = time.perf_counter() - start
        assert hnsw.kind == "hnsw"
        row: dict[str, Any] = {
            "M": m,
            "ef_construction": ef_construction,
            "build_s": round(build_s, 2),
            "by_ef": [],
        }
        for ef in efs:
            found = [h.ids for h in hnsw.search(queries, K, ef_search=ef)]
            row["by_ef"].append(
                {
                    "ef_search": ef,
                    "recall@10": recall(found, truth),
                    **latencies_us(hnsw, queries, ef),
                }
            )
        if histories is not None and hist_truth is not None:
            found = [
                hnsw.search_one(q, K, exclude={str(i) for i in h}).ids
                for q, h in zip(queries, histories, strict=True)
            ]
            row["recall@10_history_excluded"] = {
                "ef_search": default_ef,
                "recall@10": recall(found, hist_truth),
            }
        out["hnsw"].append(row)
        print(json.dumps({"catalog": name, **row}), flush=True)
    return out


def synthetic_catalog(
    bases: np.ndarray, n: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    unit = bases / np.maximum(np.linalg.norm(bases, axis=1, keepdims=True), 1e-12)
    pick = rng.integers(0, len(unit), n)
    jitter = rng.standard_normal((n, unit.shape[1])).astype(np.float32)
    jitter *= noise / np.sqrt(unit.shape[1])
    return (unit[pick] + jitter).astype(np.float32)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Vector index: HNSW recall@10 against exact search, and query latency",
        "",
        f"{report['setup']}",
        "",
        "| catalog | items | index | M | efSearch | recall@10 | p50 µs | p99 µs "
        "| CPU p50 µs | CPU p99 µs | build s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cat in report["catalogs"]:
        ex = cat["exact"]
        lines.append(
            f"| {cat['catalog']} | {cat['items']:,} | exact (flat) | | | 1.0000 | "
            f"{ex['p50_us']:.0f} | {ex['p99_us']:.0f} | {ex['cpu_p50_us']:.0f} | "
            f"{ex['cpu_p99_us']:.0f} | |"
        )
        for row in cat["hnsw"]:
            for e in row["by_ef"]:
                lines.append(
                    f"| {cat['catalog']} | {cat['items']:,} | HNSW | {row['M']} | "
                    f"{e['ef_search']} | {e['recall@10']:.4f} | {e['p50_us']:.0f} | "
                    f"{e['p99_us']:.0f} | {e['cpu_p50_us']:.0f} | {e['cpu_p99_us']:.0f} | "
                    f"{row['build_s']:.1f} |"
                )
    lines += ["", "History excluded (the service's case), at the default efSearch:", ""]
    for cat in report["catalogs"]:
        for row in cat["hnsw"]:
            ex = row.get("recall@10_history_excluded")
            if ex:
                lines.append(
                    f"- {cat['catalog']}, M={row['M']}, efSearch={ex['ef_search']}: "
                    f"recall@10 {ex['recall@10']:.4f}"
                )
    agreement = [c for c in report["catalogs"] if "model_agreement" in c]
    if agreement:
        lines += ["", "Exact index top-10 vs the model's own top-10 (history excluded):", ""]
        lines += [f"- {c['catalog']}: {c['model_agreement']:.4f}" for c in agreement]
    lines += ["", f"Command: `{report['command']}`", "", report["load"], ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--m", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--default-ef", type=int, default=IndexConfig().ef_search)
    parser.add_argument("--ef-construction", type=int, default=IndexConfig().ef_construction)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/results/index")
    args = parser.parse_args(argv)

    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    load_before = os.getloadavg()
    started = time.perf_counter()

    catalogs = []
    all_vectors, all_states = [], []
    for name, run in RUNS.items():
        pipeline = Pipeline.load(run)
        vectors = pipeline.item_vectors()
        users = user_states(pipeline, args.queries, rng)
        if not users["cosine"]:
            raise SystemExit(f"{run}: the bench assumes a cosine text_seq model")
        all_vectors.append(vectors)
        all_states.append(users["states"])
        catalogs.append(
            bench_catalog(
                name,
                vectors,
                users["states"],
                users["histories"],
                users["model_top"],
                args.m,
                args.ef,
                args.default_ef,
                args.ef_construction,
            )
        )
    if args.synthetic_items > 0:
        synth = synthetic_catalog(
            np.concatenate(all_vectors), args.synthetic_items, args.noise, rng
        )
        states = np.concatenate(all_states)
        states = states[rng.choice(len(states), min(args.queries, len(states)), replace=False)]
        catalogs.append(
            bench_catalog(
                f"synthetic-{args.synthetic_items // 1000}k",
                synth,
                states,
                None,
                None,
                args.m,
                args.ef,
                args.default_ef,
                args.ef_construction,
            )
        )
    load_after = os.getloadavg()
    report = {
        "setup": (
            f"faiss {faiss.__version__}, 1 thread, {platform.processor() or platform.machine()}, "
            f"metric cosine, k={K}; queries are text_seq user states (hidden state after each "
            f"sampled training user's history), at most {args.queries} per catalog; the "
            f"synthetic catalog is real item vectors of both runs (normalised) plus Gaussian "
            f"noise of norm ~{args.noise}, seed {args.seed}. Latency is one "
            "`VectorIndex.search_one` call (Python overhead included), wall clock and the "
            "thread's CPU time (which leaves out waiting for a core on a busy machine); "
            "recall is against the exact flat index."
        ),
        "catalogs": catalogs,
        "command": " ".join(["OMP_NUM_THREADS=1 python bench/run_index.py", *sys.argv[1:]]),
        "load": (
            "Load average (1, 5, 15 min) before the run: "
            + ", ".join(f"{x:.2f}" for x in load_before)
            + "; after: "
            + ", ".join(f"{x:.2f}" for x in load_after)
            + f"; total time {time.perf_counter() - started:.0f} s."
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
