"""KeyCache: verified keys are remembered briefly; revocations and expiry are respected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lmrec.service import Store, create_key
from lmrec.service.auth import KeyCache


class CountingStore(Store):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.lookups = 0

    def get_key(self, key_id: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return super().get_key(key_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(f"sqlite:///{tmp_path / 'keys.db'}")
    yield s
    s.close()


def test_a_verified_key_is_remembered_until_it_expires(store: CountingStore) -> None:
    now = [100.0]
    cache = KeyCache(store, ttl=1.0, clock=lambda: now[0])
    key = create_key(store, "read").key
    assert cache.verify(key) is not None and store.lookups == 1
    assert cache.verify(key) is not None and store.lookups == 1  # from the cache
    now[0] += 1.5
    assert cache.verify(key) is not None and store.lookups == 2  # expired: asked again


def test_revoking_through_the_store_is_seen_at_once(store: CountingStore) -> None:
    cache = KeyCache(store, ttl=60.0)
    new = create_key(store, "write")
    assert cache.verify(new.key) is not None
    assert store.revoke_key(new.key_id)
    assert cache.verify(new.key) is None


def test_another_process_revoking_is_seen_within_the_ttl(
    store: CountingStore, tmp_path: Path
) -> None:
    now = [0.0]
    cache = KeyCache(store, ttl=1.0, clock=lambda: now[0])
    new = create_key(store, "read")
    assert cache.verify(new.key) is not None
    other = Store(store.url)  # e.g. `lmrec keys revoke` in another process
    assert other.revoke_key(new.key_id)
    other.close()
    assert cache.verify(new.key) is not None  # still trusted within the second
    now[0] += 1.01
    assert cache.verify(new.key) is None


def test_bad_keys_are_never_remembered(store: CountingStore) -> None:
    cache = KeyCache(store, ttl=60.0)
    key = create_key(store, "read").key
    wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
    for _ in range(3):
        assert cache.verify(wrong) is None
    assert store.lookups == 3
    assert cache.verify("not a key") is None
    with pytest.raises(ValueError, match="ttl"):
        KeyCache(store, ttl=-1)
