"""The direct answer to plain ``GET /v1/users/{id}/recommendations`` requests.

Whatever the fast path answers must be byte for byte what FastAPI answers; whatever it does
not recognise must reach FastAPI untouched.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import Api, events
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from lmrec.service.auth import KeyCache
from lmrec.service.fast_path import (
    ROUTE,
    UserRecommendationsFastPath,
    bearer_key,
    parse_query,
    user_of_path,
)

FALLBACK = 599


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (10, None)),
        (b"k=5", (5, None)),
        (b"k=100&diversity=0.5", (100, 0.5)),
        (b"diversity=.25", (10, 0.25)),
        (b"diversity=1", (10, 1.0)),
        (b"diversity=1.0&k=007", (7, 1.0)),
        (b"diversity=0", (10, 0.0)),
    ],
)
def test_plain_query_strings_are_parsed(query: bytes, expected: tuple[int, float | None]) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        b"k=0",
        b"k=101",
        b"k=-1",
        b"k=",
        b"k=1e1",
        b"k=5&k=6",
        b"k=%205",
        b"diversity=1.5",
        b"diversity=nan",
        b"diversity=inf",
        b"diversity=",
        b"diversity=.",
        b"diversity=-0",
        b"explain=true",
        b"diversity_method=dpp",
        b"other=1",
        b"k=5&\xff=1",
    ],
)
def test_anything_else_goes_to_fastapi(query: bytes) -> None:
    assert parse_query(query) is None


def test_paths_and_keys() -> None:
    assert user_of_path("/v1/users/u 1/recommendations") == "u 1"
    assert user_of_path("/v1/users/é/recommendations") == "é"
    for path in [
        "/v1/users//recommendations",
        "/v1/users/a/b/recommendations",
        "/v1/users/a/recommendations/",
        "/v1/users/a\x01/recommendations",
        "/v1/users/" + "x" * 129 + "/recommendations",
        "/v1/items/a/similar",
    ]:
        assert user_of_path(path) is None, path
    assert bearer_key([(b"authorization", b"Bearer abc")]) == "abc"
    assert bearer_key([(b"authorization", b"bearer abc")]) == "abc"
    assert bearer_key([(b"authorization", b"Basic abc")]) is None
    assert bearer_key([(b"authorization", b"Bearer")]) is None
    assert bearer_key([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")]) is None
    assert bearer_key([]) is None


def fast_only(api: Api) -> TestClient:
    """The fast path around an app that answers 599: a 599 means "not recognised"."""

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": FALLBACK, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    keys = KeyCache(api.service.store)
    return TestClient(UserRecommendationsFastPath(fallback, api.service, keys, route=None))


def both(api: Api, user: str, query: str, **headers: Any) -> tuple[Any, Any]:
    """The app's answer, and FastAPI's (an unknown parameter sends the request there)."""
    url = f"/v1/users/{user}/recommendations?{query}"
    fast = api.client.get(url, headers=headers)
    slow = api.client.get(url + ("&" if query else "") + "via=fastapi", headers=headers)
    return fast, slow


@pytest.mark.parametrize(
    ("user", "query", "status"),
    [
        ("2", "", 200),
        ("3", "k=5", 200),
        ("2", "k=20&diversity=0.5", 200),
        ("4", "diversity=1", 200),
        ("nobody", "k=5", 404),
    ],
)
def test_fast_answers_are_fastapis_answers(
    knn_api: Api, user: str, query: str, status: int
) -> None:
    direct = fast_only(knn_api).get(
        f"/v1/users/{user}/recommendations?{query}", headers=knn_api.auth("read")
    )
    assert direct.status_code == status  # the fast path answered it itself
    fast, slow = both(knn_api, user, query, **knn_api.auth("read"))
    assert fast.status_code == slow.status_code == status
    assert fast.content == slow.content == direct.content
    assert fast.headers["content-type"] == slow.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    "query", ["k=0", "k=abc", "diversity=2", "explain=true", "k=5&k=6", "diversity_method=dpp"]
)
def test_unusual_requests_reach_fastapi(knn_api: Api, query: str) -> None:
    direct = fast_only(knn_api).get(
        f"/v1/users/2/recommendations?{query}", headers=knn_api.auth("read")
    )
    assert direct.status_code == FALLBACK
    r = knn_api.client.get(f"/v1/users/2/recommendations?{query}", headers=knn_api.auth("read"))
    assert r.status_code in (200, 422)


def test_keys_are_checked_as_fastapi_checks_them(knn_api: Api) -> None:
    fast = fast_only(knn_api)
    url = "/v1/users/2/recommendations"
    assert fast.get(url, headers={"Authorization": "Bearer lmrec_nope"}).status_code == FALLBACK
    assert fast.get(url).status_code == FALLBACK
    assert fast.get(url, headers=knn_api.auth("admin")).status_code == 200  # admin > read
    r = knn_api.client.get(url, headers={"Authorization": "Bearer lmrec_nope"})
    assert r.status_code == 401 and r.json()["detail"] == "invalid or revoked API key"

    key_id = knn_api.keys["read"].split("_")[1]
    assert knn_api.service.store.revoke_key(key_id)
    assert fast.get(url, headers=knn_api.auth("read")).status_code == FALLBACK
    assert knn_api.client.get(url, headers=knn_api.auth("read")).status_code == 401


def test_new_events_count_and_metrics_name_the_route(knn_api: Api) -> None:
    c = knn_api.client
    middleware = [m.cls for m in c.app.user_middleware]  # type: ignore[attr-defined]
    assert UserRecommendationsFastPath in middleware
    assert c.get("/v1/users/fresh/recommendations", headers=knn_api.auth()).status_code == 404
    c.post("/v1/events", json=events("fresh", ["31", "32"]), headers=knn_api.auth("write"))
    r = c.get("/v1/users/fresh/recommendations?k=3", headers=knn_api.auth("read"))
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    text = c.get("/metrics").text
    line = f'lmrec_http_requests_total{{method="GET",route="{ROUTE}",status="200"}} 1.0'
    assert line in text
    assert f'route="{ROUTE}",status="404"}} 1.0' in text
    assert "fresh" not in text
