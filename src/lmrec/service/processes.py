"""Several serving processes on one port (``lmrec serve --workers N``).

Each worker process binds its own socket to the same address with ``SO_REUSEPORT`` (so a
port in use fails at once), loads the run, and only then listens and runs uvicorn on it; the
kernel spreads new connections over the listening sockets by a hash of the client's address
and port, so keep-alive clients end up spread over the processes, and a worker still loading
(at start or after a restart) gets none of them. (With one socket shared by all
processes, as uvicorn's own ``workers`` option does, whichever process accepts first takes
the connection: in the load benchmark one process often held all 32 client connections
while the other idled.)

The workers share the store and follow its change counter
(:meth:`lmrec.service.RecommendationService.follow_store`), so an item or a reload made
through one of them reaches the others. The parent process only supervises: it restarts a
worker that dies after it started, gives up when workers keep dying, and on SIGTERM or
SIGINT stops them all (uvicorn's graceful shutdown in each).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType

log = logging.getLogger(__name__)

STARTUP_SECONDS = 60.0
"""A worker that exits this soon after it started is taken as unable to start: no retry."""
MAX_RESTARTS = 5
"""Restarts allowed within :data:`RESTART_WINDOW` seconds before the supervisor gives up."""
RESTART_WINDOW = 60.0
BACKLOG = 2048
"""Pending connections a worker's socket holds."""


@dataclass(frozen=True)
class WorkerSettings:
    """What every worker process needs (pickled to the spawned processes)."""

    run: str
    db: str
    host: str
    port: int
    threads: int | None
    sync_seconds: float
    log_level: str


def reuse_port_supported() -> bool:
    """Whether this platform lets several sockets listen on one port (Linux, the BSDs)."""
    return hasattr(socket, "SO_REUSEPORT")


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening.

    The kernel hands connections only to listening sockets: until :meth:`socket.listen`,
    the other workers on the port take every new connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def set_threads(threads: int | None) -> None:
    """Torch and faiss threads of this process (``None``: leave their defaults)."""
    if threads is not None:
        import faiss
        import torch

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)


def worker_main(settings: WorkerSettings) -> None:
    """One worker process: load the run, follow the store, serve on a reuse-port socket."""
    import uvicorn

    from lmrec.service import RecommendationService, Store, create_app

    set_threads(settings.threads)
    sock = bound_socket(settings.host, settings.port)  # a port in use fails before the load
    service = RecommendationService(
        Store(settings.db), settings.run, follow_store=True, freeze_heap=True
    )
    service.follow_store(settings.sync_seconds)
    sock.listen(BACKLOG)  # loaded: from now on the kernel sends this worker connections
    # No access log: request paths hold user ids.
    config = uvicorn.Config(
        create_app(service), access_log=False, log_level=settings.log_level, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


def serve_processes(settings: WorkerSettings, workers: int) -> int:
    """Run ``workers`` worker processes until SIGTERM or SIGINT; the exit status.

    Returns 1 when a worker cannot start (it exits within :data:`STARTUP_SECONDS`) or workers
    die more than :data:`MAX_RESTARTS` times in :data:`RESTART_WINDOW` seconds, else 0.
    """
    context = multiprocessing.get_context("spawn")
    stop = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    def start(number: int) -> tuple[multiprocessing.process.BaseProcess, float]:
        process = context.Process(
            target=worker_main, args=(settings,), name=f"lmrec-worker-{number}", daemon=False
        )
        process.start()
        return process, time.monotonic()

    processes = [start(n) for n in range(workers)]
    restarts: deque[float] = deque()
    status = 0
    try:
        while not stop:
            for number, (process, started) in enumerate(processes):
                if process.is_alive() or stop:
                    continue
                now = time.monotonic()
                while restarts and now - restarts[0] > RESTART_WINDOW:
                    restarts.popleft()
                if now - started < STARTUP_SECONDS or len(restarts) >= MAX_RESTARTS:
                    log.error(
                        "worker %d exited with code %s; stopping the service",
                        number,
                        process.exitcode,
                    )
                    status, stop = 1, True
                    break
                log.warning(
                    "worker %d exited with code %s; restarting it", number, process.exitcode
                )
                restarts.append(now)
                processes[number] = start(number)
            time.sleep(0.2)
    finally:
        for process, _ in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts down gracefully
        for process, _ in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status
