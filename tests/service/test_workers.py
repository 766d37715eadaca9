"""Several serving processes over one store (``lmrec serve --workers N``) stay coherent:
items created or deleted and reloads made through one process reach the others."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_durability import free_port

from lmrec.errors import UnknownIdError
from lmrec.service import RecommendationService, Store, create_key


def test_a_second_process_replays_item_changes_and_reloads(
    store: Store, text_run: Path, knn_run: Path
) -> None:
    first = RecommendationService(store, text_run)
    other = RecommendationService(Store(store.url), text_run, follow_store=True)
    try:
        assert not other.sync() and not first.sync()  # nothing changed yet
        first.put_item("space-heist", title="Action Film Space Heist (2031)")
        assert not first.sync()  # its own change is already applied
        assert not other.current.knows_item("space-heist")
        assert other.sync() and other.current.knows_item("space-heist")
        similar = other.similar_items("space-heist", k=3)
        assert len(similar.items) == 3
        first.delete_item("3")
        assert other.sync() and "3" in other.deleted_items
        with pytest.raises(UnknownIdError):
            other.similar_items("3", k=3)
        first.reload(knn_run)  # another run: the others load it too
        assert other.sync() and other.current.version == first.current.version
        assert not other.sync()
        # a process started later serves the run the store names
        late = RecommendationService(Store(store.url), text_run, follow_store=True)
        assert late.current.version == first.current.version
        late.close()
    finally:
        first.close()
        other.close()


def test_following_the_store_in_a_thread(store: Store, text_run: Path) -> None:
    first = RecommendationService(store, text_run)
    other = RecommendationService(Store(store.url), text_run, follow_store=True)
    other.follow_store(0.05)
    try:
        first.put_item("late-item", title="Love Story Late (2030)")
        deadline = time.monotonic() + 30
        while not other.current.knows_item("late-item") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other.current.knows_item("late-item")
        with pytest.raises(ValueError, match="interval"):
            RecommendationService(store, text_run).follow_store(0)
    finally:
        first.close()
        other.close()


def test_serve_with_two_worker_processes(tmp_path: Path, text_run: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    read, write = create_key(store, "read").key, create_key(store, "write").key
    store.close()
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "lmrec.cli.main", "serve", str(text_run), "--db", url]
    command += ["--port", str(port), "--workers", "2", "--sync-seconds", "0.2"]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as c:
            deadline = time.monotonic() + 180
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
            auth = {"Authorization": f"Bearer {read}"}
            assert c.get("/v1/users/2/recommendations?k=3", headers=auth).status_code == 200
            body = {"title": "Action Film Space Heist (2031)", "categories": ["Action"]}
            put = c.put(
                "/v1/items/space-heist", json=body, headers={"Authorization": f"Bearer {write}"}
            )
            assert put.status_code == 201, put.text
            # every worker serves it within the sync interval plus a reload
            deadline = time.monotonic() + 60
            while True:
                codes = [  # a new connection each: spread over both workers
                    httpx.get(f"{base}/v1/items/space-heist/similar?k=2", headers=auth).status_code
                    for _ in range(12)
                ]
                if set(codes) == {200}:
                    break
                assert set(codes) <= {200, 404}, codes
                assert time.monotonic() < deadline, (codes, log.read_text()[-3000:])
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "serving" in log.read_text() and "2 worker processes" in log.read_text()


def test_workers_that_cannot_start_stop_the_service(tmp_path: Path, text_run: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: nobody else may listen here
    taken.listen(1)
    port = taken.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'service.db'}"
    command = [sys.executable, "-m", "lmrec.cli.main", "serve", str(text_run), "--db", url]
    command += ["--port", str(port), "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    finally:
        taken.close()
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Address already in use" in done.stderr and "stopping the service" in done.stderr


def test_a_worker_socket_takes_connections_only_once_it_listens() -> None:
    """A worker binds first (a port in use fails at once) and listens after loading the
    run: until then the kernel refuses (or gives the other workers) its connections."""
    from lmrec.service.processes import BACKLOG, bound_socket

    port = free_port()
    first = bound_socket("127.0.0.1", port)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        second = bound_socket("127.0.0.1", port)  # another worker on the same port
        second.listen(BACKLOG)
        try:
            for _ in range(5):  # every connection goes to the listening one
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                accepted, _ = second.accept()
                accepted.close()
        finally:
            second.close()
        first.listen(BACKLOG)
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        first.accept()[0].close()
    finally:
        first.close()
