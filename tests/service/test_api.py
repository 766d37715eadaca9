"""The HTTP API end to end (in process), on SQLite and PostgreSQL.

Tiny data (see tests/conftest.py): even users watch Action items 1-30, odd users Love items
31-60.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import Api, events, make_api

from lmrec.service import RecommendationService, Store


def is_love(item_id: str) -> bool:
    return item_id.isdigit() and int(item_id) > 30


def recommend(api: Api, user: str, **params: Any) -> dict[str, Any]:
    r = api.client.get(f"/v1/users/{user}/recommendations", params=params, headers=api.auth("read"))
    assert r.status_code == 200, r.text
    return r.json()


def ids(payload: dict[str, Any]) -> list[str]:
    return [r["item_id"] for r in payload["items"]]


def test_user_recommendations_follow_the_training_history(knn_api: Api) -> None:
    out = recommend(knn_api, "2", k=5)
    assert out["user_id"] == "2" and out["model_version"].startswith("knn-")
    assert [r["rank"] for r in out["items"]] == [1, 2, 3, 4, 5]
    assert sum(not is_love(i) for i in ids(out)) >= 4  # an Action user
    model = knn_api.service.current.pipeline.retrieval
    seen = set(model.item_map.decode(model.history_of("2")))  # type: ignore[union-attr]
    assert not seen & set(ids(out))
    assert all(r["title"] for r in out["items"])


def test_events_count_at_once_for_new_and_known_users(knn_api: Api) -> None:
    c, write = knn_api.client, knn_api.auth("write")
    assert c.get("/v1/users/newbie/recommendations", headers=knn_api.auth()).status_code == 404
    r = c.post("/v1/events", json=events("newbie", ["31", "32", "33"]), headers=write)
    assert r.json() == {"received": 3, "stored": 3, "duplicates": 0}
    out = ids(recommend(knn_api, "newbie", k=5))
    assert all(is_love(i) for i in out) and not {"31", "32", "33"} & set(out)

    before = ids(recommend(knn_api, "2", k=10))
    love = [str(i) for i in range(40, 52)]
    assert c.post("/v1/events", json=events("2", love), headers=write).status_code == 200
    after = ids(recommend(knn_api, "2", k=10))
    # Love items next to the new events move in (the model reads the new history at once)
    assert len({i for i in after if is_love(i)} - set(before)) >= 3
    assert not set(love) & set(after)


def test_a_retried_batch_is_stored_once(knn_api: Api) -> None:
    c, write = knn_api.client, knn_api.auth("write")
    batch = events("7", ["31", "35"])
    assert c.post("/v1/events", json=batch, headers=write).json()["stored"] == 2
    again = c.post("/v1/events", json=batch, headers=write).json()
    assert again == {"received": 2, "stored": 0, "duplicates": 2}
    assert knn_api.service.store.count_events() == 2


def test_event_with_unknown_item_stores_nothing(knn_api: Api) -> None:
    batch = events("7", ["31", "no-such-item"])
    r = knn_api.client.post("/v1/events", json=batch, headers=knn_api.auth("write"))
    assert r.status_code == 404
    assert r.json()["detail"] == "events[1].item_id: unknown item id 'no-such-item'"
    assert knn_api.service.store.count_events() == 0


def test_adhoc_history(knn_api: Api) -> None:
    c, read = knn_api.client, knn_api.auth("read")
    r = c.post("/v1/recommendations", json={"history": ["31", "32"], "k": 5}, headers=read)
    out = r.json()
    assert r.status_code == 200 and out["user_id"] is None
    assert all(is_love(i) for i in ids(out)) and len(out["items"]) == 5
    bad = c.post("/v1/recommendations", json={"history": ["31", "zzz"]}, headers=read)
    assert bad.status_code == 404 and "history[1]" in bad.json()["detail"]
    empty = c.post("/v1/recommendations", json={"history": []}, headers=read)
    assert empty.status_code == 422 and "history or a text" in empty.json()["detail"]


def test_diversity_and_explanations(knn_api: Api) -> None:
    plain = recommend(knn_api, "2", k=10)
    spread = recommend(knn_api, "2", k=10, diversity=0.9)
    cats = {c for r in spread["items"] for c in r["categories"]}
    assert ids(plain) != ids(spread) and len(cats) >= 2
    explained = recommend(knn_api, "2", k=3, explain="true")
    for rec in explained["items"]:
        assert rec["explanation"]["sentence"] and rec["explanation"]["item_id"] == rec["item_id"]
    assert all(r["explanation"] is None for r in plain["items"])


def test_similar_items(knn_api: Api) -> None:
    c, read = knn_api.client, knn_api.auth("read")
    r = c.get("/v1/items/5/similar", params={"k": 6}, headers=read)
    out = r.json()
    assert r.status_code == 200 and out["item_id"] == "5"
    assert len(out["items"]) == 6 and "5" not in ids(out)
    assert all(not is_love(i) for i in ids(out))  # same genre: Action
    scores = [x["score"] for x in out["items"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0)
    assert c.get("/v1/items/nope/similar", headers=read).status_code == 404


def test_deleted_item_leaves_every_result_and_stays_deleted(
    knn_api: Api, store: Store, knn_run: Path
) -> None:
    c, read, write = knn_api.client, knn_api.auth("read"), knn_api.auth("write")
    top = ids(recommend(knn_api, "2", k=5))[0]
    r = c.delete(f"/v1/items/{top}", headers=write)
    assert r.status_code == 200 and r.json() == {"item_id": top, "deleted": True}
    assert top not in ids(recommend(knn_api, "2", k=30))
    assert top not in ids(c.get("/v1/items/5/similar?k=50", headers=read).json())
    assert c.get(f"/v1/items/{top}/similar", headers=read).status_code == 404
    assert c.delete(f"/v1/items/{top}", headers=write).status_code == 404
    # a new process over the same store (and any new model version) leaves it out too
    restarted = RecommendationService(store, knn_run)
    assert top in restarted.deleted_items
    assert top not in [r.item_id for r in restarted.recommend_for_user("2", k=30).items]


def test_delete_user_says_what_went(knn_api: Api) -> None:
    c, write = knn_api.client, knn_api.auth("write")
    c.post("/v1/events", json=events("2", ["40", "41"]), headers=write)
    c.post("/v1/events", json=events("ghost", ["40"]), headers=write)
    trained = len(knn_api.service.current.pipeline.retrieval.history_of("2"))
    r = c.delete("/v1/users/2", headers=write)
    assert r.status_code == 200
    assert r.json() == {"user_id": "2", "events_deleted": 2, "training_history_items": trained}
    assert c.get("/v1/users/2/recommendations", headers=write).status_code == 404
    assert c.delete("/v1/users/2", headers=write).status_code == 404
    assert c.delete("/v1/users/ghost", headers=write).json()["events_deleted"] == 1
    assert c.delete("/v1/users/nobody", headers=write).status_code == 404
    # the user comes back with new events only: the forgotten Action history is not used
    c.post("/v1/events", json=events("2", ["31", "32"], prefix="again"), headers=write)
    assert all(is_love(i) for i in ids(recommend(knn_api, "2", k=5)))


def test_put_item_is_served_at_once_and_survives_reload(text_api: Api) -> None:
    c, read, write = text_api.client, text_api.auth("read"), text_api.auth("write")
    body = {"title": "Action Film Space Heist (2031)", "categories": ["Action"]}
    r = c.put("/v1/items/space-heist", json=body, headers=write)
    assert r.status_code == 201, r.text
    assert r.json()["created"] and r.json()["indexed"]
    # scored with the rest of the catalog, similar to its genre, and in the index
    anyone = {"history": ["space-heist"], "k": 100, "exclude_seen": False}
    assert "space-heist" in ids(c.post("/v1/recommendations", json=anyone, headers=read).json())
    similar = ids(c.get("/v1/items/space-heist/similar?k=5", headers=read).json())
    assert len(similar) == 5 and sum(not is_love(i) for i in similar) >= 4
    assert "space-heist" in ids(c.get("/v1/items/3/similar?k=100", headers=read).json())
    r = c.put("/v1/items/space-heist", json={**body, "text": "a heist in orbit"}, headers=write)
    assert r.status_code == 200 and not r.json()["created"]
    # replayed from the store into a reloaded model version
    assert c.post("/v1/admin/reload", headers=text_api.auth("admin")).status_code == 200
    assert text_api.service.current.knows_item("space-heist")
    assert c.get("/v1/items/space-heist/similar?k=3", headers=read).status_code == 200


def test_put_item_needs_a_text_model(knn_api: Api) -> None:
    r = knn_api.client.put("/v1/items/x", json={"title": "X"}, headers=knn_api.auth("write"))
    assert r.status_code == 422 and "cannot add items" in r.json()["detail"]


def test_preference_text(text_api: Api) -> None:
    c, read = text_api.client, text_api.auth("read")
    r = c.post("/v1/recommendations", json={"text": "romance and love", "k": 5}, headers=read)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 5
    both = {"text": "romance", "history": ["31"], "k": 5}
    assert c.post("/v1/recommendations", json=both, headers=read).status_code == 200


def test_reload_swaps_the_model_version(knn_api: Api, text_run: Path) -> None:
    c, admin = knn_api.client, knn_api.auth("admin")
    old = knn_api.service.current.version
    r = c.post("/v1/admin/reload", json={"run": str(text_run)}, headers=admin)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["previous_version"] == old and out["model_version"].startswith("text-")
    assert recommend(knn_api, "2", k=3)["model_version"] == out["model_version"]
    assert out["model_version"] in c.get("/metrics").text
    bad = c.post("/v1/admin/reload", json={"run": str(text_run / "model")}, headers=admin)
    assert bad.status_code == 409 and "holds no model" in bad.json()["detail"]
    assert knn_api.service.current.version == out["model_version"]
    forbidden = c.post("/v1/admin/reload", headers=knn_api.auth("write"))
    assert forbidden.status_code == 403


def test_health_ready_and_metrics(knn_api: Api) -> None:
    c = knn_api.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz").json()
    assert ready["status"] == "ready" and ready["items"] == 60
    for _ in range(3):
        recommend(knn_api, "2", k=3)
    c.get("/v1/users/secret-user-17/recommendations", headers=knn_api.auth())
    text = c.get("/metrics").text
    route = 'route="/v1/users/{user_id}/recommendations"'
    assert f'lmrec_http_requests_total{{method="GET",{route},status="200"}} 3.0' in text
    assert f'lmrec_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert f'lmrec_http_request_duration_seconds_bucket{{le="+Inf",method="GET",{route}}}' in text
    assert 'lmrec_model_info{name="itemknn",version="knn-' in text
    assert "lmrec_index_items 60.0" in text and "lmrec_catalog_items 60.0" in text
    # the four user requests went through the batching queue (each alone here)
    assert "lmrec_recommend_batched_requests_total 4.0" in text
    assert "lmrec_recommend_batches_total 4.0" in text
    assert "lmrec_store_changes_applied 0.0" in text
    assert "secret-user-17" not in text  # routes are templates, never raw ids


def test_openapi_schema_is_served(knn_api: Api) -> None:
    schema = knn_api.client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/v1/users/{user_id}/recommendations",
        "/v1/recommendations",
        "/v1/items/{item_id}/similar",
        "/v1/events",
        "/v1/items/{item_id}",
        "/v1/users/{user_id}",
        "/v1/admin/reload",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_service_reads_events_committed_by_another_process(store: Store, knn_run: Path) -> None:
    # two workers over one database: events one ingests, the other serves
    a = RecommendationService(store, knn_run)
    b = RecommendationService(Store(store.url), knn_run)
    from lmrec.service.store import StoredEvent

    a.ingest([StoredEvent("x1", "fresh", "31", "view", time.time())])
    assert all(is_love(r.item_id) for r in b.recommend_for_user("fresh", k=3).items)
    b.store.close()


def test_two_apps_in_one_process(store: Store, knn_run: Path) -> None:
    # metrics live in a registry per app: a second app does not clash with the first
    first = list(make_api(store, knn_run))
    assert first[0].client.get("/healthz").status_code == 200


def test_a_runs_diversity_setting_applies_unless_the_request_overrides_it(knn_api: Api) -> None:
    from lmrec.diversity import DiversityConfig

    plain = recommend(knn_api, "2", k=10)
    spread = recommend(knn_api, "2", k=10, diversity=0.9)
    pipeline = knn_api.service.current.pipeline
    pipeline.diversity = DiversityConfig(method="mmr", lam=0.9)  # as a [diversity] table sets
    try:
        assert ids(recommend(knn_api, "2", k=10)) == ids(spread)
        assert ids(recommend(knn_api, "2", k=10, diversity=0.0)) == ids(plain)
        body = {"history": ["1", "2", "3"], "k": 10}
        r = knn_api.client.post("/v1/recommendations", json=body, headers=knn_api.auth("read"))
        r0 = knn_api.client.post(
            "/v1/recommendations", json={**body, "diversity": 0.0}, headers=knn_api.auth("read")
        )
        assert r.status_code == r0.status_code == 200
        assert ids(r.json()) != ids(r0.json())
    finally:
        pipeline.diversity = None


def test_a_batch_of_users_gets_exactly_the_lone_answers(
    knn_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmrec.errors import UnknownIdError
    from lmrec.service.user_batch import UserQuery

    service = knn_api.service
    pipeline = service.current.pipeline
    calls: list[int] = []
    original = pipeline.retrieval.top_items

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline.retrieval, "top_items", spy)
    write = knn_api.auth("write")
    assert knn_api.client.post("/v1/events", json=events("fresh", ["31", "32"]), headers=write)
    assert knn_api.client.post("/v1/events", json=events("3", ["5", "6"]), headers=write)
    queries = [
        UserQuery("2", 5),
        UserQuery("fresh", 4),  # known from stored events only
        UserQuery("nobody", 5),  # unknown: fails alone
        UserQuery("3", 6, diversity=0.5),  # training history + stored events, re-ranked
        UserQuery("2", 3, explain=True),
    ]
    answers = service.recommend_for_users(queries)
    assert calls == [4]  # the best items of all four known users in one model call
    assert isinstance(answers[2], UnknownIdError)
    direct = pipeline.recommend("2", k=5, exclude=service.deleted_items)  # no stored events
    assert answers[0].items == direct  # type: ignore[union-attr]
    for query, answer in zip(queries, answers, strict=True):
        if query.user_id == "nobody":
            continue
        assert not isinstance(answer, Exception)
        lone = service.recommend_for_user(
            query.user_id, k=query.k, diversity=query.diversity, explain=query.explain
        )
        assert answer.items == lone.items and len(answer.items) == query.k
    # over HTTP the request goes through the service's queue and gets the same list
    assert ids(recommend(knn_api, "fresh", k=4)) == [r.item_id for r in answers[1].items]  # type: ignore[union-attr]
    assert service.queue.queries >= 1
