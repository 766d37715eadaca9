"""Reload under load: model swaps while requests stream in fail none of them."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from lmrec.service import RecommendationService, Store, create_app, create_key


@pytest.fixture
def server(
    knn_run: Path, tmp_path: Path
) -> Iterator[tuple[str, RecommendationService, dict[str, str]]]:
    """A real uvicorn server (in a thread) over SQLite, and an admin key."""
    store = Store(f"sqlite:///{tmp_path / 'service.db'}")
    service = RecommendationService(store, knn_run)
    key = create_key(store, "admin").key
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", service, {"Authorization": f"Bearer {key}"}
    server.should_exit = True
    thread.join(timeout=30)


def test_reload_under_load_fails_no_request(
    server: tuple[str, RecommendationService, dict[str, str]], knn_run: Path, text_run: Path
) -> None:
    base, service, auth = server
    stop = threading.Event()
    answers: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def stream(worker: int) -> None:
        requests = [
            ("GET", f"/v1/users/{2 + worker}/recommendations?k=10", None),
            ("POST", "/v1/recommendations", {"history": ["31", "32"], "k": 5}),
            ("GET", "/v1/items/7/similar?k=5", None),
        ]
        with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
            n = 0
            while not stop.is_set():
                method, url, body = requests[n % len(requests)]
                n += 1
                try:
                    r = client.request(method, url, json=body)
                except httpx.HTTPError as e:
                    with lock:
                        errors.append(repr(e))
                    continue
                with lock:
                    answers[r.status_code] += 1
                    if r.status_code == 200:
                        versions[r.json()["model_version"]] += 1
                    else:
                        errors.append(r.text)

    workers = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    swaps = []
    try:
        with httpx.Client(base_url=base, headers=auth, timeout=60) as admin:
            for run in [text_run, knn_run, text_run, knn_run]:
                time.sleep(0.3)
                r = admin.post("/v1/admin/reload", json={"run": str(run)})
                assert r.status_code == 200, r.text
                swaps.append(r.json()["model_version"])
            time.sleep(0.3)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not errors, errors[:3]
    assert answers[200] >= 40
    assert {v.split("-")[0] for v in versions} == {"knn", "text"}
    assert service.current.version == swaps[-1]


def test_freeze_heap_keeps_the_loaded_model_out_of_collections(
    knn_run: Path, tmp_path: Path
) -> None:
    """``freeze_heap``: the loaded objects are frozen, and a reload still collects the
    cyclic garbage the old version left (it is un-frozen first)."""
    import gc
    import weakref

    class Cycle:
        other: object = None

    gc.unfreeze()
    service = RecommendationService(
        Store(f"sqlite:///{tmp_path / 'service.db'}"), knn_run, freeze_heap=True
    )
    try:
        assert gc.get_freeze_count() > 1000  # the model's objects, at least
        first, second = Cycle(), Cycle()
        first.other, second.other = second, first  # garbage only the collector can free
        gone = weakref.ref(first)
        gc.freeze()  # as if it had been alive at the last load
        del first, second
        gc.collect()
        assert gone() is not None  # frozen: full collections skip it
        service.reload()
        assert gone() is None and gc.get_freeze_count() > 1000
    finally:
        service.close()
        gc.unfreeze()
    plain = RecommendationService(Store(f"sqlite:///{tmp_path / 'other.db'}"), knn_run)
    plain.close()
    assert gc.get_freeze_count() == 0  # the default leaves the process's collector alone
