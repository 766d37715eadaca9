"""Forgetting users: the deletion register the service writes and training reads.

When a user is deleted (``DELETE /v1/users/{id}``, ``lmrec users delete``), the service's
store deletes their events and adds a *deletion record* to its ``deleted_users`` table: the
SHA-256 of the id the model knows them by (their pseudonym when the served run pseudonymized
its users, else the raw id) and the *id space* that id lives in (``"raw"``, or
``"key:<key id>"`` for the pseudonyms of one key, :attr:`Pseudonymizer.key_id`). The raw id is
never stored.

An experiment with ``[data] deleted_users_from = "<store URL>"`` (or ``lmrec train
--exclude-deleted-from URL``) reads that register and leaves every interaction and user row of a
deleted user out of the data right after loading, before pseudonymization and the split
(:func:`leave_out_deleted_users`): the new model, its splits, maps, checkpoints, logs and run
record never see them. A record is matched in its own id space: ``raw`` records against the
SHA-256 of the raw ids, ``key:`` records against that of the pseudonyms under the
experiment's key. Records of another key cannot be matched, so training refuses them instead
of silently keeping those users.

What forgetting does not do: a model version trained before the deletion still encodes the
user's influence in its weights until it is replaced (the service stops serving their history
at once, but not what the weights learned from it); differential privacy
(:mod:`lmrec.privacy.dp`) is what bounds that influence. Copies outside the store (the
dataset's source files, the loader's cache, backups) are not touched.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lmrec.data.schema import USER, Dataset
from lmrec.errors import ConfigError, DataError
from lmrec.privacy.pseudonyms import Pseudonymizer

if TYPE_CHECKING:
    from lmrec.privacy.config import PrivacyConfig

log = logging.getLogger(__name__)

RAW_ID_SPACE = "raw"
"""The id space of users known by their raw ids (a run without pseudonymization)."""
REGISTER_TABLE = "deleted_users"
"""The store's table of deletion records."""


def id_space(pseudonymizer: Pseudonymizer | None) -> str:
    """The id space of the ids a pseudonymizer makes: ``"key:<key id>"``, or ``"raw"``."""
    return RAW_ID_SPACE if pseudonymizer is None else f"key:{pseudonymizer.key_id}"


def deletion_hash(user_id: str) -> str:
    """The SHA-256 hex digest under which a deleted user is recorded (never the id itself)."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DeletionRegister:
    """The deletion records of a store: id space -> SHA-256 of the deleted users' ids."""

    hashes: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[tuple[str, str]]) -> DeletionRegister:
        """From ``(id space, user hash)`` pairs."""
        grouped: dict[str, set[str]] = {}
        for space, digest in records:
            grouped.setdefault(space, set()).add(digest)
        return cls({space: frozenset(d) for space, d in grouped.items()})

    def __len__(self) -> int:
        return sum(len(d) for d in self.hashes.values())

    def space(self, name: str) -> frozenset[str]:
        return self.hashes.get(name, frozenset())


@dataclass(frozen=True)
class LeftOut:
    """What :func:`exclude_deleted_users` removed (counts only)."""

    users: int
    interactions: int


def read_deletion_register(url: str) -> DeletionRegister:
    """The deletion records of the service store at ``url``.

    Raises:
        ConfigError: The serve extra is missing, the URL is invalid, the SQLite file does not
            exist, or the database holds no deletion register (a mistyped URL must not train
            on deleted users as if none were deleted).
    """
    try:
        from sqlalchemy import inspect, select
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import SQLAlchemyError

        from lmrec.service.store import create_store_engine, deleted_users
    except ImportError as e:
        raise ConfigError(
            f"data.deleted_users_from needs the serve extra: pip install 'lmrec[serve]' ({e})"
        ) from None
    shown = _safe_url(url)
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"data.deleted_users_from: malformed database URL {shown!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in {"", ":memory:"} or not Path(database).is_file():
            raise ConfigError(f"data.deleted_users_from: no SQLite store at {database!r}")
    engine = create_store_engine(url)
    try:
        if not inspect(engine).has_table(REGISTER_TABLE):
            raise ConfigError(
                f"data.deleted_users_from: {shown!r} holds no deletion register (table "
                f"{REGISTER_TABLE}); point it at the store of `lmrec serve`"
            )
        stmt = select(deleted_users.c.id_space, deleted_users.c.user_hash)
        with engine.connect() as conn:
            rows = [(str(s), str(h)) for s, h in conn.execute(stmt)]
    except SQLAlchemyError as e:
        raise ConfigError(
            f"data.deleted_users_from: cannot read {shown!r}: {type(e).__name__}"
        ) from None
    finally:
        engine.dispose()
    return DeletionRegister.from_records(rows)


def _safe_url(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "<database URL>"


def exclude_deleted_users(
    dataset: Dataset, register: DeletionRegister, pseudonymizer: Pseudonymizer | None
) -> tuple[Dataset, LeftOut]:
    """The dataset (with raw user ids) without the users of ``register``.

    Args:
        dataset: A freshly loaded dataset, before :func:`lmrec.privacy.apply_privacy`.
        register: The deletion records.
        pseudonymizer: The experiment's pseudonymizer, or ``None`` when it keeps raw ids.

    Raises:
        ConfigError: The register holds records of a pseudonym key other than the
            experiment's (they cannot be matched); the message names the key ids.
        DataError: Nothing is left.
    """
    own = id_space(pseudonymizer)
    foreign = sorted(s for s in register.hashes if s not in {RAW_ID_SPACE, own})
    if foreign:
        n = sum(len(register.space(s)) for s in foreign)
        have = "keeps raw user ids" if pseudonymizer is None else f"uses {own}"
        raise ConfigError(
            f"data.deleted_users_from: {n} deletion records are pseudonyms of "
            f"{', '.join(foreign)}, but this experiment {have}; train with that key "
            "([privacy] key_file) so that they can be matched"
        )
    raw_hashes = register.space(RAW_ID_SPACE)
    key_hashes = register.space(own) if pseudonymizer is not None else frozenset()

    def is_deleted(raw: str) -> bool:
        if deletion_hash(raw) in raw_hashes:
            return True
        return pseudonymizer is not None and (
            deletion_hash(pseudonymizer.pseudonym(raw)) in key_hashes
        )

    users = dataset.interactions[USER].astype(str)
    candidates = set(users.unique())
    if dataset.users is not None:
        candidates.update(dataset.users[USER].astype(str))
    deleted = {raw for raw in candidates if is_deleted(raw)}
    if not deleted:
        return dataset, LeftOut(0, 0)
    keep = ~users.isin(deleted)
    interactions = dataset.interactions[keep.to_numpy()].reset_index(drop=True)
    if interactions.empty:
        raise DataError("every interaction belongs to a deleted user", column=USER)
    table = dataset.users
    if table is not None:
        table = table[~table[USER].astype(str).isin(deleted).to_numpy()].reset_index(drop=True)
    left_out = LeftOut(users=len(deleted), interactions=int((~keep).sum()))
    out = Dataset(
        name=dataset.name,
        interactions=interactions,
        items=dataset.items,
        users=table,
        text_fields=dataset.text_fields,
    )
    return out, left_out


def leave_out_deleted_users(dataset: Dataset, url: str, privacy: PrivacyConfig) -> Dataset:
    """Read the register at ``url`` and drop its users from a freshly loaded dataset.

    Called by :func:`lmrec.experiment.prepare_data` when ``data.deleted_users_from`` is set.

    Raises:
        ConfigError: See :func:`read_deletion_register` and :func:`exclude_deleted_users`.
    """
    register = read_deletion_register(url)
    pseudonymizer = Pseudonymizer.from_config(privacy) if privacy.pseudonymize else None
    dataset, left_out = exclude_deleted_users(dataset, register, pseudonymizer)
    log.info(
        "left out %d deleted users (%d interactions; %d deletion records)",
        left_out.users,
        left_out.interactions,
        len(register),
    )
    return dataset
