"""API keys: made once, stored only as hashes, checked in constant time, scoped.

A key reads ``lmrec_<key id>_<secret>``: the key id (public, 12 hex digits) finds the stored
row, the SHA-256 of the whole key is compared with the stored hash by
:func:`hmac.compare_digest`. The secret has 256 random bits, so a plain hash (no slow KDF) is
enough: there is nothing to brute-force.

Scopes are ordered: ``read`` (recommendations, similar items) < ``write`` (events, items,
user deletion) < ``admin`` (model reload); a key grants its scope and those below.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
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
