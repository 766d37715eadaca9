"""Load benchmark of the HTTP service: latency and throughput over loopback.

Starts ``lmrec serve`` in a subprocess (a SQLite store in a temporary directory, one read
key) and drives ``GET /v1/users/{id}/recommendations?k=10`` from closed-loop clients: each
client sends its next request as soon as the previous answer arrives, for a random user of
the training data (their stored history is read from the store and scored by the model at
every request; nothing is cached). For every catalog, diversity (``0``: plain top-k; ``0.5``:
MMR re-ranking of the best 100) and number of concurrent clients, it measures p50/p95/p99
latency and requests per second over ``--duration`` seconds after ``--warmup`` seconds.
Any non-200 answer or transport error counts as an error; the bench fails if there is one.

Catalogs:

* ``ml-100k``: a trained run (default ``runs/bench/text-fusion-ml100k``, the frozen-MiniLM
  text_seq model with id fusion; 1,682 items), copied into the temporary directory (the
  original stays untouched);
* ``synthetic-100k``: 100,000 items. A MovieLens-format dataset (``u.item``/``u.data``) is
  written with ``--synthetic-users`` users whose histories follow a genre-clustered, Zipf-like
  popularity (seeded), and a SASRec model (``dim`` 128, the scoring width of text-fusion) is
  trained on it for one epoch by ``lmrec train``. The run is kept under ``--work`` and reused.
  The model's quality does not matter here; its serving cost at 100,000 items does (a
  transformer over the history, then a score for every item, top-k, re-ranking). Training
  takes about 10 minutes on a busy 2-core machine (a full softmax over 100,000 items).

The load generator is ``wrk`` (Debian package ``wrk``; one thread, one keep-alive connection
per client, the script ``bench/load/users.lua`` picking the users) when it is on PATH, else a
minimal HTTP/1.1 keep-alive client on asyncio streams in this process (``--client``): both
are far cheaper per request than a full client library, so that the load generator takes as
little as possible of the CPU it shares with the server. The server runs with ``--threads 1``
(torch and faiss threads per process) and ``--workers 2`` (one process per core).

Writes ``bench/results/load.json`` and ``bench/results/load.md``, with the machine's load
average before and after each catalog (the machine may be shared).

Usage::

    python bench/run_load.py                         # both catalogs, 1/8/32 clients, ~4 min
    python bench/run_load.py --catalogs ml-100k --duration 5 --clients 1 8   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.service import Store, create_key
from load_report import write_markdown

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RUN_PARTS = ("model", "ranker", "pipeline.json", "catalog.json", "config.json")


# --------------------------------------------------------------------------- catalogs
def copy_run(run: Path, into: Path) -> Path:
    """The files of ``run`` that serving reads, copied under ``into``."""
    target = into / run.name
    target.mkdir(parents=True)
    for part in RUN_PARTS:
        src = run / part
        if src.is_dir():
            shutil.copytree(src, target / part)
        elif src.exists():
            shutil.copy2(src, target / part)
    return target


def write_synthetic_dataset(directory: Path, n_items: int, n_users: int, seed: int) -> None:
    """A MovieLens-100K-format dataset: ``n_items`` items in 18 genres, clustered users.

    Items are assigned genres round-robin; each user prefers two genres and draws 15-40
    items, 80% from those genres, with a Zipf-like popularity within a genre.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    n_genres = 18  # the ML-100K genres without "unknown"
    genre_of = np.arange(n_items) % n_genres
    by_genre = [np.flatnonzero(genre_of == g) for g in range(n_genres)]
    words = ["Lost", "City", "Night", "River", "Storm", "Garden", "Empire", "Echo", "Glass"]
    items = []
    for i in range(n_items):
        flags = ["0"] * 19
        flags[1 + genre_of[i]] = "1"
        title = f"{words[i % 9]} {words[(i // 9) % 9]} {i + 1} ({1950 + i % 70})"
        items.append(f"{i + 1}|{title}|01-Jan-1995||http://x|" + "|".join(flags))
    (directory / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    lines = []
    for u in range(1, n_users + 1):
        liked = rng.choice(n_genres, size=2, replace=False)
        n = int(rng.integers(15, 41))
        seen: dict[int, None] = {}
        while len(seen) < n:
            if rng.random() < 0.8:
                pool = by_genre[int(rng.choice(liked))]
                item = int(pool[min(int(rng.zipf(1.3)) - 1, len(pool) - 1)])
            else:
                item = int(rng.integers(0, n_items))
            seen[item] = None
        for t, item in enumerate(seen):
            lines.append(f"{u}\t{item + 1}\t{int(rng.integers(1, 6))}\t{880000000 + 1000 * t + u}")
    (directory / "u.data").write_text("\n".join(lines) + "\n")


def synthetic_run(work: Path, n_items: int, n_users: int, seed: int) -> Path:
    """Train (once) a SASRec run on the synthetic catalog; returns the run directory."""
    name = f"sasrec-synthetic-{n_items // 1000}k"
    run = work / "runs" / name
    if (run / "model").is_dir():
        return run
    data = work / f"synthetic-{n_items // 1000}k"
    if not (data / "u.data").exists():
        write_synthetic_dataset(data, n_items, n_users, seed)
    config = work / f"{name}.toml"
    config.write_text(
        f'[data]\ndataset = "{data}"\n\n'
        '[model]\ntype = "sasrec"\ndim = 128\nmax_len = 50\n\n'
        "[model.trainer]\nepochs = 1\nbatch_size = 32\nseed = 0\n\n"
        f'[run]\noutput_dir = "{work / "runs"}"\nname = "{name}"\nthreads = 2\n'
        "show_progress = false\n"
    )
    print(f"training {name} on {n_items} items ...", flush=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lmrec.cli.main", "train", "--config", str(config)], check=True
    )
    print(f"  trained in {time.perf_counter() - start:.0f} s", flush=True)
    return run


def run_users(run: Path) -> list[str]:
    """The user ids of a run's training data (from its saved histories)."""
    ids = json.loads((run / "model" / "ids.json").read_text())
    return [str(u) for u in ids["users"]]


# --------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``lmrec serve`` in a subprocess over a fresh SQLite store, with a read key."""

    def __init__(self, run: Path, tmp: Path, threads: int, workers: int = 1) -> None:
        url = f"sqlite:///{tmp / 'service.db'}"
        store = Store(url)
        self.key = create_key(store, "read", "load bench").key
        store.close()
        self.port = free_port()
        self.log = tmp / "server.log"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "lmrec.cli.main", "serve", str(run), "--db", url]
        command += ["--port", str(self.port), "--threads", str(threads), "--log-level", "warning"]
        command += ["--workers", str(workers)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()[-3000:]}")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                if r.status_code == 200:
                    self.ready = r.json()
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server not ready:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """CPU time the server's processes (the worker processes included) have used
        (Linux ``/proc``; 0 elsewhere)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, parent = int(stat.parent.name), int(fields[1])
            if self.proc.pid in (pid, parent):
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- clients
class Connection:
    """One keep-alive HTTP/1.1 connection; ``get`` returns the status code and the body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, headers: bytes) -> tuple[int, bytes]:
        self.writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + headers + b"\r\n")
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Cell:
    catalog: str
    diversity: float
    clients: int
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_items: float
    server_cpu_ms: float
    """Server process CPU time (user + system) per request answered, warm-up included."""


async def drive(
    port: int,
    key: str,
    users: list[str],
    *,
    clients: int,
    diversity: float,
    k: int,
    warmup: float,
    duration: float,
    seed: int,
) -> tuple[list[float], int, int, int]:
    """Closed-loop clients; returns latencies (s) in the window, errors, items seen, and the
    number of answers including the warm-up."""
    headers = (
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\nAccept: application/json\r\n"
    ).encode()
    latencies: list[float] = []
    errors = 0
    items = 0
    answered = 0
    loop = asyncio.get_running_loop()
    start = loop.time()
    begin, end = start + warmup, start + warmup + duration

    async def client(n: int) -> None:
        nonlocal errors, items, answered
        rng = random.Random(seed * 1000 + n)
        conn = await Connection.open(port)
        try:
            while True:
                now = loop.time()
                if now >= end:
                    return
                user = rng.choice(users)
                path = f"/v1/users/{user}/recommendations?k={k}&diversity={diversity}"
                t0 = time.perf_counter()
                try:
                    status, body = await conn.get(path, headers)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    status, body = 0, b""
                    conn.close()
                    conn = await Connection.open(port)
                elapsed = time.perf_counter() - t0
                answered += 1
                if now >= begin:
                    if status != 200:
                        errors += 1
                    else:
                        latencies.append(elapsed)
                        items += body.count(b'"item_id"')
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    return latencies, errors, items, answered


WRK_SCRIPT = Path(__file__).resolve().parent / "load" / "users.lua"


def wrk_run(
    port: int,
    key: str,
    users_file: Path,
    *,
    clients: int,
    diversity: float,
    k: int,
    seconds: float,
    seed: int,
) -> dict[str, Any]:
    """One ``wrk`` run (one client thread, ``clients`` keep-alive connections); its JSON line."""
    command = [
        "wrk",
        "-t1",
        f"-c{clients}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        f"http://127.0.0.1:{port}",
        "--",
        key,
        str(users_file),
        str(k),
        str(diversity),
        str(seed),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines()[::-1] if x.startswith("{"))
    return dict(json.loads(line))


def measure_wrk(
    catalog: str,
    server: Server,
    users: list[str],
    args: argparse.Namespace,
    diversity: float,
    clients: int,
) -> Cell:
    """A cell driven by wrk: a warm-up run, then the measured run."""
    users_file = Path(server.log).with_name("users.txt")
    users_file.write_text("\n".join(users) + "\n")
    common = {"clients": clients, "diversity": diversity, "k": args.k, "seed": args.seed}
    cpu_before = server.cpu_seconds()
    warm = wrk_run(server.port, server.key, users_file, seconds=args.warmup, **common)
    got = wrk_run(server.port, server.key, users_file, seconds=args.duration, **common)
    cpu = server.cpu_seconds() - cpu_before
    window = got["duration_us"] / 1e6
    errors = sum(got[e] for e in ("connect", "read", "write", "status", "timeout"))
    errors += got["requests"] - got["ok"] - got["status"]  # answers that are not a 200
    return Cell(
        catalog=catalog,
        diversity=diversity,
        clients=clients,
        requests=got["ok"],
        errors=max(errors, 0),
        seconds=window,
        rps=got["ok"] / window,
        p50_ms=got["p50_us"] / 1000.0,
        p95_ms=got["p95_us"] / 1000.0,
        p99_ms=got["p99_us"] / 1000.0,
        max_ms=got["max_us"] / 1000.0,
        mean_items=got["items"] / max(got["ok"], 1),
        server_cpu_ms=1000.0 * cpu / max(got["requests"] + warm["requests"], 1),
    )


def measure(catalog: str, server: Server, users: list[str], args: argparse.Namespace) -> list[Cell]:
    cells = []
    for diversity in args.diversity:
        for clients in args.clients:
            if args.client == "wrk":
                cell = measure_wrk(catalog, server, users, args, diversity, clients)
                print(
                    f"  {catalog:<15} diversity {diversity:<4} clients {clients:>3}: "
                    f"{cell.rps:7.1f} req/s  p50 {cell.p50_ms:6.1f}  p95 {cell.p95_ms:6.1f}  "
                    f"p99 {cell.p99_ms:6.1f} ms  server CPU {cell.server_cpu_ms:5.1f} ms/req  "
                    f"errors {cell.errors}  (wrk)",
                    flush=True,
                )
                cells.append(cell)
                continue
            cpu_before = server.cpu_seconds()
            lat, errors, items, answered = asyncio.run(
                drive(
                    server.port,
                    server.key,
                    users,
                    clients=clients,
                    diversity=diversity,
                    k=args.k,
                    warmup=args.warmup,
                    duration=args.duration,
                    seed=args.seed,
                )
            )
            cpu = server.cpu_seconds() - cpu_before
            window = args.duration
            ms = np.asarray(lat) * 1000.0 if lat else np.zeros(1)
            cell = Cell(
                catalog=catalog,
                diversity=diversity,
                clients=clients,
                requests=len(lat),
                errors=errors,
                seconds=window,
                rps=len(lat) / window,
                p50_ms=float(np.percentile(ms, 50)),
                p95_ms=float(np.percentile(ms, 95)),
                p99_ms=float(np.percentile(ms, 99)),
                max_ms=float(ms.max()),
                mean_items=items / max(len(lat), 1),
                server_cpu_ms=1000.0 * cpu / max(answered, 1),
            )
            print(
                f"  {catalog:<15} diversity {diversity:<4} clients {clients:>3}: "
                f"{cell.rps:7.1f} req/s  p50 {cell.p50_ms:6.1f}  p95 {cell.p95_ms:6.1f}  "
                f"p99 {cell.p99_ms:6.1f} ms  server CPU {cell.server_cpu_ms:5.1f} ms/req  "
                f"errors {errors}",
                flush=True,
            )
            cells.append(cell)
    return cells


# --------------------------------------------------------------------------- report
def shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", nargs="+", default=["ml-100k", "synthetic-100k"])
    parser.add_argument("--ml100k-run", type=Path, default=ROOT / "runs/bench/text-fusion-ml100k")
    parser.add_argument("--work", type=Path, default=ROOT / "runs/load")
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--synthetic-users", type=int, default=2_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--diversity", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--threads", type=int, default=1, help="server torch/faiss threads")
    parser.add_argument(
        "--workers", type=int, default=2, help="server processes (lmrec serve --workers)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator: wrk (C, Debian package `wrk`; the default when it is on PATH) "
        "or the asyncio client of this script",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "load")
    args = parser.parse_args(argv)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk needs wrk on PATH (apt-get install wrk)")
    if max(args.clients) > 256 or args.duration > 120:
        parser.error("at most 256 clients and 120 s per row")

    catalogs = []
    all_cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="lmrec-load-") as tmp_name:
        tmp = Path(tmp_name)
        for name in args.catalogs:
            if name == "ml-100k":
                run = copy_run(args.ml100k_run, tmp / "runs")
            elif name == "synthetic-100k":
                run = synthetic_run(args.work, args.synthetic_items, args.synthetic_users, 0)
            else:
                parser.error(f"unknown catalog {name!r}")
            users = run_users(run)
            model = json.loads((run / "config.json").read_text())["model"]["type"]
            before = load_average()
            print(f"{name}: serving {run} (load average {before})", flush=True)
            (tmp / name).mkdir(parents=True, exist_ok=True)
            server = Server(run, tmp / name, args.threads, args.workers)
            try:
                cells = measure(name, server, users, args)
            finally:
                server.stop()
            all_cells += cells
            catalogs.append(
                {
                    "name": name,
                    "run": shown(args.ml100k_run if name == "ml-100k" else run),
                    "model": model,
                    "items": int(server.ready["items"]),
                    "model_version": server.ready["model_version"],
                    "users": len(users),
                    "load_before": before,
                    "load_after": load_average(),
                    "cells": [asdict(c) for c in cells],
                }
            )
    target = [c for c in all_cells if c.catalog == "synthetic-100k" and c.clients == 32]
    worst = max((c.p99_ms for c in target), default=None)
    result = {
        "settings": {k: (shown(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "processor": processor(),
            "python": platform.python_version(),
        },
        "catalogs": catalogs,
        "goal": {
            "p99_ms": 50.0,
            "clients": 32,
            "worst_p99_ms": worst,
            "met": None if worst is None else worst <= 50.0,
        },
        "errors": sum(c.errors for c in all_cells),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out.with_suffix(".md"))
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
