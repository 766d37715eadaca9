"""The store on SQLite and PostgreSQL: idempotent, durable batches; users, items, keys."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from lmrec.errors import ConfigError
from lmrec.service.store import Store, StoredEvent, StoredItem, user_hash


def ev(event_id: str, user: str = "u1", item: str = "1", t: float = 0.0) -> StoredEvent:
    return StoredEvent(event_id=event_id, user_id=user, item_id=item, type="view", timestamp=t)


def test_batch_is_stored_once_by_event_id(store: Store) -> None:
    first = store.add_events([ev("a"), ev("b"), ev("c")])
    assert (first.stored, first.duplicates) == (3, 0)
    # a retried batch, overlapping the first, and a repeat inside one batch
    again = store.add_events([ev("b"), ev("c"), ev("d"), ev("d")])
    assert (again.stored, again.duplicates) == (1, 3)
    assert sorted(store.event_ids()) == ["a", "b", "c", "d"]
    assert store.count_events() == 4


def test_user_items_are_the_latest_in_time_order(store: Store) -> None:
    store.add_events([ev("late", item="3", t=30.0), ev("early", item="1", t=10.0)])
    store.add_events([ev("mid", item="2", t=20.0), ev("other", user="u2", item="9", t=15.0)])
    assert store.user_items("u1") == ["1", "2", "3"]
    assert store.user_items("u1", limit=2) == ["2", "3"]
    assert store.user_items("nobody") == []
    assert [e.event_id for e in store.events_of("u1")] == ["early", "mid", "late"]


def test_forget_user_deletes_events_and_keeps_only_a_hash(store: Store) -> None:
    store.add_events([ev("a"), ev("b"), ev("c", user="u2")])
    assert store.forget_user("u1", hide_training_history=True) == 2
    assert store.user_items("u1") == [] and store.user_items("u2") == ["1"]
    assert store.is_forgotten("u1") and not store.is_forgotten("u2")
    with store.engine.connect() as conn:
        kept = conn.execute(text("SELECT user_hash FROM forgotten_users")).scalars().all()
    assert kept == [user_hash("u1")] and "u1" not in kept[0]
    # forgetting twice is harmless
    assert store.forget_user("u1", hide_training_history=True) == 0


def test_items_put_update_delete(store: Store) -> None:
    store.put_item(StoredItem("n1", "New One", "about space", ["Sci-Fi"]))
    store.put_item(StoredItem("n1", "New One (cut)", "about space", ["Sci-Fi", "Drama"]))
    store.delete_item("7")
    items = {i.item_id: i for i in store.items()}
    assert items["n1"].title == "New One (cut)" and items["n1"].categories == ["Sci-Fi", "Drama"]
    assert not items["n1"].deleted and items["7"].deleted
    store.delete_item("n1")
    store.put_item(StoredItem("7", "Seven", "", []))  # put undeletes
    items = {i.item_id: i for i in store.items()}
    assert items["n1"].deleted and items["n1"].title == "New One (cut)"
    assert not items["7"].deleted


def test_keys_revoke(store: Store) -> None:
    store.add_key("abc", "0" * 64, "read", "ci")
    assert store.get_key("abc") is not None and store.get_key("zzz") is None
    assert store.revoke_key("abc") and not store.revoke_key("abc")
    record = store.get_key("abc")
    assert record is not None and record.revoked_at is not None


def test_sqlite_is_wal_with_full_sync(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/s.db")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    store.close()


@pytest.mark.parametrize(
    ("url", "needle"),
    [("mysql://x/y", "sqlite"), ("not a url", "malformed"), ("sqlite://", "needs a file")],
)
def test_bad_database_urls_are_config_errors(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Store(url)


def test_user_states_read_many_users_at_once(store: Store) -> None:
    store.add_events([ev("a", item="1", t=10.0), ev("b", item="2", t=20.0)])
    store.add_events([ev("c", item="3", t=30.0), ev("d", user="u2", item="9", t=15.0)])
    store.add_events([ev("e", user="u3", item="4", t=5.0)])
    store.forget_user("u3", hide_training_history=True)
    states = store.user_states(["u1", "u2", "u3", "nobody", "u1"], limit=2)
    assert list(states) == ["u1", "u2", "u3", "nobody"]
    for user, state in states.items():  # the same as the one-user reads
        assert state.recent == store.user_items(user, limit=2)
        assert state.forgotten == store.is_forgotten(user)
    assert states["u1"].recent == ["2", "3"] and states["u3"].forgotten
    assert store.user_states([]) == {}
