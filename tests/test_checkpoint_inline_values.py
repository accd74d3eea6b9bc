"""Small immutable values ride in the checkpoint's own row (``_stored.inline``), on SQLite
and PostgreSQL: read back with the row, not found by version; an unchanged channel
carries the value stored for its version (never the value a put was given for it), and
only when the saver knows the put's parent; exact types only; rows without them (written
by an older threadloom) and damaged ones read as before."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from checkpoint_conformance import cfg, make_cp

from threadloom.checkpoint.serde import CorruptCheckpointError, MsgpackSerializer

Sql = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
Opener = Callable[[], AbstractContextManager[Any]]


class Colour(StrEnum):
    RED = "red"


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Opener, Sql]]:
    """A way to open a new saver (an empty cache each time) on one database, and a way
    to run SQL on that database behind the savers' backs."""
    if request.param == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        path = str(tmp_path / "inline.sqlite")

        def open_sqlite() -> AbstractContextManager[Any]:
            return SqliteSaver.from_conn_string(path)

        def sqlite_sql(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            with sqlite3.connect(path) as conn:
                return conn.execute(statement.replace("%s", "?"), params).fetchall()

        yield open_sqlite, sqlite_sql
        return
    import psycopg

    from threadloom.checkpoint.postgres import PostgresSaver

    url = request.getfixturevalue("postgres_schema_url")

    def open_postgres() -> AbstractContextManager[Any]:
        return PostgresSaver.from_conn_string(url)

    def postgres_sql(statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    yield open_postgres, postgres_sql


@contextmanager
def opened(opener: Opener) -> Iterator[Any]:
    with opener() as saver:
        saver.setup()
        yield saver


def drop_values(sql: Sql, thread_id: str, channels: tuple[str, ...]) -> None:
    marks = ", ".join("%s" for _ in channels)
    sql(
        f"DELETE FROM threadloom_blobs WHERE thread_id = %s AND channel IN ({marks})",
        (thread_id, *channels),
    )


ATOMS = {"n": 3, "s": "short", "f": 1.5, "b": True, "z": None}
OTHERS = {"long": "x" * 300, "items": [1, 2], "big": 2**70, "colour": Colour.RED}


def test_atoms_are_read_from_the_row(store: tuple[Opener, Sql]) -> None:
    opener, sql = store
    values = {**ATOMS, **OTHERS}
    versions = dict.fromkeys(values, "1")
    with opened(opener) as saver:
        saver.put(cfg("t"), make_cp(values, versions), {"step": 0}, versions)
    drop_values(sql, "t", tuple(ATOMS))  # the value table's rows of the atoms are gone
    with opened(opener) as saver:  # a new cache: whatever it reads comes from the database
        got = saver.get_tuple(cfg("t"))
        assert got is not None and got.checkpoint["channel_values"] == values
        assert type(got.checkpoint["channel_values"]["colour"]) is Colour  # not inlined
        [listed] = list(saver.list(None))
        assert listed.checkpoint["channel_values"] == values
    drop_values(sql, "t", tuple(OTHERS))  # the others were read from the value table
    with opened(opener) as saver:
        got = saver.get_tuple(cfg("t"))
        assert got is not None and got.checkpoint["channel_values"] == ATOMS


def test_an_unchanged_channel_carries_its_stored_value_when_the_parent_is_known(
    store: tuple[Opener, Sql],
) -> None:
    opener, sql = store
    with opened(opener) as saver:
        c1 = saver.put(cfg("t"), make_cp({"a": 1, "b": "B1"}, {"a": "1", "b": "1"}),
                       {"step": 0}, {"a": "1", "b": "1"})
        # "b" unchanged: the row carries the value stored for version 1, not this one
        c2 = saver.put(c1, make_cp({"a": 2, "b": "given"}, {"a": "2", "b": "1"}),
                       {"step": 1}, {"a": "2"})
    with opened(opener) as saver:  # knows no head of the thread: carries nothing over
        c3 = saver.put(c2, make_cp({"a": 3, "b": "B1"}, {"a": "3", "b": "1"}),
                       {"step": 2}, {"a": "3"})
    drop_values(sql, "t", ("b",))
    with opened(opener) as saver:
        second = saver.get_tuple(c2)
        third = saver.get_tuple(c3)
    assert second is not None and second.checkpoint["channel_values"] == {"a": 2, "b": "B1"}
    assert third is not None and third.checkpoint["channel_values"] == {"a": 3}


def test_a_loaded_head_is_carried_over_too(store: tuple[Opener, Sql]) -> None:
    """A process that read the thread's head (a run starting) carries its atoms."""
    opener, sql = store
    with opened(opener) as saver:
        saver.put(cfg("t"), make_cp({"a": 1, "b": "B1"}, {"a": "1", "b": "1"}),
                  {"step": 0}, {"a": "1", "b": "1"})
    with opened(opener) as saver:
        head = saver.get_tuple(cfg("t"))
        assert head is not None
        c2 = saver.put(head.config, make_cp({"a": 2, "b": "B1"}, {"a": "2", "b": "1"}),
                       {"step": 1}, {"a": "2"})
    drop_values(sql, "t", ("a", "b"))
    with opened(opener) as saver:
        got = saver.get_tuple(c2)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 2, "b": "B1"}


def _rewrite_payload(sql: Sql, thread_id: str, change: Callable[[dict[str, Any]], None]) -> None:
    serde = MsgpackSerializer()
    [(checkpoint_id, typ, blob)] = sql(
        "SELECT checkpoint_id, type, checkpoint FROM threadloom_checkpoints "
        "WHERE thread_id = %s", (thread_id,),
    )  # fmt: skip
    payload = serde.loads_typed((typ, bytes(blob)))
    change(payload)
    typ, data = serde.dumps_typed(payload)
    sql(
        "UPDATE threadloom_checkpoints SET type = %s, checkpoint = %s "
        "WHERE thread_id = %s AND checkpoint_id = %s",
        (typ, data, thread_id, checkpoint_id),
    )


def test_a_row_without_carried_values_reads_them_by_version(
    store: tuple[Opener, Sql],
) -> None:
    """As an older threadloom wrote it: the values are found in the value table."""
    opener, sql = store
    versions = dict.fromkeys(ATOMS, "1")
    with opened(opener) as saver:
        saver.put(cfg("t"), make_cp(ATOMS, versions), {"step": 0}, versions)
    _rewrite_payload(sql, "t", lambda payload: payload.pop("channel_values"))
    with opened(opener) as saver:
        got = saver.get_tuple(cfg("t"))
        [listed] = list(saver.list(None))
    assert got is not None and got.checkpoint["channel_values"] == ATOMS
    assert listed.checkpoint["channel_values"] == ATOMS


@pytest.mark.parametrize("damage", [["n"], {7: "seven"}, "n"])
def test_damaged_carried_values_are_refused_naming_the_row(
    store: tuple[Opener, Sql], damage: Any
) -> None:
    opener, sql = store
    versions = dict.fromkeys(ATOMS, "1")
    with opened(opener) as saver:
        saver.put(cfg("t"), make_cp(ATOMS, versions), {"step": 0}, versions)

    def damaged(payload: dict[str, Any]) -> None:
        payload["channel_values"] = damage

    _rewrite_payload(sql, "t", damaged)
    with opened(opener) as saver:
        with pytest.raises(CorruptCheckpointError, match="thread 't'.*channel_values"):
            saver.get_tuple(cfg("t"))
        with pytest.raises(CorruptCheckpointError, match="thread 't'.*channel_values"):
            list(saver.list(None))
