"""The ``lmrec`` command line. Commands parse arguments, call the library and format output.

User errors (bad config, unknown id, missing data) exit with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmrec.errors import LmrecError


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise LmrecError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def cmd_data_info(args: argparse.Namespace) -> int:
    from lmrec.data.registry import load_dataset

    dataset = load_dataset(args.dataset)
    summary = dataset.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        shown = f"{value:.6g}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lmrec.config import load_config
    from lmrec.experiment import TABLE_METRICS, run_experiment
    from lmrec.training.distributed import is_main_process, process_group_from_env

    overrides = dict(_parse_override(o) for o in args.set or [])
    if args.no_progress:
        overrides["run.show_progress"] = False
    config = load_config(args.config, overrides)
    # Under torchrun every process trains (DDP); rank 0 alone writes the run and reports.
    with process_group_from_env():
        out = run_experiment(config, Path(args.run_dir) if args.run_dir else None, args.resume)
        if not is_main_process():
            return 0
    metrics = out.record.metrics
    shown = ", ".join(f"{m} {metrics[m]:.4f}" for m in TABLE_METRICS if m in metrics)
    print(f"{config.model.type} on {out.record.dataset}: {shown}")
    print(f"trained in {out.record.train_seconds:.1f} s; run written to {out.run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from lmrec.evaluation import markdown_table
    from lmrec.experiment import TABLE_METRICS, evaluate_run

    record = evaluate_run(Path(args.run), args.part, progress=not args.no_progress)
    if args.json:
        print(json.dumps(record.metrics, indent=2))
        return 0
    row = {"model": record.model, **record.metrics}
    print(markdown_table([row], ["model", *TABLE_METRICS], title=f"{record.dataset} ({args.part})"))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from lmrec.pipeline import Pipeline

    pipeline = Pipeline.load(Path(args.run))
    history = [h.strip() for h in args.history.split(",") if h.strip()] if args.history else None
    user = str(args.user) if args.user is not None else None
    recs = pipeline.recommend(
        user,
        history=history,
        k=args.k,
        exclude_seen=not args.include_seen,
        diversity=args.diversity,
        diversity_method=args.diversity_method,
        max_per_category=args.max_per_category,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in recs], indent=2))
        return 0
    model = pipeline.retrieval
    if history is not None:
        item_ids = history[-5:]
        who = "this history"
    else:
        assert user is not None
        item_ids = model.item_map.decode(model.history_of(user)[-5:]) if model.item_map else []
        who = f"user {user}"
    if item_ids:
        recent = "; ".join(pipeline.catalog.get(i, {}).get("title", i) for i in reversed(item_ids))
        print(f"{who} recently: {recent}")
    for r in recs:
        title = r.title or r.item_id
        cats = ", ".join(r.categories[:3])
        print(f"{r.rank:>3}. {title}" + (f"  [{cats}]" if cats else "") + f"  ({r.score:.3f})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lmrec.demo import run_demo

    run_demo(output_dir=Path(args.output_dir), user=args.user, quick=args.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmrec", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="inspect datasets")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    info = data_sub.add_parser("info", help="counts and shape of a dataset")
    info.add_argument("dataset", help="a name (ml-100k, amazon-scientific, ...) or a path")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_data_info)

    train = sub.add_parser("train", help="train and evaluate a model from a TOML config")
    train.add_argument("--config", required=True, help="experiment TOML file")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.epochs=5",
    )
    train.add_argument("--run-dir", help="run directory (default runs/<model>-<dataset>)")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.add_argument(
        "--resume", action="store_true", help="continue from the run directory's last checkpoint"
    )
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a run directory again")
    ev.add_argument("run", help="run directory")
    ev.add_argument("--part", choices=["test", "valid"], default="test")
    ev.add_argument("--json", action="store_true", help="print JSON")
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ev.set_defaults(func=cmd_evaluate)

    rec = sub.add_parser("recommend", help="recommend items for a user or a history")
    rec.add_argument("run", help="run directory")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="user id as in the dataset")
    who.add_argument("--history", help="comma-separated item ids, oldest first (a new user)")
    rec.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    rec.add_argument("--include-seen", action="store_true", help="keep already-seen items")
    rec.add_argument(
        "--diversity",
        type=float,
        default=0.0,
        metavar="LAMBDA",
        help="weight of diversity against relevance, 0 to 1 (default 0: plain ranking)",
    )
    rec.add_argument(
        "--diversity-method",
        choices=["mmr", "dpp"],
        default="mmr",
        help="re-ranker used with --diversity (default mmr)",
    )
    rec.add_argument(
        "--max-per-category",
        type=int,
        metavar="N",
        help="at most N items of one category (genre) in the list",
    )
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(func=cmd_recommend)

    demo = sub.add_parser("demo", help="train the baselines on MovieLens-100K and show results")
    demo.add_argument("--output-dir", default="runs/demo", help="where the runs go")
    demo.add_argument("--user", default="1", help="user to show recommendations for")
    demo.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lmrec`` script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) < 1:
        parser.error(f"-k must be at least 1, got {args.k}")
    try:
        return int(args.func(args))
    except LmrecError as e:
        print(f"lmrec: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lmrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
