"""``lmrec privacy ...``: create a pseudonym key, compute the pseudonym of a raw user id."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_privacy_keygen(args: argparse.Namespace) -> int:
    from lmrec.privacy import write_key_file

    path = write_key_file(Path(args.path))
    print(
        f"wrote a new pseudonym key to {path} (owner-only, 0600); keep it secret and backed "
        "up: without it pseudonyms cannot be recomputed, with it they can be linked to raw ids"
    )
    return 0


def cmd_privacy_pseudonym(args: argparse.Namespace) -> int:
    from lmrec.errors import ConfigError
    from lmrec.privacy import Pseudonymizer, pseudonymizer_for_run

    if args.key_file:
        pseudonymizer = Pseudonymizer.from_key_file(args.key_file)
    elif args.run:
        from_run = pseudonymizer_for_run(Path(args.run))
        if from_run is None:
            raise ConfigError(f"run {args.run} does not pseudonymize its users")
        pseudonymizer = from_run
    else:
        pseudonymizer = Pseudonymizer.from_env()
    for raw in args.user_id:
        print(pseudonymizer.pseudonym(raw))
    return 0


def boundary_user(run: str | Path, user: str | None) -> str | None:
    """The id a run's model knows ``user`` by: its pseudonym when the run pseudonymized."""
    if user is None:
        return None
    from lmrec.privacy import pseudonymizer_for_run

    pseudonymizer = (
        pseudonymizer_for_run(Path(run)) if (Path(run) / "config.json").exists() else None
    )
    return user if pseudonymizer is None else pseudonymizer.pseudonym(user)


def add_privacy_parser(sub: Any) -> None:
    """Add ``lmrec privacy keygen`` and ``lmrec privacy pseudonym`` to the subcommands."""
    privacy = sub.add_parser("privacy", help="pseudonym keys and pseudonyms of user ids")
    privacy_sub = privacy.add_subparsers(dest="privacy_command", required=True)
    keygen = privacy_sub.add_parser(
        "keygen", help="create a new pseudonym key file (owner-only permissions)"
    )
    keygen.add_argument("path", help="the key file to create; an existing file is never replaced")
    keygen.set_defaults(func=cmd_privacy_keygen)
    pseudonym = privacy_sub.add_parser(
        "pseudonym", help="print the pseudonym of raw user ids (e.g. to find or delete a user)"
    )
    pseudonym.add_argument("user_id", nargs="+", help="raw user ids")
    where = pseudonym.add_mutually_exclusive_group()
    where.add_argument("--key-file", help="the key file (default: LMREC_PSEUDONYM_KEY_FILE)")
    where.add_argument("--run", help="use the key of this run directory's [privacy] table")
    pseudonym.set_defaults(func=cmd_privacy_pseudonym)
