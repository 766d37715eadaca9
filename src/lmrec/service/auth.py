"""API keys: made once, stored only as hashes, checked in constant time, scoped.

A key reads ``lmrec_<key id>_<secret>``: the key id (public, 12 hex digits) finds the stored
row, the SHA-256 of the whole key is compared with the stored hash by
:func:`hmac.compare_digest`. The secret has 256 random bits, so a plain hash (no slow KDF) is
enough: there is nothing to brute-force.

Verified keys are remembered for a second (:class:`KeyCache`), so that a request does not
query the store for its key: a key revoked through the serving process's own store is refused
at once, one revoked by another process (``lmrec keys revoke``) within that second.

Scopes are ordered: ``read`` (recommendations, similar items) < ``write`` (events, items,
user deletion) < ``admin`` (model reload); a key grants its scope and those below.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from lmrec.errors import ConfigError
from lmrec.service.store import ApiKeyRecord, Store

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")
KEY_PREFIX = "lmrec"
_KEY = re.compile(r"^lmrec_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# Compared against when the key id is unknown, so that a miss costs what a hit costs.
_NO_KEY_HASH = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class NewKey:
    """A freshly made key: ``key`` is shown once and never stored."""

    key_id: str
    key: str
    scope: Scope


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def grants(granted: str, needed: Scope) -> bool:
    """Whether a key of scope ``granted`` may do what needs ``needed``."""
    if granted not in SCOPES:
        return False
    return SCOPES.index(granted) >= SCOPES.index(needed)


def create_key(store: Store, scope: str, name: str = "") -> NewKey:
    """Make a key of ``scope``, store its hash, and return it (the only time it is seen).

    Raises:
        ConfigError: ``scope`` is not one of read, write, admin, or the name is too long.
    """
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if len(name) > 100:
        raise ConfigError(f"name must be at most 100 characters, got {len(name)}")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    store.add_key(key_id, hash_key(key), scope, name)
    return NewKey(key_id=key_id, key=key, scope=scope)


def verify_key(store: Store, presented: str) -> ApiKeyRecord | None:
    """The active key record matching ``presented``, or ``None``."""
    match = _KEY.match(presented)
    record = store.get_key(match.group(1)) if match else None
    expected = record.key_hash if record is not None else _NO_KEY_HASH
    same = hmac.compare_digest(hash_key(presented), expected)
    if not same or record is None or record.revoked_at is not None:
        return None
    return record


KEY_CACHE_SECONDS = 1.0
"""How long :class:`KeyCache` trusts a verified key without asking the store again."""


class KeyCache:
    """:func:`verify_key` with the active keys it found remembered for ``ttl`` seconds.

    An entry is found by the SHA-256 of the presented key, so only the exact key that was
    verified hits it. Revoking through ``store`` (:meth:`Store.revoke_key`) empties the
    cache; a revocation by another process takes effect within ``ttl``. Unknown, invalid and
    revoked keys are never remembered: each such request asks the store.

    Args:
        store: Where the keys are.
        ttl: Seconds an entry is trusted (0: no caching).
        max_entries: The cache is emptied when it would grow beyond this.
        clock: Monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        store: Store,
        ttl: float = KEY_CACHE_SECONDS,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0:
            raise ValueError(f"ttl must be >= 0, got {ttl}")
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[ApiKeyRecord, float]] = {}
        self._generation = store.keys_generation

    def verify(self, presented: str) -> ApiKeyRecord | None:
        """The active key record matching ``presented``, or ``None``."""
        digest = hash_key(presented)
        now = self.clock()
        with self._lock:
            if self._generation != self.store.keys_generation:
                self._entries.clear()
                self._generation = self.store.keys_generation
            hit = self._entries.get(digest)
            if hit is not None and hit[1] > now:
                return hit[0]
        generation = self.store.keys_generation
        record = verify_key(self.store, presented)
        if record is not None and self.ttl > 0:
            with self._lock:
                if generation == self.store.keys_generation:  # no revocation meanwhile
                    if len(self._entries) >= self.max_entries:
                        self._entries.clear()
                    self._entries[digest] = (record, now + self.ttl)
        return record
