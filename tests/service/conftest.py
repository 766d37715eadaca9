"""Service fixtures: two tiny trained runs, a store on SQLite and on PostgreSQL, API clients.

PostgreSQL tests need ``LMREC_TEST_POSTGRES_URL`` (``.ci/run`` starts a server and sets it,
e.g. ``postgresql+psycopg://lmrec:lmrec@127.0.0.1:5432/lmrec_test``); without it they skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra")

from harness import TEXT_MODEL, Api, make_api, train_run

from lmrec.service import Store
from lmrec.service.store import metadata

POSTGRES_ENV = "LMREC_TEST_POSTGRES_URL"


@pytest.fixture(scope="session")
def knn_run(movielens_like: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """item-kNN on the tiny MovieLens-like data (even users: Action 1-30; odd: Love 31-60)."""
    base = tmp_path_factory.getbasetemp()
    return train_run(
        movielens_like, base / "service-runs", "knn", 'type = "itemknn"', base / "cache"
    )


@pytest.fixture(scope="session")
def text_run(movielens_like: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The text_mean model (frozen MiniLM vectors): it adds items and reads texts."""
    base = tmp_path_factory.getbasetemp()
    return train_run(movielens_like, base / "service-runs", "text", TEXT_MODEL, base / "cache")


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def empty_database(url: str) -> None:
    """Drop every service table, so that a test starts from nothing."""
    store = Store(url, create=False)
    metadata.drop_all(store.engine)
    store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, then the PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    url = postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (set by .ci/run)")
    empty_database(url)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    s = Store(database_url)
    yield s
    s.close()


@pytest.fixture
def knn_api(store: Store, knn_run: Path) -> Iterator[Api]:
    yield from make_api(store, knn_run)


@pytest.fixture
def text_api(store: Store, text_run: Path) -> Iterator[Api]:
    yield from make_api(store, text_run)
