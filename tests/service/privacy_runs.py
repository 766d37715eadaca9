"""Helpers of the service privacy tests: data whose user ids are e-mail-like raw ids, and runs
trained on it with pseudonymization on."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lmrec.cli.main import main

N_USERS, N_ITEMS = 24, 30
SASREC = 'type = "sasrec"\ndim = 16\nmax_len = 10\n[model.trainer]\nepochs = 2\nbatch_size = 8'
TEXT_MEAN = 'type = "text_mean"'


def raw_user(u: int) -> str:
    return f"alice{u}@example.com-user-{u}"


def is_action(item: str) -> bool:
    return int(item.removeprefix("i")) <= N_ITEMS // 2


def write_private_data(root: Path) -> Path:
    """Even users watch Action items i1-i15, odd users Romance items i16-i30 (8 each)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["user,item,ts"]
    for u in range(N_USERS):
        half = N_ITEMS // 2
        pool = range(1, half + 1) if u % 2 == 0 else range(half + 1, N_ITEMS + 1)
        lines += [
            f"{raw_user(u)},i{i},{1000 * t + u}" for t, i in enumerate(list(pool)[u % 3 :][:8])
        ]
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    items = ["item_id,title,genre"]
    for i in range(1, N_ITEMS + 1):
        kind = "Action" if i <= N_ITEMS // 2 else "Romance"
        items.append(f"i{i},{kind} film {i},{kind}")
    (root / "items.csv").write_text("\n".join(items) + "\n")
    return root


def train_private_run(
    data: Path,
    runs: Path,
    name: str,
    model: str,
    key: Path,
    *extra: str,
) -> Path:
    """Train ``model`` on ``data`` with pseudonymization (``key``) and scrubbing on."""
    runs.mkdir(parents=True, exist_ok=True)
    config = runs / f"{name}.toml"
    config.write_text(
        f"""
[data.table]
path = "{data / "events.csv"}"
user_col = "user"
item_col = "item"
time_col = "ts"
items_path = "{data / "items.csv"}"
categories_col = "genre"

[model]
{model}

[run]
output_dir = "{runs}"
name = "{name}"
show_progress = false

[privacy]
pseudonymize = true
key_file = "{key}"
scrub = true
"""
    )
    assert main(["train", "--config", str(config), *extra]) == 0
    return runs / name


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def file_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under ``root`` (or ``root`` itself), and every member of its zip files."""
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        data = path.read_bytes()
        yield path, data
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    yield path / name, z.read(name)


def leaks(root: Path, needles: list[str]) -> list[str]:
    """``"<needle> in <file>"`` for every needle found in the bytes of a file under ``root``."""
    return [
        f"{needle} in {path}"
        for path, data in file_bytes(root)
        for needle in needles
        if needle.encode() in data
    ]


def sqlite_files(url: str) -> list[Path]:
    """The database file of a ``sqlite:///`` URL and its WAL and shared-memory files."""
    path = Path(url.removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def database_text(url: str) -> str:
    """Every row of every table of the store, as text (SQLite read directly)."""
    if not url.startswith("sqlite:///"):
        from sqlalchemy import create_engine, inspect, text

        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            rows = [
                str(tuple(r))
                for table in inspect(engine).get_table_names()
                for r in conn.execute(text(f'SELECT * FROM "{table}"'))
            ]
        engine.dispose()
        return "\n".join(rows)
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(str(r) for t in tables for r in conn.execute(f'SELECT * FROM "{t}"'))


def needles_in(text: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text]


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """The captured log records of the server side (the test client's own httpx log of the
    URLs it requests is left out), formatted with their arguments and tracebacks."""
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    return "\n".join(handler.format(r) for r in caplog.records if not r.name.startswith("httpx"))
