"""The Markdown report of ``bench/run_load.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_markdown(result: dict[str, Any], path: Path) -> None:
    args = result["settings"]
    lines = [
        "# Service load benchmark",
        "",
        f"`python bench/run_load.py` — closed-loop clients over loopback, "
        f"`GET /v1/users/{{id}}/recommendations?k={args['k']}&diversity=…` for random training "
        f"users, {args['warmup']:g} s warm-up then {args['duration']:g} s measured per row; "
        f"server `lmrec serve --threads {args['threads']} --workers "
        f"{args.get('workers', 1)}` (SQLite store); "
        f"{result['machine']['cpus']} CPUs ({result['machine']['processor']}), "
        "load generator on the same machine.",
        "",
    ]
    for cat in result["catalogs"]:
        lines += [
            f"## {cat['name']}: {cat['items']:,} items, model `{cat['model']}`",
            "",
            f"Run `{cat['run']}`; {cat['users']:,} users. Load average (1, 5, 15 min) before: "
            f"{', '.join(map(str, cat['load_before']))}; after: "
            f"{', '.join(map(str, cat['load_after']))}.",
            "",
            "| diversity | clients | req/s | p50 ms | p95 ms | p99 ms | max ms "
            "| server CPU ms/req | errors |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in cat["cells"]:
            lines.append(
                f"| {c['diversity']:g} | {c['clients']} | {c['rps']:.1f} | {c['p50_ms']:.1f} "
                f"| {c['p95_ms']:.1f} | {c['p99_ms']:.1f} | {c['max_ms']:.1f} "
                f"| {c['server_cpu_ms']:.1f} | {c['errors']} |"
            )
        lines.append("")
    goal = result["goal"]
    lines += [
        f"Goal: p99 <= {goal['p99_ms']:g} ms at {goal['clients']} clients on the 100k catalog — "
        + (
            "**met**"
            if goal["met"] is True
            else ("**missed**" if goal["met"] is False else "not measured")
        )
        + (f" (worst p99 {goal['worst_p99_ms']:.1f} ms)." if goal["met"] is not None else "."),
        "",
    ]
    path.write_text("\n".join(lines))
