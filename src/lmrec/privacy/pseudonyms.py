"""Keyed pseudonyms of user ids: HMAC-SHA256 under a secret key kept in a file.

A pseudonym is the first :data:`PSEUDONYM_HEX_CHARS` hex characters (128 bits) of
``HMAC-SHA256(key, "lmrec/user\\0" + raw id as UTF-8)``. The same raw id always gives the same
pseudonym under one key, so a user's events stay together and a user can later be found (and
deleted) by recomputing the pseudonym of their raw id; without the key nobody can link a
pseudonym to a raw id, not even by trying every e-mail address, as one could with a plain hash.

Collisions: for ``n`` distinct users the chance that any two share a 128-bit pseudonym is at
most ``n * (n - 1) / 2**129`` (the birthday bound): about 1.5e-21 for a billion users and
1.5e-15 for a trillion, so it is negligible; :func:`lmrec.privacy.pseudonymize_dataset` checks
anyway and refuses a collision rather than merging two users.

The key is 32 random bytes written as 64 hex characters to a file with owner-only permissions
(``0600``), by ``lmrec privacy keygen PATH`` or ``Pseudonymizer.from_key_file(path,
create=True)``. It never comes from code. Lose the key and the pseudonyms can no longer be
recomputed; leak it and they can be.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from lmrec.errors import ConfigError

if TYPE_CHECKING:
    from lmrec.privacy.config import PrivacyConfig

logger = logging.getLogger(__name__)

KEY_FILE_ENV = "LMREC_PSEUDONYM_KEY_FILE"
"""Environment variable naming the key file when the config leaves ``key_file`` unset."""
KEY_BYTES = 32
"""Length of a generated key (256 bits)."""
MIN_KEY_BYTES = 16
"""Shortest key accepted from a file (128 bits)."""
PSEUDONYM_HEX_CHARS = 32
"""Length of a pseudonym in hex characters (128 bits; see the module docstring)."""

_DOMAIN = b"lmrec/user\x00"  # separates user pseudonyms from any other use of the same key
_EVENT_DOMAIN = b"lmrec/event\x00"
_KEY_ID_DOMAIN = b"lmrec/key-id\x00"


def _how_to_create(path: Path | str) -> str:
    return f"create one with `lmrec privacy keygen {path}` and keep it secret and backed up"


def write_key_file(path: str | Path) -> Path:
    """Create a new key file with owner-only permissions (``0600``).

    Args:
        path: Where to write; missing parent folders are created (``0700``).

    Returns:
        The path written.

    Raises:
        ConfigError: The file exists already (an existing key is never overwritten: that would
            change every pseudonym) or cannot be written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: fails instead of replacing a key; the mode applies from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"pseudonym key file {path} exists already; it is never overwritten, since a new "
            "key changes every pseudonym"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot create pseudonym key file {path}: {e.strerror}") from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # in case the umask or the file system widened it
        os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read_key_file(path: str | Path) -> bytes:
    """Read a key written by :func:`write_key_file` (hex text, at least 16 bytes).

    A file that others can read is used, with a warning: a secret mounted by a container
    platform is often group-readable.

    Raises:
        ConfigError: The file is missing, unreadable, not hex or too short; the message says
            how to create one.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pseudonym key file {path} does not exist; {_how_to_create(path)}")
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read pseudonym key file {path}: {e}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(
            f"pseudonym key file {path} does not hold a hex key; {_how_to_create('NEW_PATH')}"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(
            f"pseudonym key in {path} has {len(key)} bytes, at least {MIN_KEY_BYTES} are needed"
        )
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        logger.warning("pseudonym key file %s is readable by others; chmod 600 it", path)
    return key


class Pseudonymizer:
    """Maps raw user ids to keyed pseudonyms.

    Build it from a key file (:meth:`from_key_file`) or an experiment's ``[privacy]`` table
    (:meth:`from_config`), never from a key in code::

        pseudonymizer = Pseudonymizer.from_key_file("secrets/pseudonym.key")
        pseudonymizer.pseudonym("alice@example.com")   # 32 hex characters, same every time

    Args:
        key: The secret key, at least 16 bytes.

    Raises:
        ConfigError: The key is too short.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        self._key = bytes(key)

    def __repr__(self) -> str:  # never show the key
        return "Pseudonymizer(key=<hidden>)"

    @classmethod
    def from_key_file(cls, path: str | Path, *, create: bool = False) -> Pseudonymizer:
        """Read the key from ``path``; with ``create``, write a new one there first if absent.

        Raises:
            ConfigError: The file is missing (and ``create`` is off) or invalid.
        """
        path = Path(path)
        if create and not path.exists():
            write_key_file(path)
            logger.info("created pseudonym key file %s", path)
        return cls(read_key_file(path))

    @classmethod
    def from_env(cls, *, create: bool = False) -> Pseudonymizer:
        """The key file named by ``LMREC_PSEUDONYM_KEY_FILE``.

        Raises:
            ConfigError: The variable is unset, or the file is missing or invalid.
        """
        value = os.environ.get(KEY_FILE_ENV, "").strip()
        if not value:
            raise ConfigError(
                f"pseudonymization needs a key: set privacy.key_file or {KEY_FILE_ENV} to a key "
                f"file; {_how_to_create('PATH')}"
            )
        return cls.from_key_file(value, create=create)

    @classmethod
    def from_config(cls, config: PrivacyConfig) -> Pseudonymizer:
        """The key of a ``[privacy]`` table: ``key_file``, else ``LMREC_PSEUDONYM_KEY_FILE``.

        Raises:
            ConfigError: Neither names a key file, or the file is missing or invalid.
        """
        if config.key_file is not None:
            return cls.from_key_file(config.key_file, create=config.create_key)
        return cls.from_env(create=config.create_key)

    def pseudonym(self, raw_id: str) -> str:
        """The pseudonym of one raw user id (32 lower-case hex characters).

        Raises:
            TypeError: ``raw_id`` is not a string.
        """
        return self._digest(_DOMAIN, raw_id, "user id")

    def event_pseudonym(self, raw_event_id: str) -> str:
        """The pseudonym of a client's event id (another domain than user ids): clients often
        build event ids from user ids, so the service stores this instead when it
        pseudonymizes; a repeated event id still gives the same value.

        Raises:
            TypeError: ``raw_event_id`` is not a string.
        """
        return self._digest(_EVENT_DOMAIN, raw_event_id, "event id")

    @property
    def key_id(self) -> str:
        """A public fingerprint of the key (16 hex characters): it tells keys apart (e.g.
        whose pseudonyms a deletion record holds) and reveals nothing about the key."""
        return hmac.new(self._key, _KEY_ID_DOMAIN, hashlib.sha256).hexdigest()[:16]

    def _digest(self, domain: bytes, raw: str, what: str) -> str:
        if not isinstance(raw, str):
            raise TypeError(f"{what} must be a str, got {type(raw).__name__}")
        mac = hmac.new(self._key, domain + raw.encode("utf-8"), hashlib.sha256)
        return mac.hexdigest()[:PSEUDONYM_HEX_CHARS]

    def mapping(self, raw_ids: Iterable[str]) -> dict[str, str]:
        """Raw id -> pseudonym for every distinct id of ``raw_ids``."""
        return {raw: self.pseudonym(raw) for raw in dict.fromkeys(raw_ids)}
