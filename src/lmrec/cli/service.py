"""``lmrec serve`` and ``lmrec keys``: run the HTTP service, manage its API keys."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lmrec.errors import LmrecError

DATABASE_ENV = "LMREC_DATABASE_URL"


def _default_db() -> str:
    from lmrec.service.store import DEFAULT_DATABASE_URL

    return os.environ.get(DATABASE_ENV, DEFAULT_DATABASE_URL)


def _store(args: argparse.Namespace) -> Any:
    try:
        from lmrec.service.store import Store
    except ImportError as e:
        raise LmrecError(f"the service needs its extra: pip install 'lmrec[serve]' ({e})") from None
    return Store(args.db or _default_db())


def cmd_serve(args: argparse.Namespace) -> int:
    store = _store(args)
    import uvicorn

    from lmrec.service import RecommendationService, create_app
    from lmrec.service.processes import set_threads

    if args.workers < 1:
        raise LmrecError(f"--workers must be at least 1, got {args.workers}")
    if args.sync_seconds <= 0:
        raise LmrecError(f"--sync-seconds must be positive, got {args.sync_seconds}")
    set_threads(args.threads)
    # loads and checks the run (the single-process server owns its heap: freeze it)
    service = RecommendationService(store, Path(args.run), freeze_heap=args.workers == 1)
    if not any(k.revoked_at is None for k in store.api_keys()):
        print(
            "lmrec: no API keys yet; make one with: lmrec keys create --scope read "
            f"--db {store.url}",
            file=sys.stderr,
        )
    print(
        f"serving {service.current.version} ({service.current.pipeline.name}, "
        f"{service.current.n_items} items) on http://{args.host}:{args.port}"
        + (f" with {args.workers} worker processes" if args.workers > 1 else ""),
        flush=True,
    )
    # No access log: request paths hold user ids.
    options = {"host": args.host, "port": args.port, "access_log": False}
    if args.workers == 1:
        uvicorn.run(create_app(service), log_level=args.log_level, **options)
        return 0
    # Each worker process loads the run itself and follows the store's changes; the run
    # named here becomes the store's, so that a worker restarted later loads it too.
    from lmrec.service.processes import WorkerSettings, reuse_port_supported, serve_processes

    if not reuse_port_supported():
        raise LmrecError("--workers > 1 needs SO_REUSEPORT sockets (Linux or BSD)")
    run = str(Path(args.run).resolve())
    store.record_change(run)
    service.close()
    del service
    settings = WorkerSettings(
        run=run,
        db=store.url,
        host=args.host,
        port=args.port,
        threads=args.threads,
        sync_seconds=args.sync_seconds,
        log_level=args.log_level,
    )
    return serve_processes(settings, args.workers)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from lmrec.service.auth import create_key

    new = create_key(_store(args), args.scope, args.name)
    print(new.key)
    print(
        f"key id {new.key_id}, scope {new.scope}: store the key now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not _store(args).revoke_key(args.key_id):
        raise LmrecError(f"no active API key with id {args.key_id!r}")
    print(f"revoked key {args.key_id}")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    def when(t: float | None) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M") if t else "-"

    for key in _store(args).api_keys():
        state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
        print(f"{key.key_id}  {key.scope:<5}  created {when(key.created_at)}  {state}  {key.name}")
    return 0


def cmd_users_delete(args: argparse.Namespace) -> int:
    from lmrec.service.privacy import ServiceBoundary
    from lmrec.service.runtime import forget_stored_user

    run = Path(args.run)
    if not (run / "config.json").is_file():  # a wrong path must not fall back to raw ids
        raise LmrecError(f"{run} is not a run directory (config.json is missing)")
    store = _store(args)
    boundary = ServiceBoundary.for_run(run)
    total = sum(forget_stored_user(store, boundary, user) for user in args.user_id)
    # the ids are not echoed: this output may end up in logs
    print(
        f"deleted {len(args.user_id)} user(s): {total} events removed; recorded in the "
        "deletion register (train with --exclude-deleted-from to leave them out)"
    )
    return 0


def add_service_parsers(sub: Any) -> None:
    """Add ``serve``, ``keys`` and ``users`` to the ``lmrec`` sub-command parsers."""
    db_help = f"database URL (default ${DATABASE_ENV} or sqlite:///runs/service.db)"

    serve = sub.add_parser("serve", help="serve recommendations over HTTP")
    serve.add_argument("run", help="run directory to serve")
    serve.add_argument("--db", help=db_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--threads", type=int, help="torch and faiss threads per request")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port, each with its own copy of the model "
        "(default 1; about one per CPU core)",
    )
    serve.add_argument(
        "--sync-seconds",
        type=float,
        default=1.0,
        help="with --workers > 1: how often each process checks the store for items and "
        "reloads made through another process (default 1)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="manage the service's API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key and print it (shown once)")
    create.add_argument("--scope", required=True, choices=["read", "write", "admin"])
    create.add_argument("--name", default="", help="a note on who uses the key")
    create.add_argument("--db", help=db_help)
    create.set_defaults(func=cmd_keys_create)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", help="the key id (the 12 hex digits after lmrec_)")
    revoke.add_argument("--db", help=db_help)
    revoke.set_defaults(func=cmd_keys_revoke)
    listing = keys_sub.add_parser("list", help="list keys (ids and scopes, never the keys)")
    listing.add_argument("--db", help=db_help)
    listing.set_defaults(func=cmd_keys_list)

    users = sub.add_parser("users", help="forget users of the service's store")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    forget = users_sub.add_parser(
        "delete",
        help="delete users' events and record them so that the next training leaves them out",
    )
    forget.add_argument("run", help="the served run (its key pseudonymizes the raw ids)")
    forget.add_argument("user_id", nargs="+", help="raw user ids")
    forget.add_argument("--db", help=db_help)
    forget.set_defaults(func=cmd_users_delete)
