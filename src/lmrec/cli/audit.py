"""``lmrec audit RUN``: the membership-inference audit of a trained run (thin: parse, call
:func:`lmrec.privacy.audit.audit_run`, print)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_audit(args: argparse.Namespace) -> int:
    from lmrec.privacy.audit import AUDIT_FILE, audit_run
    from lmrec.privacy.dp import describe_privacy

    result = audit_run(
        Path(args.run),
        max_users=args.max_users if args.max_users > 0 else None,
        bootstrap=args.bootstrap,
        seed=args.seed,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(result.summary())
    print(
        f"mean loss: members {result.member_loss_mean:.4f}, "
        f"non-members {result.nonmember_loss_mean:.4f}"
    )
    if result.design == "interactions":
        print(
            "note: not a cold_user run, so non-members are the same users' later held-out "
            "interactions; time and history length also separate the groups"
        )
    if result.privacy:
        print(describe_privacy(result.privacy))
    print(f"written to {Path(args.run) / AUDIT_FILE}")
    return 0


def add_audit_parser(sub: Any) -> None:
    """Register ``lmrec audit`` on the top-level subparsers ``sub``."""
    audit = sub.add_parser(
        "audit",
        help="membership-inference audit of a run (attack AUC, 0.5 = nothing leaks)",
        description="Loss-threshold membership-inference attack on a trained run: compares "
        "the model's loss on training users' interactions with held-out ones (on a cold_user "
        "split: with users never trained on) and reports the attack AUC with a bootstrap "
        "95%% confidence interval. Writes audit.json into the run directory.",
    )
    audit.add_argument("run", help="run directory")
    audit.add_argument(
        "--max-users", type=int, default=2000, help="users per group (0: all; default 2000)"
    )
    audit.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    audit.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.set_defaults(func=cmd_audit)
