"""Fixtures shared by the test modules."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URL = os.environ.get(
    "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextmanager
def new_postgres_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped (without FORCE) on exit.

    The drop fails if a connection to the database is still open: a test using it also
    checks that what it ran closed every connection it opened. Skips when PostgreSQL
    cannot be reached, except under CI=true, where it fails. For fixtures of any scope
    (``fresh_postgres_database`` is the per-test one).
    """
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason + " (set THREADLOOM_TEST_POSTGRES_URL)")
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
