"""Bad input gets a 4xx JSON answer naming the field; nothing reaches a 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness import Api, events

from lmrec.service import create_app
from lmrec.service.runtime import MAX_EVENTS
from lmrec.service.schemas import MAX_BODY_BYTES


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    # input checks do not depend on the database: SQLite only keeps this module quick
    return f"sqlite:///{tmp_path / 'service.db'}"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("k=0", "query.k"),
        ("k=101", "query.k"),
        ("k=ten", "query.k"),
        ("diversity=1.5", "query.diversity"),
        ("diversity=nan", "query.diversity"),
        ("diversity_method=random", "query.diversity_method"),
        ("explain=perhaps", "query.explain"),
    ],
)
def test_bad_query_is_422_naming_the_field(knn_api: Api, query: str, field: str) -> None:
    r = knn_api.client.get(f"/v1/users/2/recommendations?{query}", headers=knn_api.auth())
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"{field}: ")
    assert r.json()["errors"][0]["field"] == field


def event(**fields: Any) -> dict[str, Any]:
    base = {"event_id": "e1", "user_id": "2", "item_id": "3", "timestamp": 1.7e9}
    return {"events": [{**base, **fields}]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event(event_id=5), "body.events.0.event_id"),
        (event(user_id=""), "body.events.0.user_id"),
        (event(item_id="x" * 129), "body.events.0.item_id"),
        (event(item_id="a\x00b"), "body.events.0.item_id"),
        (event(timestamp="yesterday"), "body.events.0.timestamp"),
        (event(timestamp=1e20), "body.events.0.timestamp"),
        (event(rating="high"), "body.events.0.rating"),
        (event(type="a b"), "body.events.0.type"),
        (event(colour="red"), "body.events.0.colour"),
        ({"events": []}, "body.events"),
        ({"evnts": []}, "body.events"),
        ([1, 2], "body"),
    ],
)
def test_bad_event_body_is_422_naming_the_field(knn_api: Api, body: Any, field: str) -> None:
    r = knn_api.client.post("/v1/events", json=body, headers=knn_api.auth())
    assert r.status_code == 422, r.text
    assert field in {e["field"] for e in r.json()["errors"]}
    assert knn_api.service.store.count_events() == 0


def test_malformed_json_is_422(knn_api: Api) -> None:
    r = knn_api.client.post(
        "/v1/events",
        content=b'{"events": [',
        headers={**knn_api.auth(), "Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("body")
    assert "JSON" in r.json()["detail"]


def test_oversized_batch_and_body_are_413(knn_api: Api) -> None:
    c, auth = knn_api.client, knn_api.auth()
    many = events("2", ["3"] * (MAX_EVENTS + 1))
    r = c.post("/v1/events", json=many, headers=auth)
    assert r.status_code == 413 and str(MAX_EVENTS) in r.json()["detail"]
    assert (
        c.post("/v1/events", json=events("2", ["3"] * MAX_EVENTS), headers=auth).status_code == 200
    )
    huge = b'{"events": [' + b" " * MAX_BODY_BYTES + b"]}"
    r = c.post("/v1/events", content=huge, headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413 and "body" in r.json()["detail"]

    def chunks() -> Any:  # no Content-Length: the limit counts what arrives
        yield b'{"events": ['
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    r = c.post("/v1/events", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_unknown_ids_and_routes_are_404_with_a_message(knn_api: Api) -> None:
    c, auth = knn_api.client, knn_api.auth()
    r = c.get("/v1/users/nobody/recommendations", headers=auth)
    assert r.status_code == 404 and r.json()["detail"] == "unknown user id 'nobody'"
    assert c.get("/v1/items/0/similar", headers=auth).json()["detail"] == "unknown item id '0'"
    assert c.delete("/v1/items/0", headers=auth).status_code == 404
    assert c.get("/v2/anything", headers=auth).json()["detail"] == "Not Found"


def test_library_errors_become_4xx(knn_api: Api) -> None:
    # item-kNN cannot place a text in its item space: a ConfigError, answered 422
    body = {"text": "I like space operas", "k": 3}
    r = knn_api.client.post("/v1/recommendations", json=body, headers=knn_api.auth())
    assert r.status_code == 422 and r.json()["detail"]


@pytest.mark.parametrize("how", ["raised", "answered"])
def test_an_unexpected_error_is_a_json_500_without_details(knn_api: Api, how: str) -> None:
    # the batch function fails as a whole, or answers one query with an exception
    def broken(queries: Any) -> Any:
        if how == "raised":
            raise RuntimeError("secret internals")
        return [RuntimeError("secret internals") for _ in queries]

    knn_api.service.recommend_for_users = broken  # type: ignore[method-assign]
    client = TestClient(create_app(knn_api.service), raise_server_exceptions=False)
    for explain in ("false", "true"):  # the batched path and the thread-pool path
        r = client.get(f"/v1/users/2/recommendations?explain={explain}", headers=knn_api.auth())
        assert r.status_code == 500
        assert r.json() == {"detail": "internal error", "errors": None}
        assert "secret" not in r.text and "Traceback" not in r.text
    metrics = client.get("/metrics").text
    assert 'route="/v1/users/{user_id}/recommendations",status="500"} 2.0' in metrics
