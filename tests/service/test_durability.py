"""Durability: the server is SIGKILLed in the middle of event ingestion; after a restart every
acknowledged event is in the store exactly once, and retrying every batch duplicates nothing.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from lmrec.service import Store, create_key

BATCH = 25
ACKED_BEFORE_KILL = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(run: Path, url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``lmrec serve`` in a new process; returns once it answers /readyz."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lmrec.cli.main", "serve", str(run), "--db", url]
    command += ["--port", str(port), "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"server did not become ready:\n{log.read_text()[-3000:]}")


def batch(n: int) -> dict[str, Any]:
    return {
        "events": [
            {
                "event_id": f"b{n}-{j}",
                "user_id": f"dur-{n % 5}",
                "item_id": str(1 + (n * BATCH + j) % 60),
                "type": "view",
                "timestamp": 1.9e9 + n * BATCH + j,
            }
            for j in range(BATCH)
        ]
    }


def test_acknowledged_events_survive_sigkill(
    knn_run: Path, database_url: str, tmp_path: Path
) -> None:
    store = Store(database_url)
    key = create_key(store, "write").key
    auth = {"Authorization": f"Bearer {key}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    proc = start_server(knn_run, database_url, port, log)

    sent: list[dict[str, Any]] = []
    acked: list[str] = []
    refused: list[int] = []
    broken = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            n = 0
            while True:
                body = batch(n)
                sent.append(body)
                try:
                    r = client.post("/v1/events", json=body)
                except httpx.TransportError:
                    broken.set()
                    return
                if r.status_code == 200:
                    acked.extend(e["event_id"] for e in body["events"])
                else:
                    refused.append(r.status_code)
                n += 1

    writer = threading.Thread(target=ingest, daemon=True)
    try:
        writer.start()
        deadline = time.monotonic() + 60
        while len(acked) < ACKED_BEFORE_KILL * BATCH and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the writer is posting all the time
        proc.wait(timeout=30)
        writer.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert broken.is_set() and not refused
    assert len(acked) >= ACKED_BEFORE_KILL * BATCH

    proc = start_server(knn_run, database_url, port, log)
    try:
        stored = Counter(store.event_ids())
        assert all(stored[i] == 1 for i in acked), "an acknowledged event is missing"
        assert max(stored.values()) == 1
        # the client retries everything it sent, as after any crash: nothing is stored twice
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            for body in sent:
                r = client.post("/v1/events", json=body)
                assert r.status_code == 200
                out = r.json()
                assert out["stored"] + out["duplicates"] == BATCH
            r = client.get("/v1/users/dur-1/recommendations?k=3")
            assert r.status_code == 200 and len(r.json()["items"]) == 3
        after = Counter(store.event_ids())
        assert set(after) == {e["event_id"] for body in sent for e in body["events"]}
        assert max(after.values()) == 1
        if store.dialect == "sqlite":
            with store.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.close()
