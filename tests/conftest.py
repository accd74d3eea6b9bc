"""Fixtures shared by the test modules (the plain helpers they build on: ``helpers.py``).

PostgreSQL: ``pg_schemas`` (new schemas in the test database) and ``postgres_schema_url``
(one) for savers and stores, ``fresh_postgres_database`` and its module and session
twins for what needs a database of its own. All of them skip, with the reason, when
PostgreSQL is unreachable - or fail under CI=true (``helpers.require_postgres``).

``graph_api``: runs one test body through a compiled graph's sync API and again through
its async one (``helpers.GraphApi``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from helpers import POSTGRES_URL, GraphApi, drop_schemas, require_postgres, schema_maker


@contextmanager
def new_postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped (without FORCE) on exit.

    The drop fails if a connection to the database is still open: a test using it also
    checks that what it ran closed every connection it opened. Skips when PostgreSQL
    cannot be reached, except under CI=true, where it fails. For fixtures of any scope
    (``fresh_postgres_database`` is the per-test one).
    """
    require_postgres()
    import psycopg

    admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    name = f"threadloom_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE {name}")


@pytest.fixture
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database for one test (see
    ``new_postgres_database``)."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def module_postgres_database() -> Iterator[str]:
    """A new PostgreSQL database shared by one test module (see
    ``new_postgres_database``)."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def session_postgres_database() -> Iterator[str]:
    """A new PostgreSQL database for a session-wide fixture, e.g. a server shared by
    several modules (see ``new_postgres_database``)."""
    with new_postgres_database() as url:
        yield url


@pytest.fixture
def pg_schemas() -> Iterator[Callable[[], str]]:
    """Makes new schemas in the test database (each call: a URL that uses a new one);
    drops them after the test."""
    made: list[str] = []
    yield schema_maker(made)
    drop_schemas(made)


@pytest.fixture
def postgres_schema_url(pg_schemas: Callable[[], str]) -> str:
    """A URL of the test database whose search path is a new schema of this test."""
    return pg_schemas()


@pytest.fixture(params=["sync", "async"])
def graph_api(request: pytest.FixtureRequest) -> GraphApi:
    """The test body once through the graphs' sync API, once through the async one."""
    return GraphApi(use_async=request.param == "async")
