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

from lmrec.cli.audit import add_audit_parser
from lmrec.cli.privacy import add_privacy_parser, boundary_user
from lmrec.cli.service import add_service_parsers
from lmrec.errors import LmrecError

RECOMMENDED = "recommended"
"""``lmrec recommend --diversity`` given without a value."""


def _diversity_arg(text: str) -> float | str:
    if text == RECOMMENDED:  # argparse passes a string ``const`` through ``type`` too
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}") from None


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise LmrecError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def _parse_attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise LmrecError(f"--attr expects name=value, got {text!r}")
    return name.strip(), value.strip()


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
    if args.exclude_deleted_from:
        overrides["data.deleted_users_from"] = args.exclude_deleted_from
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
    ranking = out.record.ranking or {}
    ranker_privacy = ranking.get("fit", {}).get("privacy")
    if out.record.privacy or ranker_privacy:
        from lmrec.privacy.dp import describe_privacy

        if out.record.privacy:
            print(describe_privacy(out.record.privacy))
        if ranker_privacy:
            print("ranker " + describe_privacy(ranker_privacy))
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
    user = boundary_user(args.run, user)  # a raw id becomes the run's pseudonym
    attributes = dict(_parse_attribute(a) for a in args.attr) if args.attr else None
    diversity, method = args.diversity, args.diversity_method
    if diversity == RECOMMENDED:  # --diversity without a value
        from lmrec.diversity import RECOMMENDED_LAM, RECOMMENDED_METHOD

        default = pipeline.diversity.method if pipeline.diversity else RECOMMENDED_METHOD
        method = method or default
        diversity = RECOMMENDED_LAM[method]
    recs = pipeline.recommend(
        user,
        history=history,
        text=args.text,
        attributes=attributes,
        k=args.k,
        exclude_seen=not args.include_seen,
        diversity=diversity,
        diversity_method=method,
        max_per_category=args.max_per_category,
        explain=args.explain,
    )
    if args.json:
        print(json.dumps([r.to_dict() for r in recs], indent=2))
        return 0
    model = pipeline.retrieval
    if args.text is not None or attributes:
        from lmrec.coldstart import query_text

        print(f"stated: {query_text(args.text, attributes)}")
    item_ids: list[str] = []
    who = ""
    if history is not None:
        item_ids = history[-5:]
        who = "this history"
    elif user is not None:
        item_ids = model.item_map.decode(model.history_of(user)[-5:]) if model.item_map else []
        who = f"user {user}"
    if item_ids:
        recent = "; ".join(pipeline.catalog.get(i, {}).get("title", i) for i in reversed(item_ids))
        print(f"{who} recently: {recent}")
    for r in recs:
        title = r.title or r.item_id
        cats = ", ".join(r.categories[:3])
        print(f"{r.rank:>3}. {title}" + (f"  [{cats}]" if cats else "") + f"  ({r.score:.3f})")
        if r.explanation is not None:
            print(f"       {r.explanation.sentence}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from lmrec.pipeline import Pipeline

    pipeline = Pipeline.load(Path(args.run))
    history = [h.strip() for h in args.history.split(",") if h.strip()] if args.history else None
    user = boundary_user(args.run, str(args.user)) if args.user is not None else None
    profile = pipeline.profile(
        user, history=history, half_life=args.half_life, recent=args.recent, top=args.top
    )
    if args.json:
        print(json.dumps(profile.to_dict(), indent=2))
        return 0
    who = f"user {args.user}" if args.user is not None else "this history"
    print(f"{who}: {profile.n_items} items — {profile.summary()}")
    views = (
        (f"recency-weighted (half-life {profile.half_life:g} items)", profile.overall),
        (f"recent ({profile.recent.n_items} items)", profile.recent),
        (f"long-term ({profile.long_term.n_items} items)", profile.long_term),
    )
    for label, view in views:
        print(f"  {label}:")
        if view.categories:
            cats = ", ".join(f"{t.name} {t.weight:.0%}" for t in view.categories)
            print(f"    categories  {cats}")
        if view.keywords:
            print(f"    keywords    {', '.join(f'{t.name} {t.weight:.0%}' for t in view.keywords)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lmrec.demo import run_demo

    run_demo(output_dir=Path(args.output_dir), user=args.user, quick=args.quick)
    return 0


def cmd_items_add(args: argparse.Namespace) -> int:
    from lmrec.items import read_items_file
    from lmrec.pipeline import Pipeline

    run = Path(args.run)
    items = read_items_file(args.file)
    pipeline = Pipeline.load(run)
    result = pipeline.add_items(items)
    pipeline.update_run(run)
    if args.json:
        print(json.dumps({"added": result.added, "updated": result.updated}, indent=2))
        return 0
    n_items = len(pipeline.retrieval.item_map) if pipeline.retrieval.item_map else 0
    print(
        f"added {len(result.added)} and updated {len(result.updated)} items in {run} "
        f"(catalog now {n_items} items)"
    )
    updated = set(result.updated)
    for item in items:
        cats = ", ".join(item.categories[:3])
        mark = "~" if item.item_id in updated else "+"
        shown = f"  {mark} {item.item_id}  {item.display_title[:70]}"
        print(shown + (f"  [{cats}]" if cats else ""))
    return 0


def cmd_items_boost(args: argparse.Namespace) -> int:
    from lmrec.pipeline import Pipeline

    run = Path(args.run)
    pipeline = Pipeline.load(run)
    pipeline.set_new_item_boost(args.boost)
    pipeline.update_run(run)
    new = int(pipeline.retrieval.new_items().sum())  # type: ignore[attr-defined]
    print(f"new-item boost of {run} set to {args.boost:g} ({new} items without training data)")
    return 0


def _add_items_parser(sub: Any) -> None:
    items = sub.add_parser("items", help="manage the items of a trained run")
    items_sub = items.add_subparsers(dest="items_command", required=True)
    add = items_sub.add_parser(
        "add",
        help="add new items (or update known ones) from their text, without retraining",
        description="Add items to a run trained with a text model; they are recommendable at "
        "once. Records have id, title, optional text (or description) and categories.",
    )
    add.add_argument("run", help="run directory (written back in place)")
    add.add_argument(
        "--file",
        required=True,
        help="items.jsonl (one JSON object a line) or items.csv (header id,title,text,"
        "categories; categories separated by |)",
    )
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(func=cmd_items_add)
    boost = items_sub.add_parser(
        "boost",
        help="set the score boost of new items (text_seq runs)",
        description="Lift the items without a training interaction (added or held out) by "
        "BOOST standard deviations of each user's scores; 0 turns it off. See "
        "bench/results/coldstart-items.md for what it costs and gains.",
    )
    boost.add_argument("run", help="run directory (written back in place)")
    boost.add_argument("boost", type=float, help="boost in [0, 5], e.g. 0.25")
    boost.set_defaults(func=cmd_items_boost)


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
    train.add_argument(
        "--exclude-deleted-from",
        metavar="DB_URL",
        help="leave out the users deleted through this service store (= data.deleted_users_from)",
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
    who = rec.add_mutually_exclusive_group()
    who.add_argument("--user", help="user id as in the dataset")
    who.add_argument("--history", help="comma-separated item ids, oldest first (a new user)")
    rec.add_argument(
        "--text",
        help='stated preferences of a new user, e.g. "I like heist films" (a text model only; '
        "may be combined with --history or --user)",
    )
    rec.add_argument(
        "--attr",
        action="append",
        metavar="NAME=VALUE",
        help="a user attribute of a new user, e.g. --attr age=24 --attr occupation=writer",
    )
    rec.add_argument("-k", type=int, default=10, help="number of items (default 10)")
    rec.add_argument(
        "--explain",
        action="store_true",
        help="print why each item is recommended (the history items behind it)",
    )
    rec.add_argument("--include-seen", action="store_true", help="keep already-seen items")
    rec.add_argument(
        "--diversity",
        type=_diversity_arg,
        nargs="?",
        const=RECOMMENDED,
        metavar="LAMBDA",
        help="weight of diversity against relevance, 0 to 1; without a value the "
        "benchmark's recommended λ of the method (default: the run's [diversity] setting, "
        "else 0, the plain ranking)",
    )
    rec.add_argument(
        "--diversity-method",
        choices=["mmr", "dpp"],
        help="re-ranker used with --diversity (default: the run's, else mmr)",
    )
    rec.add_argument(
        "--max-per-category",
        type=int,
        metavar="N",
        help="at most N items of one category (genre) in the list (0: no cap, overriding "
        "the run's)",
    )
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.set_defaults(func=cmd_recommend)

    demo = sub.add_parser("demo", help="train the baselines on MovieLens-100K and show results")
    demo.add_argument("--output-dir", default="runs/demo", help="where the runs go")
    demo.add_argument("--user", default="1", help="user to show recommendations for")
    demo.add_argument("--quick", action="store_true", help="fewer epochs (for smoke tests)")
    demo.set_defaults(func=cmd_demo)
    prof = sub.add_parser("profile", help="a readable summary of a user's interests")
    prof.add_argument("run", help="run directory")
    prof_who = prof.add_mutually_exclusive_group(required=True)
    prof_who.add_argument("--user", help="user id as in the dataset")
    prof_who.add_argument("--history", help="comma-separated item ids, oldest first")
    prof.add_argument("--half-life", type=float, help="recency half-life in items (default 20)")
    prof.add_argument("--recent", type=int, help="items in the recent view (default 10)")
    prof.add_argument("--top", type=int, default=5, help="terms per list (default 5)")
    prof.add_argument("--json", action="store_true", help="print JSON")
    prof.set_defaults(func=cmd_profile)
    _add_items_parser(sub)
    add_service_parsers(sub)
    add_privacy_parser(sub)
    add_audit_parser(sub)
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
