"""API keys: hashed at rest, 401 without a valid key, 403 without the scope, revocable."""

from __future__ import annotations

import pytest
from harness import Api
from sqlalchemy import text

from lmrec.errors import ConfigError
from lmrec.service.auth import create_key, grants, hash_key, verify_key
from lmrec.service.store import Store


def test_keys_are_stored_only_as_hashes(store: Store) -> None:
    new = create_key(store, "write", "ingest job")
    assert new.key.startswith(f"lmrec_{new.key_id}_") and len(new.key) == 6 + 12 + 1 + 43
    with store.engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))]
    assert new.key not in str(rows) and hash_key(new.key) in str(rows)
    record = verify_key(store, new.key)
    assert record is not None and record.scope == "write" and record.name == "ingest job"
    assert verify_key(store, new.key[:-1] + ("A" if new.key[-1] != "A" else "B")) is None
    assert verify_key(store, "lmrec_000000000000_" + "x" * 43) is None
    assert verify_key(store, "") is None
    with pytest.raises(ConfigError, match="scope"):
        create_key(store, "root")


def test_scopes_are_ordered() -> None:
    assert grants("admin", "write") and grants("admin", "read") and grants("write", "read")
    assert not grants("read", "write") and not grants("write", "admin")
    assert not grants("nonsense", "read")


def test_http_access_control(knn_api: Api) -> None:
    c = knn_api.client
    url = "/v1/users/2/recommendations"
    missing = c.get(url)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert c.get(url, headers={"Authorization": "Basic dXNlcjpwdw=="}).status_code == 401
    assert c.get(url, headers={"Authorization": "Bearer lmrec_nope"}).status_code == 401
    assert c.get(url, headers=knn_api.auth("read")).status_code == 200
    batch = {"events": [{"event_id": "a", "user_id": "2", "item_id": "3", "timestamp": 0}]}
    denied = c.post("/v1/events", json=batch, headers=knn_api.auth("read"))
    assert denied.status_code == 403 and "'write'" in denied.json()["detail"]
    assert c.post("/v1/events", json=batch, headers=knn_api.auth("write")).status_code == 200
    assert c.delete("/v1/users/2", headers=knn_api.auth("read")).status_code == 403
    assert c.post("/v1/admin/reload", headers=knn_api.auth("write")).status_code == 403
    # the open endpoints
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert c.get(path).status_code == 200


def test_revoked_key_is_refused_at_once(knn_api: Api) -> None:
    key = knn_api.keys["read"]
    key_id = key.split("_")[1]
    headers = knn_api.auth("read")
    assert knn_api.client.get("/v1/items/3/similar", headers=headers).status_code == 200
    assert knn_api.service.store.revoke_key(key_id)
    assert knn_api.client.get("/v1/items/3/similar", headers=headers).status_code == 401
