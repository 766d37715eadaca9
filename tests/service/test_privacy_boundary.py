"""The service's privacy boundary on a run trained with pseudonyms: raw user and event ids are
pseudonymized and free text is scrubbed before anything is stored, logged or measured."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from harness import Api
from privacy_runs import (
    TEXT_MEAN,
    database_text,
    is_action,
    leaks,
    needles_in,
    raw_user,
    server_log,
    sha256,
    sqlite_files,
    train_private_run,
    write_private_data,
)

from lmrec.privacy import Pseudonymizer, write_key_file
from lmrec.privacy.forgetting import id_space
from lmrec.service import RecommendationService, Store, create_app
from lmrec.service.privacy import ServiceBoundary

TRAINED = raw_user(0)  # an Action user of the training data
NEWCOMER = "bob.newcomer@example.org-user-99"
PREFERENCE = "action films please, mail carol.smith@example.net or call +44 20 7946 0958"
PREFERENCE_PII = ["carol.smith@example.net", "+44 20 7946 0958"]
ITEM_TITLE = "Action film Heist (2031), seller dave@shop.example.com"
ITEM_TEXT = "signed copies: call (415) 555-2671, card 4111 1111 1111 1111"
ITEM_PII = ["dave@shop.example.com", "(415) 555-2671", "4111 1111 1111 1111"]


@pytest.fixture(scope="module")
def private_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_key_file(tmp_path_factory.mktemp("secret") / "pseudonym.key")


@pytest.fixture(scope="module")
def private_text_run(tmp_path_factory: pytest.TempPathFactory, private_key: Path) -> Path:
    base = tmp_path_factory.mktemp("private-service")
    data = write_private_data(base / "data")
    return train_private_run(data, base / "runs", "text", TEXT_MEAN, private_key)


@pytest.fixture
def private_api(store: Store, private_text_run: Path) -> Iterator[Api]:
    service = RecommendationService(store, private_text_run)
    with TestClient(create_app(service)) as client:
        yield Api(client, service)


def event_batch(user: str, items: list[str], start: float = 1.9e9) -> dict[str, object]:
    # event ids built from the user id, as clients often do
    return {
        "events": [
            {"event_id": f"{user}#{n}", "user_id": user, "item_id": i, "timestamp": start + n}
            for n, i in enumerate(items)
        ]
    }


def test_boundary_of_a_run_follows_its_privacy_table(
    private_text_run: Path, private_key: Path, knn_run: Path
) -> None:
    boundary = ServiceBoundary.for_run(private_text_run)
    pseudonymizer = Pseudonymizer.from_key_file(private_key)
    assert boundary.user(TRAINED) == pseudonymizer.pseudonym(TRAINED)
    assert boundary.event_id("e1") == pseudonymizer.event_pseudonym("e1") != boundary.user("e1")
    assert boundary.id_space == id_space(pseudonymizer) == f"key:{pseudonymizer.key_id}"
    assert boundary.text(PREFERENCE) == "action films please, mail [EMAIL] or call [PHONE]"
    raw = ServiceBoundary.for_run(knn_run)  # trained without [privacy]: raw ids, still scrubbed
    assert raw.user(TRAINED) == TRAINED and raw.event_id("e1") == "e1" and raw.id_space == "raw"
    assert raw.text(PREFERENCE) == boundary.text(PREFERENCE)


def test_request_cycle_keeps_raw_ids_and_pii_out_of_store_logs_and_metrics(
    private_api: Api,
    database_url: str,
    private_key: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = private_api.client
    read, write = private_api.auth("read"), private_api.auth("write")
    pseudonym = Pseudonymizer.from_key_file(private_key).pseudonym
    with caplog.at_level(logging.DEBUG):
        r = c.post("/v1/events", json=event_batch(TRAINED, ["i3", "i4"]), headers=write)
        assert r.status_code == 200 and r.json()["stored"] == 2
        r = c.post("/v1/events", json=event_batch(NEWCOMER, ["i20", "i21"]), headers=write)
        assert r.json()["stored"] == 2
        # a retried batch is still stored once: event ids map to the same pseudonyms
        again = c.post("/v1/events", json=event_batch(NEWCOMER, ["i20", "i21"]), headers=write)
        assert again.json() == {"received": 2, "stored": 0, "duplicates": 2}

        # the raw id reaches the model as its pseudonym: training history plus new events
        r = c.get(f"/v1/users/{TRAINED}/recommendations?k=5&explain=true", headers=read)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["user_id"] == TRAINED and all(is_action(i["item_id"]) for i in body["items"])
        assert all(i["explanation"] for i in body["items"])
        r = c.get(f"/v1/users/{NEWCOMER}/recommendations?k=5", headers=read)
        assert r.status_code == 200 and len(r.json()["items"]) == 5

        query = {"text": PREFERENCE, "k": 5, "explain": True}
        r = c.post("/v1/recommendations", json=query, headers=read)
        assert r.status_code == 200, r.text
        assert not needles_in(r.text, PREFERENCE_PII)

        item = {"title": ITEM_TITLE, "text": ITEM_TEXT, "categories": ["Action"]}
        r = c.put("/v1/items/heist", json=item, headers=write)
        assert r.status_code == 201, r.text
        title = private_api.service.current.describe("heist")[0]
        assert title == "Action film Heist (2031), seller [EMAIL]"
        similar = c.get("/v1/items/heist/similar?k=3", headers=read).json()["items"]
        assert not needles_in(str(similar), ITEM_PII)

        # deleting by raw id recomputes the pseudonym
        r = c.delete(f"/v1/users/{NEWCOMER}", headers=write)
        assert r.json() == {"user_id": NEWCOMER, "events_deleted": 2, "training_history_items": 0}
        r = c.delete(f"/v1/users/{TRAINED}", headers=write)
        assert r.status_code == 200 and r.json()["events_deleted"] == 2
        assert r.json()["training_history_items"] > 0
        for user in (TRAINED, NEWCOMER):
            gone = c.get(f"/v1/users/{user}/recommendations", headers=read)
            assert gone.status_code == 404
        metrics = c.get("/metrics").text

    store = private_api.service.store
    assert store.events_of(pseudonym(TRAINED)) == [] and store.count_events() == 0
    space = f"key:{Pseudonymizer.from_key_file(private_key).key_id}"
    assert sorted(store.deletion_records()) == sorted(
        [(space, sha256(pseudonym(TRAINED))), (space, sha256(pseudonym(NEWCOMER)))]
    )
    stored = store.items()
    assert [s.item_id for s in stored] == ["heist"] and "[PHONE]" in stored[0].text

    raw_ids = [TRAINED, NEWCOMER, f"{TRAINED}#0", f"{NEWCOMER}#1"]
    keys = list(private_api.keys.values())
    secrets = raw_ids + PREFERENCE_PII + ITEM_PII + keys
    assert needles_in(database_text(database_url), secrets) == []
    if database_url.startswith("sqlite:///"):  # the bytes on disk, the WAL included
        files = sqlite_files(database_url)
        assert any(f.name.endswith("-wal") for f in files)
        assert [hit for f in files for hit in leaks(f, secrets)] == []
    assert needles_in(server_log(caplog), [*secrets, PREFERENCE]) == []
    assert needles_in(metrics, [*secrets, pseudonym(TRAINED)]) == []


def test_reload_refuses_a_run_with_other_user_ids(private_api: Api, text_run: Path) -> None:
    # the store holds pseudonyms of the served key: a raw-id run would orphan every user
    r = private_api.client.post(
        "/v1/admin/reload", json={"run": str(text_run)}, headers=private_api.auth("admin")
    )
    assert r.status_code == 409 and "raw ids" in r.json()["detail"]
    assert private_api.service.current.boundary.id_space.startswith("key:")
