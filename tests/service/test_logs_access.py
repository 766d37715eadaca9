"""Logs and access: a request cycle leaves no raw user id, free text or API key in the logs
(in process and in a real ``lmrec serve`` at DEBUG level), and every route that reads or
changes user data needs a key of the right scope."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Api
from privacy_runs import (
    TEXT_MEAN,
    needles_in,
    raw_user,
    server_log,
    train_private_run,
    write_private_data,
)

from lmrec.privacy import write_key_file
from lmrec.service import Store, create_key

NEWCOMER = "zed.quinn@example.net-user-77"
PREFERENCE = "slow romantic films about a lighthouse keeper named Ingeborg"
ITEM = {"title": "Lighthouse Keeper Ingeborg (2031)", "text": "a tale by the sea"}


def request_cycle(client: Any, keys: dict[str, str], user: str, items: list[str]) -> None:
    """Events, recommendations with explanations, a text query, an item, errors, a deletion."""

    def auth(scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[scope]}"}

    read, write = auth("read"), auth("write")
    events = [
        {"event_id": f"{user}/{n}", "user_id": user, "item_id": item, "timestamp": 1.9e9 + n}
        for n, item in enumerate(items)
    ]
    assert client.post("/v1/events", json={"events": events}, headers=write).status_code == 200
    r = client.get(f"/v1/users/{user}/recommendations?k=3&explain=true", headers=read)
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    r = client.post("/v1/recommendations", json={"text": PREFERENCE, "k": 3}, headers=read)
    assert r.status_code == 200
    assert client.put("/v1/items/keeper", json=ITEM, headers=write).status_code in (200, 201)
    # refusals and errors carry the id in the request, never into the log
    bad = [{**events[0], "item_id": "no-such-item"}]
    assert client.post("/v1/events", json={"events": bad}, headers=write).status_code == 404
    odd = [{**events[0], "timestamp": f"{user} is no time"}]
    assert client.post("/v1/events", json={"events": odd}, headers=write).status_code == 422
    assert client.delete(f"/v1/users/{user}", headers=read).status_code == 403
    assert client.get(f"/v1/users/{user}/recommendations", headers={}).status_code == 401
    assert client.delete(f"/v1/users/{user}", headers=write).status_code == 200
    assert client.get(f"/v1/users/{user}/recommendations", headers=read).status_code == 404
    assert client.delete(f"/v1/users/{user}", headers=write).status_code == 404


def secrets_of(keys: dict[str, str], user: str) -> list[str]:
    return [user, f"{user}/0", PREFERENCE, "Ingeborg", *keys.values()]


def test_in_process_log_of_a_request_cycle(text_api: Api, caplog: pytest.LogCaptureFixture) -> None:
    # a run without pseudonyms: the service holds raw ids, and still never logs them
    with caplog.at_level(logging.DEBUG):
        request_cycle(text_api.client, text_api.keys, NEWCOMER, ["2", "3", "4"])
    records = server_log(caplog)
    assert "lmrec" in records  # the capture works: the service did log
    assert needles_in(records, secrets_of(text_api.keys, NEWCOMER)) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVE_AT_DEBUG = (
    "import logging, sys; logging.basicConfig(level=logging.DEBUG); "
    "from lmrec.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def test_server_log_of_a_request_cycle_at_debug_level(tmp_path: Path) -> None:
    key = write_key_file(tmp_path / "secret" / "pseudonym.key")
    data = write_private_data(tmp_path / "data")
    run = train_private_run(data, tmp_path / "runs", "text", TEXT_MEAN, key)
    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    keys = {scope: create_key(store, scope).key for scope in ("read", "write", "admin")}
    store.close()
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-c", SERVE_AT_DEBUG, "serve", str(run), "--db", url]
    command += ["--port", str(port), "--log-level", "debug"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    user = raw_user(3)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=60) as client:
            request_cycle(client, keys, user, ["i2", "i3", "i4"])
            assert user not in client.get("/metrics").text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text()
    assert "DEBUG:" in text and "INFO:lmrec." in text, text[-3000:]  # the logs were on
    assert needles_in(text, secrets_of(keys, user)) == []


# ----------------------------------------------------------------------------- access
READ, WRITE, ADMIN = "read", "write", "admin"
SCOPE_OF: dict[tuple[str, str], str] = {
    ("GET", "/v1/users/{user_id}/recommendations"): READ,
    ("POST", "/v1/recommendations"): READ,
    ("GET", "/v1/items/{item_id}/similar"): READ,
    ("POST", "/v1/events"): WRITE,
    ("PUT", "/v1/items/{item_id}"): WRITE,
    ("DELETE", "/v1/items/{item_id}"): WRITE,
    ("DELETE", "/v1/users/{user_id}"): WRITE,
    ("POST", "/v1/admin/reload"): ADMIN,
}
"""The scope each route needs: reading a user's data needs ``read``, changing or deleting
it ``write``."""
BELOW = {READ: None, WRITE: READ, ADMIN: WRITE}


def api_routes(api: Api) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in api.client.app.routes
        if getattr(route, "path", "").startswith("/v1/")
        for method in getattr(route, "methods", ()) or ()
    )


def call(api: Api, method: str, template: str, headers: dict[str, str]) -> int:
    path = template.replace("{user_id}", "2").replace("{item_id}", "3")
    body = {"history": ["3"]} if template == "/v1/recommendations" else None
    return int(api.client.request(method, path, json=body, headers=headers).status_code)


def test_every_api_route_needs_a_key(knn_api: Api) -> None:
    routes = api_routes(knn_api)
    assert set(SCOPE_OF) <= set(routes)
    for method, template in routes:  # also a route added later: no /v1 route is open
        assert call(knn_api, method, template, {}) == 401, (method, template)
        bad = {"Authorization": "Bearer lmrec_000000000000_" + "x" * 43}
        assert call(knn_api, method, template, bad) == 401, (method, template)


@pytest.mark.parametrize(("method", "template"), list(SCOPE_OF))
def test_user_data_routes_need_their_scope(knn_api: Api, method: str, template: str) -> None:
    needed = SCOPE_OF[(method, template)]
    below = BELOW[needed]
    if below is not None:
        refused = call(knn_api, method, template, knn_api.auth(below))
        assert refused == 403, f"a {below!r} key got {refused} from {method} {template}"
    allowed = call(knn_api, method, template, knn_api.auth(needed))
    assert allowed not in (401, 403), f"a {needed!r} key was refused {method} {template}"
