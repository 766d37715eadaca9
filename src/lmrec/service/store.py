"""The service's durable state, through SQLAlchemy: events, item changes, forgotten users, keys.

SQLite (a file, WAL journal, ``synchronous=FULL``) is the embedded default; PostgreSQL is used
by URL (``postgresql+psycopg://user:password@host/db``). Every write is one transaction, and a
method returns only after that transaction has committed, so whatever the service acknowledges
survives a crash of the process (and, with ``synchronous=FULL`` / PostgreSQL's default
``synchronous_commit=on``, of the machine).

Tables:

``events``
    One row per interaction, unique by the client's ``event_id``: posting a batch again
    stores nothing twice.
``items``
    Items created or updated through the API (their text, replayed into every model version
    loaded) and items deleted from results (``deleted``).
``forgotten_users``
    SHA-256 of the id of every deleted user whose training history the model still holds, so
    it is no longer served; the raw id is not kept.
``deleted_users``
    The deletion register that training reads (``data.deleted_users_from``,
    :mod:`lmrec.privacy.forgetting`): SHA-256 of every deleted user's id and the id space it
    lives in (``raw`` or ``key:<key id>`` for pseudonyms).
``api_keys``
    Key id, SHA-256 of the whole key, scope, creation and revocation times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from lmrec.errors import ConfigError
from lmrec.privacy.forgetting import RAW_ID_SPACE, REGISTER_TABLE, deletion_hash

ID_CHARS = 128
"""Longest user, item or event id the store accepts."""

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(ID_CHARS), nullable=False, unique=True),
    Column("user_id", String(ID_CHARS), nullable=False),
    Column("item_id", String(ID_CHARS), nullable=False),
    Column("type", String(32), nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("rating", Double, nullable=True),
    Column("received_at", Double, nullable=False),
    Index("ix_events_user_time", "user_id", "timestamp"),
)

items = Table(
    "items",
    metadata,
    Column("item_id", String(ID_CHARS), primary_key=True),
    Column("title", Text, nullable=False, default=""),
    Column("text", Text, nullable=False, default=""),
    Column("categories", JSON, nullable=False, default=list),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("updated_at", Double, nullable=False),
)

forgotten_users = Table(
    "forgotten_users",
    metadata,
    Column("user_hash", String(64), primary_key=True),
    Column("forgotten_at", Double, nullable=False),
)

deleted_users = Table(
    REGISTER_TABLE,
    metadata,
    Column("id_space", String(32), primary_key=True),
    Column("user_hash", String(64), primary_key=True),
    Column("deleted_at", Double, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double, nullable=True),
)

service_state = Table(
    "service_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation", BigInteger, nullable=False),
    Column("run", Text, nullable=True),
)
"""One row: a counter of the changes every serving process must replay (items created or
deleted through the API, model reloads) and the run the last reload chose."""

DEFAULT_DATABASE_URL = "sqlite:///runs/service.db"


@dataclass(frozen=True)
class ServedState:
    """What :meth:`Store.served_state` reads: the change counter and the chosen run."""

    generation: int
    run: str | None


@dataclass(frozen=True)
class StoredEvent:
    """One interaction as posted by a client (timestamps in Unix seconds)."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    timestamp: float
    rating: float | None = None


@dataclass(frozen=True)
class IngestResult:
    """What one batch did: events newly stored, and those already stored (by ``event_id``)."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class StoredItem:
    """An item created, updated or deleted through the service."""

    item_id: str
    title: str
    text: str
    categories: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key (its hash, never the key)."""

    key_id: str
    key_hash: str
    scope: str
    name: str
    created_at: float
    revoked_at: float | None


def user_hash(user_id: str) -> str:
    """The SHA-256 hex digest under which a forgotten user is remembered."""
    return deletion_hash(user_id)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer; FULL: a commit is on disk when it returns.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_store_engine(url: str) -> Engine:
    """An engine for ``url``, with SQLite set up for durable, concurrent use.

    Raises:
        ConfigError: The URL is malformed, names an unsupported database or a missing driver.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"database URL {url!r} is malformed: {e}") from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise ConfigError(f"database URL must be sqlite:/// or postgresql://, got {backend!r}")
    try:
        if backend == "sqlite":
            database = parsed.database or ""
            if database in {"", ":memory:"}:
                raise ConfigError("the SQLite store needs a file: sqlite:///path/to/service.db")
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(parsed, pool_size=16, max_overflow=32)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        if parsed.drivername == "postgresql":  # psycopg 3, not the default psycopg2
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=16, max_overflow=32, pool_pre_ping=True)
    except NoSuchModuleError as e:
        raise ConfigError(f"database URL {url!r}: {e}") from None


class Store:
    """The service's tables in one database; every method is one committed transaction.

    Args:
        url: A SQLAlchemy URL (``sqlite:///runs/service.db``,
            ``postgresql+psycopg://user:password@host/db``).
        create: Create missing tables.

    Raises:
        ConfigError: The URL is malformed or unsupported.
    """

    def __init__(self, url: str = DEFAULT_DATABASE_URL, *, create: bool = True) -> None:
        self.url = url
        self.engine = create_store_engine(url)
        self.keys_generation = 0
        """Bumped by every :meth:`revoke_key` of this object (see :class:`KeyCache`)."""
        if create:
            metadata.create_all(self.engine)

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _insert(self, table: Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # ------------------------------------------------------------------------- processes
    def served_state(self) -> ServedState:
        """The change counter (0 before the first change) and the run last reloaded."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(service_state.c.generation, service_state.c.run).where(
                    service_state.c.id == 1
                )
            ).first()
        return ServedState(int(row[0]), row[1]) if row is not None else ServedState(0, None)

    def record_change(self, run: str | None = None) -> int:
        """Count one change that other serving processes must replay; the new count.

        ``run``: the run a reload chose (kept for the others to load); ``None`` keeps the
        recorded one. Concurrent calls (from any process) get distinct counts.
        """
        stmt = self._insert(service_state).values(id=1, generation=1, run=run)
        update_set: dict[str, Any] = {"generation": service_state.c.generation + 1}
        if run is not None:
            update_set["run"] = run
        stmt = stmt.on_conflict_do_update(index_elements=["id"], set_=update_set)
        with self._write() as conn:
            conn.execute(stmt)
            count = conn.execute(
                select(service_state.c.generation).where(service_state.c.id == 1)
            ).scalar_one()
        return int(count)

    def ping(self) -> None:
        """Run ``SELECT 1`` (raises when the database is unreachable)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # ------------------------------------------------------------------------- events
    def add_events(self, batch: Sequence[StoredEvent]) -> IngestResult:
        """Store a batch in one transaction; events whose ``event_id`` is stored are skipped.

        Returns only after the commit, so a returned result is durable.
        """
        if not batch:
            return IngestResult(0, 0)
        now = time.time()
        rows = [
            {
                "event_id": e.event_id,
                "user_id": e.user_id,
                "item_id": e.item_id,
                "type": e.type,
                "timestamp": e.timestamp,
                "rating": e.rating,
                "received_at": now,
            }
            for e in batch
        ]
        stmt = (
            self._insert(events)
            .on_conflict_do_nothing(index_elements=["event_id"])
            .returning(events.c.event_id)
        )
        with self._write() as conn:
            stored = len(conn.execute(stmt, rows).all())
        return IngestResult(stored=stored, duplicates=len(batch) - stored)

    def user_items(self, user_id: str, limit: int = 500) -> list[str]:
        """The item ids of the user's latest ``limit`` events, oldest first."""
        stmt = (
            select(events.c.item_id)
            .where(events.c.user_id == user_id)
            .order_by(events.c.timestamp.desc(), events.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            found = list(conn.execute(stmt).scalars())
        return found[::-1]

    def user_states(self, user_ids: Sequence[str], limit: int = 500) -> dict[str, UserState]:
        """Per distinct user id: :meth:`user_items` and :meth:`is_forgotten` in two queries.

        What a batch of recommendation requests reads, on one connection.
        """
        wanted = list(dict.fromkeys(user_ids))
        states = {u: UserState() for u in wanted}
        if not wanted:
            return states
        latest = (
            func.row_number()
            .over(
                partition_by=events.c.user_id,
                order_by=(events.c.timestamp.desc(), events.c.id.desc()),
            )
            .label("latest")
        )
        ranked = (
            select(events.c.user_id, events.c.item_id, latest)
            .where(events.c.user_id.in_(wanted))
            .subquery()
        )
        stmt = (
            select(ranked.c.user_id, ranked.c.item_id)
            .where(ranked.c.latest <= limit)
            .order_by(ranked.c.user_id, ranked.c.latest.desc())
        )
        hashes = {user_hash(u): u for u in wanted}
        gone = select(forgotten_users.c.user_hash).where(
            forgotten_users.c.user_hash.in_(list(hashes))
        )
        with self.engine.connect() as conn:
            for user_id, item_id in conn.execute(stmt):
                states[user_id].recent.append(item_id)
            for (h,) in conn.execute(gone):
                states[hashes[h]].forgotten = True
        return states

    def events_of(self, user_id: str) -> list[StoredEvent]:
        """Every stored event of a user, in time order."""
        stmt = (
            select(events)
            .where(events.c.user_id == user_id)
            .order_by(events.c.timestamp, events.c.id)
        )
        with self.engine.connect() as conn:
            return [_event(row) for row in conn.execute(stmt).mappings()]

    def event_ids(self) -> list[str]:
        """Every stored client event id (for checks and exports)."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(events.c.event_id)).scalars())

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    # ------------------------------------------------------------------------- users
    def forget_user(
        self, user_id: str, *, hide_training_history: bool, id_space: str = RAW_ID_SPACE
    ) -> int:
        """Delete the user's events, add them to the deletion register that training reads
        (in ``id_space``, see :mod:`lmrec.privacy.forgetting`), and remember them as forgotten
        when the model still holds their training history; returns how many events were
        deleted."""
        now = time.time()
        with self._write() as conn:
            deleted = conn.execute(delete(events).where(events.c.user_id == user_id)).rowcount
            conn.execute(
                self._insert(deleted_users)
                .values(id_space=id_space, user_hash=user_hash(user_id), deleted_at=now)
                .on_conflict_do_nothing(index_elements=["id_space", "user_hash"])
            )
            if hide_training_history:
                conn.execute(
                    self._insert(forgotten_users)
                    .values(user_hash=user_hash(user_id), forgotten_at=now)
                    .on_conflict_do_nothing(index_elements=["user_hash"])
                )
        return int(deleted or 0)

    def deletion_records(self) -> list[tuple[str, str]]:
        """The deletion register: ``(id space, SHA-256 of the user id)`` of every deleted user."""
        stmt = select(deleted_users.c.id_space, deleted_users.c.user_hash).order_by(
            deleted_users.c.deleted_at
        )
        with self.engine.connect() as conn:
            return [(str(s), str(h)) for s, h in conn.execute(stmt)]

    def is_forgotten(self, user_id: str) -> bool:
        stmt = select(forgotten_users.c.user_hash).where(
            forgotten_users.c.user_hash == user_hash(user_id)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    # ------------------------------------------------------------------------- items
    def put_item(self, item: StoredItem) -> None:
        """Create or replace an item's text (and undelete it)."""
        values = {
            "item_id": item.item_id,
            "title": item.title,
            "text": item.text,
            "categories": list(item.categories),
            "deleted": False,
            "updated_at": time.time(),
        }
        stmt = self._insert(items).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"],
            set_={k: v for k, v in values.items() if k != "item_id"},
        )
        with self._write() as conn:
            conn.execute(stmt)

    def delete_item(self, item_id: str) -> None:
        """Mark an item deleted (kept as a row so that every model version leaves it out)."""
        stmt = self._insert(items).values(
            item_id=item_id, title="", text="", categories=[], deleted=True, updated_at=time.time()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"], set_={"deleted": True, "updated_at": time.time()}
        )
        with self._write() as conn:
            conn.execute(stmt)

    def items(self) -> list[StoredItem]:
        """Every item created, updated or deleted through the service, oldest change first."""
        stmt = select(items).order_by(items.c.updated_at, items.c.item_id)
        with self.engine.connect() as conn:
            return [
                StoredItem(
                    item_id=r["item_id"],
                    title=r["title"],
                    text=r["text"],
                    categories=list(r["categories"] or []),
                    deleted=bool(r["deleted"]),
                )
                for r in conn.execute(stmt).mappings()
            ]

    # ------------------------------------------------------------------------- API keys
    def add_key(self, key_id: str, key_hash: str, scope: str, name: str = "") -> None:
        with self._write() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    key_hash=key_hash,
                    scope=scope,
                    name=name,
                    created_at=time.time(),
                    revoked_at=None,
                )
            )

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).mappings()
            found = row.first()
        return ApiKeyRecord(**dict(found)) if found is not None else None

    def api_keys(self) -> list[ApiKeyRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).mappings()
            return [ApiKeyRecord(**dict(r)) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; ``False`` when no active key has that id."""
        stmt = (
            update(api_keys)
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        with self._write() as conn:
            revoked = bool(conn.execute(stmt).rowcount)
        self.keys_generation += 1  # caches of verified keys in this process start over
        return revoked


@dataclass
class UserState:
    """What serving reads of a user (:meth:`Store.user_states`)."""

    recent: list[str] = field(default_factory=list)
    """Item ids of the latest events, oldest first."""
    forgotten: bool = False
    """The user was deleted: their training history must not be used."""


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        event_id=row["event_id"],
        user_id=row["user_id"],
        item_id=row["item_id"],
        type=row["type"],
        timestamp=float(row["timestamp"]),
        rating=None if row["rating"] is None else float(row["rating"]),
    )
