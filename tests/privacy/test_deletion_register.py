"""The deletion register: what the store records, how training matches it, and its refusals.

The end-to-end check (train, serve, delete, retrain) is ``tests/service/test_forgetting.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from lmrec.config import DataConfig
from lmrec.data import Dataset
from lmrec.errors import ConfigError, DataError
from lmrec.privacy import Pseudonymizer, write_key_file
from lmrec.privacy.forgetting import (
    RAW_ID_SPACE,
    DeletionRegister,
    deletion_hash,
    exclude_deleted_users,
    id_space,
    read_deletion_register,
)

ALICE, BOB, CAROL = "alice@example.com-user-1", "bob@example.org-user-2", "carol-3"


def _dataset() -> Dataset:
    interactions = pd.DataFrame(
        {
            "user_id": [ALICE, ALICE, BOB, CAROL, CAROL, CAROL],
            "item_id": ["i1", "i2", "i1", "i2", "i1", "i3"],
            "timestamp": [1, 2, 3, 4, 5, 6],
        }
    )
    items = pd.DataFrame({"item_id": ["i1", "i2", "i3"], "title": ["A", "B", "C"]})
    users = pd.DataFrame({"user_id": [ALICE, BOB, CAROL], "age": [30, 40, 50]})
    return Dataset("t", interactions, items, users)


@pytest.fixture
def pseudonymizer(tmp_path: Path) -> Pseudonymizer:
    return Pseudonymizer.from_key_file(write_key_file(tmp_path / "k.key"))


def test_key_id_and_event_pseudonyms(tmp_path: Path, pseudonymizer: Pseudonymizer) -> None:
    other = Pseudonymizer.from_key_file(write_key_file(tmp_path / "other.key"))
    assert pseudonymizer.key_id != other.key_id and len(pseudonymizer.key_id) == 16
    key_hex = (tmp_path / "k.key").read_text().strip()
    assert pseudonymizer.key_id not in key_hex and pseudonymizer.key_id not in repr(pseudonymizer)
    assert pseudonymizer.event_pseudonym("e1") == pseudonymizer.event_pseudonym("e1")
    assert pseudonymizer.event_pseudonym("e1") != pseudonymizer.pseudonym("e1")
    assert id_space(None) == RAW_ID_SPACE and id_space(pseudonymizer) == (
        f"key:{pseudonymizer.key_id}"
    )
    assert deletion_hash(ALICE) == hashlib.sha256(ALICE.encode()).hexdigest()


def test_raw_records_drop_every_row_of_the_user() -> None:
    register = DeletionRegister.from_records([(RAW_ID_SPACE, deletion_hash(CAROL))])
    kept, left_out = exclude_deleted_users(_dataset(), register, None)
    assert (left_out.users, left_out.interactions) == (1, 3)
    assert CAROL not in set(kept.interactions["user_id"]) and len(kept.interactions) == 3
    assert kept.users is not None and list(kept.users["user_id"]) == [ALICE, BOB]
    assert list(kept.items["item_id"]) == ["i1", "i2", "i3"]  # items are not personal data
    # an empty register, or one of unknown users, changes nothing
    same, none = exclude_deleted_users(_dataset(), DeletionRegister(), None)
    assert none.users == 0 and same.fingerprint() == _dataset().fingerprint()


def test_pseudonym_records_match_under_the_same_key(pseudonymizer: Pseudonymizer) -> None:
    register = DeletionRegister.from_records(
        [
            (id_space(pseudonymizer), deletion_hash(pseudonymizer.pseudonym(ALICE))),
            (RAW_ID_SPACE, deletion_hash(BOB)),  # from a time the service kept raw ids
        ]
    )
    kept, left_out = exclude_deleted_users(_dataset(), register, pseudonymizer)
    assert left_out.users == 2 and set(kept.interactions["user_id"]) == {CAROL}


def test_records_that_cannot_be_matched_are_refused(
    tmp_path: Path, pseudonymizer: Pseudonymizer
) -> None:
    other = Pseudonymizer.from_key_file(write_key_file(tmp_path / "other.key"))
    register = DeletionRegister.from_records(
        [(id_space(other), deletion_hash(other.pseudonym(ALICE)))]
    )
    with pytest.raises(ConfigError, match=f"key:{other.key_id}.*this experiment uses"):
        exclude_deleted_users(_dataset(), register, pseudonymizer)
    with pytest.raises(ConfigError, match="keeps raw user ids"):
        exclude_deleted_users(_dataset(), register, None)
    everyone = DeletionRegister.from_records(
        (RAW_ID_SPACE, deletion_hash(u)) for u in (ALICE, BOB, CAROL)
    )
    with pytest.raises(DataError, match="deleted user"):
        exclude_deleted_users(_dataset(), everyone, None)


def test_register_is_read_from_the_store(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    from lmrec.service.store import Store, StoredEvent

    url = f"sqlite:///{tmp_path / 'service.db'}"
    store = Store(url)
    store.add_events(
        [StoredEvent("e1", "u1", "i1", "view", 1.0), StoredEvent("e2", "u2", "i1", "view", 2.0)]
    )
    # recorded whether or not the served model knew the user, once per id
    assert store.forget_user("u1", hide_training_history=False) == 1
    assert store.forget_user("u1", hide_training_history=True) == 0
    assert store.forget_user("gone", hide_training_history=False, id_space="key:00ff") == 0
    assert store.is_forgotten("u1") and not store.is_forgotten("gone")
    assert store.count_events() == 1
    store.close()
    register = read_deletion_register(url)
    assert register.hashes == {
        RAW_ID_SPACE: frozenset({deletion_hash("u1")}),
        "key:00ff": frozenset({deletion_hash("gone")}),
    }
    assert len(register) == 2


def test_a_missing_register_is_an_error_not_an_empty_list(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy")
    import sqlite3

    with pytest.raises(ConfigError, match="no SQLite store"):
        read_deletion_register(f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()
    sqlite3.connect(tmp_path / "other.db").close()
    with pytest.raises(ConfigError, match="holds no deletion register"):
        read_deletion_register(f"sqlite:///{tmp_path / 'other.db'}")


def test_config_keeps_no_password() -> None:
    assert DataConfig(deleted_users_from="sqlite:///runs/service.db").deleted_users_from
    assert DataConfig(deleted_users_from="postgresql://lmrec@db/lmrec").deleted_users_from
    with pytest.raises(ValueError, match="PGPASSWORD"):
        DataConfig(deleted_users_from="postgresql://lmrec:secret@db/lmrec")


def test_users_delete_refuses_a_path_that_is_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # without the run's [privacy] table, raw ids would be recorded instead of pseudonyms
    pytest.importorskip("sqlalchemy")
    from lmrec.cli.main import main

    url = f"sqlite:///{tmp_path / 'service.db'}"
    assert main(["users", "delete", str(tmp_path / "no-run"), ALICE, "--db", url]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and ALICE not in err
