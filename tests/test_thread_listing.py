"""``list_threads`` and the batches of ``expire_paused`` stay O(page): they read the
index of ``threadloom_threads`` (schema v4, one row per thread), never the checkpoints
table, and a database made before v4 gets its rows from its checkpoints at ``setup()``.

No timing: plans are read with ``EXPLAIN`` on the very statements the saver runs (caught
with its ``trace`` hook), and SQLite's work is counted in virtual-machine instructions
(its progress handler), which stay the same when the table grows tenfold.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from threadloom.checkpoint.base import create_checkpoint_id, empty_checkpoint
from threadloom.checkpoint.trace import TraceEvent

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
DOWNGRADE = ("DROP TABLE threadloom_threads", "DELETE FROM threadloom_migrations WHERE v >= 4")
"""What makes a database one of schema v3, as written before ``threadloom_threads``."""
FINDS = "SELECT thread_id FROM threadloom_threads"


def _put(saver: Any, thread_id: str, hours_ago: float, count: int = 1, ns: str = "") -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    for step in range(count):
        checkpoint = empty_checkpoint()
        checkpoint["id"] = create_checkpoint_id()
        checkpoint["ts"] = (NOW - dt.timedelta(hours=hours_ago)).isoformat()
        checkpoint["channel_values"] = {"x": step}
        checkpoint["channel_versions"] = {"x": str(step + 1)}
        config = saver.put(config, checkpoint, {"step": step}, {"x": str(step + 1)})


def _mixed(saver: Any) -> None:
    """Threads whose order has ties, namespaces and a newest id that is not the newest ts."""
    for t in range(6):
        _put(saver, f"t{t}", hours_ago=10 + t % 3, count=2)
    _put(saver, "t1", hours_ago=1, ns="child:1")
    _put(saver, "t4", hours_ago=48)  # t4's newest id, but an old ts
    saver.copy_thread("t2", "t2-copy")  # ties with t2 on both: by thread id


def _expected(saver: Any) -> list[str]:
    newest: dict[str, tuple[str, str]] = {}
    for tup in saver.list(None):
        thread_id = tup.config["configurable"]["thread_id"]
        pair = (tup.checkpoint["ts"], tup.checkpoint["id"])
        old = newest.get(thread_id, pair)
        newest[thread_id] = (max(old[0], pair[0]), max(old[1], pair[1]))
    return sorted(sorted(newest), key=lambda t: newest[t], reverse=True)


@contextmanager
def _statements(events: list[TraceEvent]) -> Iterator[list[str]]:
    """The SQL the saver runs inside the block (from its trace hook)."""
    start = len(events)
    got: list[str] = []
    yield got
    got += [sql for event in events[start:] for sql in event.statements]


def _check_migrated(saver: Any, expected: list[str]) -> None:
    assert saver.list_threads() == expected
    assert saver.list_threads(limit=3) == expected[:3]
    gone = saver.expire_paused(dt.timedelta(hours=11), now=NOW)
    assert gone == sorted(["t2", "t5", "t2-copy"])
    assert saver.list_threads() == [t for t in expected if t not in gone]


def test_an_existing_sqlite_database_gets_its_thread_rows(tmp_path: Path) -> None:
    from threadloom.checkpoint.sqlite import MIGRATIONS, SqliteSaver

    path = str(tmp_path / "old.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        _mixed(saver)
        expected = _expected(saver)
    with sqlite3.connect(path) as conn:
        for sql in DOWNGRADE:
            conn.execute(sql)
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        versions = [r[0] for r in saver.conn.execute("SELECT v FROM threadloom_migrations")]
        assert versions == list(range(len(MIGRATIONS)))
        _check_migrated(saver, expected)


def test_an_existing_postgres_database_gets_its_thread_rows(
    fresh_postgres_database: str,
) -> None:
    import psycopg

    from threadloom.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        _mixed(saver)
        expected = _expected(saver)
    with psycopg.connect(fresh_postgres_database, autocommit=True) as conn:
        for sql in DOWNGRADE:
            conn.execute(sql)
    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        _check_migrated(saver, expected)


def _fill(saver: Any, fresh: int, old: list[str], long_thread: int) -> None:
    """``fresh`` threads of 3 checkpoints an hour old, the ``old`` ones (2 checkpoints,
    3 days old), and one thread of ``long_thread`` checkpoints, the newest of all."""
    for t in range(fresh):
        _put(saver, f"fresh-{t}", hours_ago=1, count=3)
    for thread_id in old:
        _put(saver, thread_id, hours_ago=72, count=2)
    _put(saver, f"long-{long_thread}", hours_ago=0.5, count=long_thread)


def _instructions(conn: sqlite3.Connection, run: Callable[[], Any]) -> tuple[int, Any]:
    """SQLite virtual-machine instructions ``run`` makes ``conn`` execute, and its result."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        result = run()
    finally:
        conn.set_progress_handler(None, 1)
    return count[0], result


def test_sqlite_thread_listing_costs_the_same_on_a_ten_times_bigger_table(
    tmp_path: Path,
) -> None:
    """``list_threads(limit=10)`` and an ``expire_paused`` batch of 5 threads execute
    the same number of instructions over 10x the checkpoints (one thread holding 600 of
    them): their work follows the page, not the table."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "grow.sqlite")) as saver:
        saver.setup()
        costs = []
        for size, (fresh, long_thread) in enumerate([(20, 60), (200, 600)]):
            old = [f"old-{size}-{i}" for i in range(5)]
            _fill(saver, fresh, old, long_thread)
            listed = _instructions(saver.conn, lambda: saver.list_threads(limit=10))
            expired = _instructions(
                saver.conn, lambda: saver.expire_paused(dt.timedelta(days=1), now=NOW)
            )
            assert listed[1][0] == f"long-{long_thread}" and len(listed[1]) == 10
            assert expired[1] == old
            costs.append((listed[0], expired[0]))
        rows = saver.conn.execute("SELECT COUNT(*) FROM threadloom_checkpoints").fetchone()
    assert rows[0] == 200 * 3 + 600 + 20 * 3 + 60  # (the old threads were deleted)
    (small_list, small_expire), (big_list, big_expire) = costs
    assert big_list == small_list, costs
    assert big_expire == small_expire, costs


def _sqlite_plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    """The steps of ``sql``'s query plan (its parameters bound to NULL)."""
    params = (None,) * sql.count("?")
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


def test_sqlite_thread_listing_reads_the_thread_index(tmp_path: Path) -> None:
    """The statements that find the threads read ``threadloom_threads_recent`` in its
    order (covering: no table row, no sort) and never scan the checkpoints table."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    events: list[TraceEvent] = []
    path = str(tmp_path / "plans.sqlite")
    with SqliteSaver.from_conn_string(path, trace=events.append) as saver:
        saver.setup()
        _fill(saver, 30, ["old-a", "old-b"], 100)
        with _statements(events) as listed:
            saver.list_threads(limit=10)
        with _statements(events) as expiring:
            assert saver.expire_paused(dt.timedelta(days=1), now=NOW) == ["old-a", "old-b"]
        finders = [s for s in [*listed, *expiring] if s.startswith(FINDS)]
        assert len(finders) == 2
        for sql in finders:
            plan = _sqlite_plan(saver.conn, sql)
            assert plan and all(
                "USING COVERING INDEX threadloom_threads_recent" in step for step in plan
            ), plan
        for sql in expiring:  # the re-check of each thread: one probe of its index
            plan = _sqlite_plan(saver.conn, sql)
            assert not any("TEMP B-TREE" in s or s.startswith("SCAN ") for s in plan), (sql, plan)


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def test_postgres_thread_listing_reads_the_thread_index(fresh_postgres_database: str) -> None:
    """The same on PostgreSQL, counted in rows: run with ``EXPLAIN ANALYZE``, the
    statements of ``list_threads(limit=10)`` and of an expire batch that finds 2 threads
    read 10 and 2 rows of ``threadloom_threads_recent`` among 300 threads, and no other
    relation."""
    import psycopg

    from threadloom.checkpoint.postgres import PostgresSaver

    events: list[TraceEvent] = []
    with PostgresSaver.from_conn_string(fresh_postgres_database, trace=events.append) as saver:
        saver.setup()
        _fill(saver, 300, ["old-a", "old-b"], 50)
        with _statements(events) as listed:
            assert len(saver.list_threads(limit=10)) == 10
        with _statements(events) as expiring:
            assert saver.expire_paused(dt.timedelta(days=1), now=NOW) == ["old-a", "old-b"]
        _fill(saver, 0, ["old-c", "old-d"], 1)
    cutoff = (NOW - dt.timedelta(days=1)).timestamp()
    (finder,) = [s for s in expiring if s.startswith(FINDS)]
    with psycopg.connect(fresh_postgres_database, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")  # (the index entries of deleted rows go)
        # a table of a few pages is cheaper to read whole than through an index: ask for
        # the plan PostgreSQL picks once the table is large
        conn.execute("SET enable_seqscan = off")
        for sql, params, rows in ((listed[0], (10,), 10), (finder, (cutoff, 200), 2)):
            [(explained,)] = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql.replace("?", "%s"), params
            ).fetchall()
            (plan,) = explained
            nodes = list(_plan_nodes(plan["Plan"]))
            scans = [n for n in nodes if "Index Name" in n]
            assert scans and all(n["Index Name"] == "threadloom_threads_recent" for n in scans)
            assert all(n["Actual Rows"] == rows for n in scans), nodes
            relations = {n["Relation Name"] for n in nodes if "Relation Name" in n}
            assert relations <= {"threadloom_threads"}, nodes
            assert not any(n.get("Rows Removed by Filter") for n in nodes), nodes
