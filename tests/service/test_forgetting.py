"""Forgetting end to end: train, serve, delete users (API and CLI), retrain with the deletion
register, and check that the new model's data, files and logs hold no trace of them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from harness import Api
from privacy_runs import (
    SASREC,
    leaks,
    needles_in,
    raw_user,
    server_log,
    sha256,
    train_private_run,
    write_private_data,
)

from lmrec.cli.main import main
from lmrec.data import USER, Dataset
from lmrec.experiment import prepare_data, read_run_config
from lmrec.models import load_model
from lmrec.privacy import Pseudonymizer, write_key_file
from lmrec.service import RecommendationService, Store, create_app

BY_API = raw_user(4)  # an Action user, deleted through DELETE /v1/users
BY_CLI = raw_user(7)  # a Romance user, deleted through lmrec users delete
KEPT = raw_user(2)
PER_USER = 8  # interactions of each user in the data


def user_rows(dataset: Dataset, users: set[str]) -> int:
    return int(dataset.interactions[USER].isin(users).sum())


def seen_users(run: Path) -> set[str]:
    """Every user id in the split (train, valid, test) the run's data gives."""
    _, data = prepare_data(read_run_config(run))
    ids = data.user_map.ids
    return {ids[u] for part in (data.train, data.valid, data.test) for u in np.unique(part.users)}


def test_deleted_users_leave_no_trace_in_the_next_model(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = write_key_file(tmp_path / "secret" / "pseudonym.key")
    pseudonym = Pseudonymizer.from_key_file(key).pseudonym
    data = write_private_data(tmp_path / "data")
    runs = tmp_path / "runs"
    v1 = train_private_run(data, runs, "v1", SASREC, key)
    url = f"sqlite:///{tmp_path / 'service.db'}"

    # serve v1, post events, delete one user through the API and one through the CLI
    store = Store(url)
    service = RecommendationService(store, v1)
    with TestClient(create_app(service)) as client:
        api = Api(client, service)
        write, read = api.auth("write"), api.auth("read")
        batch = {
            "events": [
                {"event_id": f"ev-{u}", "user_id": u, "item_id": "i5", "timestamp": 1.9e9}
                for u in (BY_API, BY_CLI, KEPT)
            ]
        }
        assert client.post("/v1/events", json=batch, headers=write).json()["stored"] == 3
        r = client.delete(f"/v1/users/{BY_API}", headers=write)
        assert r.json() == {
            "user_id": BY_API,
            "events_deleted": 1,
            "training_history_items": PER_USER - 2,  # leave-one-out: valid and test held out
        }
        assert main(["users", "delete", str(v1), BY_CLI, "--db", url]) == 0
        assert "1 events removed" in capsys.readouterr().out
        # both are gone from the store and no longer served, at once (nothing is cached)
        for user in (BY_API, BY_CLI):
            assert store.events_of(pseudonym(user)) == []
            assert client.get(f"/v1/users/{user}/recommendations", headers=read).status_code == 404
        assert len(store.events_of(pseudonym(KEPT))) == 1
        assert len(store.deletion_records()) == 2

        # retrain with the deletion register
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            v2 = train_private_run(data, runs, "v2", SASREC, key, "--exclude-deleted-from", url)
        printed = capsys.readouterr()
        assert "left out 2 deleted users (16 interactions; 2 deletion records)" in caplog.text

        # the new version is served from the same store; the deleted users stay unknown
        r = client.post("/v1/admin/reload", json={"run": str(v2)}, headers=api.auth("admin"))
        assert r.status_code == 200, r.text
        for user in (BY_API, BY_CLI):
            assert client.get(f"/v1/users/{user}/recommendations", headers=read).status_code == 404
        kept = client.get(f"/v1/users/{KEPT}/recommendations?k=5", headers=read)
        assert kept.status_code == 200 and len(kept.json()["items"]) == 5
    store.close()

    deleted = {pseudonym(BY_API), pseudonym(BY_CLI)}
    traces = [BY_API, BY_CLI, *deleted, *(sha256(p) for p in deleted)]
    # the old version holds them (so the checks below can fail); the new one does not
    assert leaks(v1, sorted(deleted))
    assert leaks(v2, traces) == []
    for file in ("config.json", "result.json", "train_log.jsonl", "catalog.json"):
        assert (v2 / file).is_file()
    assert any(p.suffix == ".pt" for p in v2.rglob("*")), "no checkpoint was scanned"
    old_model, new_model = load_model(v1 / "model"), load_model(v2 / "model")
    assert old_model.user_map is not None and new_model.user_map is not None
    assert deleted <= set(old_model.user_map.ids)
    assert not deleted & set(new_model.user_map.ids)
    assert len(new_model.user_map) == len(old_model.user_map) - 2
    assert needles_in(printed.out + printed.err + server_log(caplog), traces) == []

    # the data the new model saw: the same data without exactly the deleted users' rows
    old_data, _ = prepare_data(read_run_config(v1))
    new_data, _ = prepare_data(read_run_config(v2))
    assert user_rows(old_data, deleted) == 2 * PER_USER and user_rows(new_data, deleted) == 0
    assert len(new_data.interactions) == len(old_data.interactions) - 2 * PER_USER
    assert seen_users(v1) - seen_users(v2) == deleted
    without = old_data.interactions[~old_data.interactions[USER].isin(deleted)]
    expected = Dataset(
        name=old_data.name,
        interactions=without,
        items=old_data.items,
        users=old_data.users,
        text_fields=old_data.text_fields,
    ).fingerprint()
    old_record = json.loads((v1 / "result.json").read_text())
    new_record = json.loads((v2 / "result.json").read_text())
    assert new_record["dataset_fingerprint"] == expected != old_record["dataset_fingerprint"]
