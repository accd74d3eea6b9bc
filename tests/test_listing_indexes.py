"""Listing stays O(page): the v3 indexes exist (also on databases made before them), and
the statements of ``list`` walk an index in their order instead of sorting the table.

Plans are read with ``EXPLAIN QUERY PLAN`` on the very statements ``list`` runs (caught
with SQLite's trace callback), so no timing is involved.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from threadloom.checkpoint.base import create_checkpoint_id, empty_checkpoint

INDEXES = {
    "threadloom_checkpoints_listed",
    "threadloom_checkpoints_thread_listed",
}
DROPPED = "threadloom_checkpoints_recent"  # made by v3, dropped by v4 (threadloom_threads)


def _fill(saver: Any, threads: int, per_thread: int, *, in_lists: bool = False) -> None:
    """``in_lists``: each value in a list of its own, so that it is stored in the value
    table (ints ride in the checkpoint's row, see ``_stored.inline``)."""
    for t in range(threads):
        config: dict[str, Any] = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        version = None
        for step in range(per_thread):
            checkpoint = empty_checkpoint()
            checkpoint["id"] = create_checkpoint_id()
            version = saver.get_next_version(version, None)
            value = t * 100 + step
            checkpoint["channel_values"] = {"x": [value] if in_lists else value}
            checkpoint["channel_versions"] = {"x": version}
            config = saver.put(config, checkpoint, {"step": step}, {"x": version})


def _sqlite_indexes(path: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
    return {r[0] for r in rows}


def test_an_existing_sqlite_database_gains_the_listing_indexes(tmp_path: Path) -> None:
    from threadloom.checkpoint.sqlite import MIGRATIONS, SqliteSaver

    path = str(tmp_path / "old.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        _fill(saver, 3, 2)
    # make it a database of schema v2, as written before the indexes existed
    with sqlite3.connect(path) as conn:
        for name in INDEXES:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("DELETE FROM threadloom_migrations WHERE v >= 3")
    assert not INDEXES & _sqlite_indexes(path)
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        versions = [r[0] for r in saver.conn.execute("SELECT v FROM threadloom_migrations")]
        listed = [t.checkpoint["channel_values"]["x"] for t in saver.list(None)]
    assert versions == list(range(len(MIGRATIONS)))
    assert INDEXES <= _sqlite_indexes(path) and DROPPED not in _sqlite_indexes(path)
    assert sorted(listed) == sorted(t * 100 + s for t in range(3) for s in range(2))


@pytest.mark.parametrize(
    "config",
    [None, {"configurable": {"thread_id": "t7"}}],
    ids=["all-threads", "one-thread"],
)
def test_sqlite_list_pages_walk_an_index(tmp_path: Path, config: Any) -> None:
    """Every page of ``list`` (over all threads, or one thread's namespaces) reads rows
    in index order: no temporary B-tree sorts the table for ORDER BY."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    path = str(tmp_path / "many.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        _fill(saver, 60, 4)  # 240 checkpoints: three pages over all threads (100, 100, 40)
        statements: list[str] = []
        saver.conn.set_trace_callback(statements.append)
        try:
            listed = list(saver.list(config))
        finally:
            saver.conn.set_trace_callback(None)
        # each page: its rows, then the pending writes of the page's range of keys
        pages = [s for s in statements if s.startswith("SELECT thread_id, checkpoint_ns, ")]
        writes = [s for s in statements if s.startswith("WITH c AS (SELECT thread_id")]
        assert len(pages) == len(writes) == (3 if config is None else 1)
        for sql in pages:
            plan = saver.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            steps = [row[3] for row in plan]
            assert any("USING INDEX threadloom_checkpoints_" in s for s in steps), plan
            assert not any("TEMP B-TREE" in s for s in steps), plan
        for sql in writes:
            plan = saver.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
            steps = [row[3] for row in plan]
            # the page's keys: a range of a listing index, read off the index itself and
            # joined as they come (neither kept in a table of their own nor sorted; the
            # only sort is the writes' order)
            reads = [s for s in steps if s.startswith("SEARCH threadloom_checkpoints ")]
            assert len(reads) == 1, plan
            assert "USING COVERING INDEX threadloom_checkpoints_" in reads[0], plan
            assert not any("MATERIALIZE" in s for s in steps), plan
            assert [s for s in steps if "TEMP B-TREE" in s] == ["USE TEMP B-TREE FOR ORDER BY"]
    ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == (240 if config is None else 4)


def test_postgres_setup_creates_the_listing_indexes(fresh_postgres_database: str) -> None:
    import psycopg

    from threadloom.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(fresh_postgres_database) as saver:
        saver.setup()
        _fill(saver, 30, 4)
        listed = list(saver.list(None))
        one = list(saver.list({"configurable": {"thread_id": "t3"}}))
    with psycopg.connect(fresh_postgres_database) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert INDEXES <= names and DROPPED not in names
    ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
    assert ids == sorted(ids, reverse=True) and len(ids) == 120
    assert [t.checkpoint["channel_values"]["x"] for t in one] == [303, 302, 301, 300]


def test_sqlite_list_reads_a_long_listing_in_pages_of_100(tmp_path: Path) -> None:
    """On SQLite every page of a listing holds 100 rows (no round trip to save in-process;
    see ``test_sqlite_listing_read_through_runs_no_collection``): 2,300 checkpoints take
    24 queries (the last finds the end), and ``limit=10`` reads 10."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    path = str(tmp_path / "long.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        _fill(saver, 1150, 2)
        statements: list[str] = []
        saver.conn.set_trace_callback(statements.append)
        try:
            ids = [t.config["configurable"]["checkpoint_id"] for t in saver.list(None)]
            first = list(saver.list(None, limit=10))
        finally:
            saver.conn.set_trace_callback(None)
    pages = [s for s in statements if s.startswith("SELECT thread_id, checkpoint_ns, ")]
    assert len(pages) == 24 + 1  # 23 full pages, the one that finds the end, limit=10
    assert pages[-1].endswith("LIMIT 10") and all(p.endswith("LIMIT 100") for p in pages[:-1])
    assert len(ids) == len(set(ids)) == 2300 and ids == sorted(ids, reverse=True)
    assert [t.config["configurable"]["checkpoint_id"] for t in first] == ids[:10]


def test_sqlite_list_makes_tuples_as_they_are_consumed(tmp_path: Path) -> None:
    """A page's tuples are made as the listing is iterated: the rows before a damaged
    metadata column come out, and the damaged row raises, naming itself, when reached."""
    from threadloom.checkpoint.serde.base import CorruptCheckpointError
    from threadloom.checkpoint.sqlite import SqliteSaver

    path = str(tmp_path / "damaged.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver.setup()
        _fill(saver, 3, 1)  # t2 is the newest, t0 the oldest
        saver.conn.execute(
            "UPDATE threadloom_checkpoints SET metadata = '{not json' WHERE thread_id = 't0'"
        )
        saver.conn.commit()
        saver.clear_cache()
        listed = saver.list(None)
        got = [next(listed).checkpoint["channel_values"]["x"] for _ in range(2)]
        assert got == [200, 100]
        with pytest.raises(CorruptCheckpointError, match="'t0'.*not valid JSON"):
            next(listed)


def test_sqlite_list_decodes_a_page_in_one_call_as_each_row_alone(tmp_path: Path) -> None:
    """A page's checkpoint rows are decoded in one call (``payloads_loader``): each
    listed tuple is the one its own read gives, shared and sealed-free rows alike."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "page.sqlite")) as saver:
        saver.setup()
        _fill(saver, 40, 3)
        listed = list(saver.list(None))
        saver.clear_cache()
        alone = [saver.get_tuple(t.config) for t in listed]
    assert len(listed) == 120
    assert [(t.config, t.checkpoint, t.metadata, t.parent_config) for t in listed] == [
        (t.config, t.checkpoint, t.metadata, t.parent_config) for t in alone if t
    ]


def test_sqlite_list_refuses_damage_to_one_row_undone_by_damage_to_the_next(
    tmp_path: Path,
) -> None:
    """Damage that the page's one-call decoding cannot see - a row with another
    checkpoint's bytes appended, the next row emptied, so the page decodes to as many
    checkpoints as it has rows - is found by their ids: the rows are decoded one by one
    and the damaged row raises, naming itself (before, the emptied row was handed the
    appended checkpoint)."""
    from threadloom.checkpoint.serde.base import CorruptCheckpointError
    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "shifted.sqlite")) as saver:
        saver.setup()
        _fill(saver, 3, 1)  # t2 is the newest, t0 the oldest: listed t2, t1, t0
        blobs = dict(saver.conn.execute("SELECT thread_id, checkpoint FROM threadloom_checkpoints"))
        saver.conn.execute(
            "UPDATE threadloom_checkpoints SET checkpoint = ? WHERE thread_id = 't2'",
            (blobs["t2"] + blobs["t0"],),
        )
        saver.conn.execute(
            "UPDATE threadloom_checkpoints SET checkpoint = ? WHERE thread_id = 't1'", (b"",)
        )
        saver.conn.commit()
        saver.clear_cache()
        with pytest.raises(CorruptCheckpointError, match="'t2'"):
            list(saver.list(None))


def test_the_fast_shape_check_agrees_with_the_checked_one() -> None:
    """``shaped_value_keys`` (the listing's quick check) passes only checkpoints that
    ``check_checkpoint`` passes, adding their value keys; a damaged shape adds none and
    takes the path that names it."""
    from threadloom.checkpoint._stored.shape import check_checkpoint, shaped_value_keys
    from threadloom.checkpoint.serde.base import CorruptCheckpointError

    good = {
        "v": 4, "id": "1", "ts": "now", "channel_values": {},
        "channel_versions": {"a": "00.1", "b": 2, "c": 3.0},
        "versions_seen": {"n": {"a": "00.1"}, "m": {}},
        "updated_channels": ["a"],
    }
    damaged = [
        {**good, "channel_versions": ["a"]},
        {**good, "channel_versions": {"a": None}},
        {**good, "channel_versions": {"a": True}},
        {**good, "channel_versions": {1: "v"}},
        {**good, "channel_versions": {"a": "00.1", "b": None}},
        {k: v for k, v in good.items() if k != "channel_versions"},
        {**good, "versions_seen": {"n": {"a": b"x"}}},
        {**good, "versions_seen": {"n": ["a"]}},
        {**good, "versions_seen": {"n": {1: "00.1"}}},
        {**good, "versions_seen": {"n": {"a": "00.1"}, "m": {"b": None}}},
        {**good, "versions_seen": {None: {}}},
        {**good, "versions_seen": []},
        {**good, "id": 7},
        {**good, "ts": None},
        {**good, "updated_channels": "a"},
        {**good, "updated_channels": ["a", 1]},
        {**good, "channel_values": ["a"]},
        {**good, "channel_values": {1: "x"}},
        ["not", "a", "checkpoint"],
    ]
    keys: list[object] = ["before"]
    assert shaped_value_keys(good, "t", "", keys)
    assert keys == ["before", ("t", "", "a", "00.1"), ("t", "", "b", "2"), ("t", "", "c", "3.0")]
    assert shaped_value_keys({**good, "updated_channels": None}, "t", "ns", keys)
    assert len(keys) == 7
    # a value the row carries is not looked up by key (``_stored.inline``)
    assert shaped_value_keys({**good, "channel_values": {"b": 2}}, "u", "", keys)
    assert keys[7:] == [("u", "", "a", "00.1"), ("u", "", "c", "3.0")]
    del keys[7:]
    check_checkpoint(good, "here")
    for checkpoint in damaged:
        assert not shaped_value_keys(checkpoint, "t", "", keys), checkpoint
        assert len(keys) == 7, checkpoint
        with pytest.raises(CorruptCheckpointError):
            check_checkpoint(checkpoint, "here")


def test_the_one_pass_decoder_agrees_with_the_checked_path() -> None:
    """``shaped_checkpoints`` (a page decoded and shape-checked by ``msgspec`` in one
    pass) hands out a checkpoint only where decoding it alone gives the same value and
    the shape check passes it; anything else - damage, a key it does not name, a value
    the serializer decodes its own way (``bin``, an ``ext``) - makes it refuse the page,
    which is then decoded as before."""
    import msgpack

    from threadloom.checkpoint._stored.shape import shaped_checkpoints, shaped_value_keys

    good = {
        "v": 4, "id": "1", "ts": "now", "channel_values": {"n": None, "t": True, "s": "x"},
        "channel_versions": {"a": "00.1", "b": 2, "c": 3.0},
        "versions_seen": {"n": {"a": "00.1"}, "m": {}},
        "updated_channels": ["a"],
    }  # fmt: skip
    passing = [
        good,
        {**good, "updated_channels": None},
        {k: v for k, v in good.items() if k not in ("v", "ts", "versions_seen")},
        {**good, "channel_values": {"i": -(2**63), "u": 2**64 - 1, "f": 1.5}},
    ]
    refused = [
        {**good, "channel_versions": {"a": True}},
        {**good, "channel_versions": {1: "v"}},
        {k: v for k, v in good.items() if k != "channel_versions"},
        {**good, "versions_seen": {"n": {"a": b"x"}}},
        {**good, "id": 7},
        {**good, "v": "4"},
        {**good, "updated_channels": "a"},
        {**good, "channel_values": ["a"]},
        {**good, "channel_values": {"x": b"bytes"}},  # bin: the serializer's own
        {**good, "channel_values": {"x": msgpack.ExtType(5, b"\x01")}},
        {**good, "channel_values": {"x": [1]}},
        {**good, "pending_sends": []},  # a key the decoder would drop
        {**good, "extra": 1},
        ["not", "a", "checkpoint"],
    ]
    for checkpoint in passing:
        payload = msgpack.packb(checkpoint)
        [item] = shaped_checkpoints([payload]) or [None]
        assert item == msgpack.unpackb(payload, strict_map_key=False), checkpoint
        assert list(item) == list(checkpoint)  # the keys in their order
        assert shaped_value_keys(item, "t", "", [])
    for checkpoint in refused:
        payloads = [msgpack.packb(good), msgpack.packb(checkpoint)]
        assert shaped_checkpoints(payloads) is None, checkpoint
    # payloads not decoded each to its last byte: a row shifted into the next
    one = msgpack.packb(good)
    assert shaped_checkpoints([one + b"\x00"]) is None
    assert shaped_checkpoints([one[:-1]]) is None
    assert shaped_checkpoints([one + one, b""]) is None
    assert shaped_checkpoints([one, one]) == [msgpack.unpackb(one)] * 2


def test_sqlite_list_keeps_what_the_one_pass_decoder_refuses(tmp_path: Path) -> None:
    """Checkpoints with keys of their own, and a row carrying a value the serializer
    decodes its own way, list and read back whole: the page is decoded as before."""
    import msgpack

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "keys.sqlite")) as saver:
        saver.setup()
        config: dict[str, Any] = {"configurable": {"thread_id": "own", "checkpoint_ns": ""}}
        for step in range(2):
            checkpoint: Any = empty_checkpoint()
            checkpoint["id"] = create_checkpoint_id()
            checkpoint["pending_sends"] = [step]
            checkpoint["channel_values"] = {"x": step}
            checkpoint["channel_versions"] = {"x": saver.get_next_version(None, None)}
            config = saver.put(config, checkpoint, {}, {"x": checkpoint["channel_versions"]["x"]})
        _fill(saver, 2, 2)
        listed = {t.checkpoint["id"]: t.checkpoint for t in saver.list(None)}
        assert [c["pending_sends"] for c in listed.values() if "pending_sends" in c] == [[1], [0]]
        # a row whose payload carries bytes among its values (as a serializer's ``bin``)
        [(cp_id, blob)] = saver.conn.execute(
            "SELECT checkpoint_id, checkpoint FROM threadloom_checkpoints "
            "WHERE thread_id = 't1' ORDER BY checkpoint_id DESC LIMIT 1"
        ).fetchall()
        payload = msgpack.unpackb(blob)
        payload["channel_values"]["y"] = b"raw"
        payload["channel_versions"]["y"] = payload["channel_versions"]["x"]
        saver.conn.execute(
            "UPDATE threadloom_checkpoints SET checkpoint = ? WHERE checkpoint_id = ?",
            (msgpack.packb(payload), cp_id),
        )
        saver.conn.commit()
        saver.clear_cache()
        listed = {t.checkpoint["id"]: t.checkpoint for t in saver.list(None)}
        assert listed[cp_id]["channel_values"] == {"x": 101, "y": b"raw"}
        assert len(listed) == 6


def test_sqlite_list_decodes_through_a_serializer_that_decodes_otherwise(
    tmp_path: Path,
) -> None:
    """A listing decodes msgpack rows with the serializer's ``payload_loader``; a
    subclass that overrides ``loads_typed`` has none, and every row and value of the
    listing goes through its ``loads_typed``."""
    from threadloom.checkpoint.serde.msgpack import MsgpackSerializer
    from threadloom.checkpoint.sqlite import SqliteSaver

    class Counting(MsgpackSerializer):
        loads = 0

        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            Counting.loads += 1
            return super().loads_typed(data)

    with SqliteSaver.from_conn_string(str(tmp_path / "c.sqlite")) as plain:
        plain.setup()
        _fill(plain, 3, 2, in_lists=True)
    conn = sqlite3.connect(str(tmp_path / "c.sqlite"), check_same_thread=False)
    try:
        saver = SqliteSaver(conn, serde=Counting())
        Counting.loads = 0
        listed = list(saver.list(None))
    finally:
        conn.close()
    assert sorted(t.checkpoint["channel_values"]["x"] for t in listed) == [
        [0], [1], [100], [101], [200], [201]
    ]  # fmt: skip
    assert Counting.loads == 12  # six checkpoint rows and their six values


def test_sqlite_list_reads_metadata_orjson_refuses(tmp_path: Path) -> None:
    """Metadata JSON that orjson refuses but ``json`` reads (integers past 64 bits) is
    listed as stored: such a row takes the checked path."""
    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "m.sqlite")) as saver:
        saver.setup()
        config: dict[str, Any] = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        for step, n in enumerate([2**70, -(2**80), 1]):
            checkpoint = empty_checkpoint()
            checkpoint["id"] = create_checkpoint_id()
            config = saver.put(config, checkpoint, {"step": step, "n": n}, {})
        listed = [t.metadata for t in saver.list(None)]
    assert listed == [{"step": 2, "n": 1}, {"step": 1, "n": -(2**80)}, {"step": 0, "n": 2**70}]


def test_sqlite_list_page_keeps_few_collected_objects_per_row(tmp_path: Path) -> None:
    """A page read and not yet handed out keeps, per row, its row, its decoded checkpoint
    (three dicts here) and its value key - no per-row containers of its own: objects the
    garbage collector counts and that stay alive across a page are walked and promoted
    by its passes (a listing read through with them ran full collections of the heap)."""
    import gc

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "gc.sqlite")) as saver:
        saver.setup()
        _fill(saver, 100, 3)  # the first page: 100 rows of one channel each
        list(saver.list(None))  # warm: the statements are prepared and cached
        counts = []
        # the count is the process's: another thread allocating meanwhile (a server an
        # earlier test left winding down) adds to it - the least of a few reads is the
        # page's own
        for _ in range(5):
            gc.collect()
            gc.disable()
            try:
                before = gc.get_count()[0]  # allocations less deallocations since the pass
                listed = saver.list(None)
                next(listed)  # the first page is read
                counts.append((gc.get_count()[0] - before) / 100)
                listed.close()
            finally:
                gc.enable()
    per_row = min(counts)
    assert per_row <= 6, counts


def test_sqlite_listing_read_through_runs_no_collection(tmp_path: Path) -> None:
    """On SQLite every page holds 100 rows (no round trip to save): what a page keeps
    alive until it is handed out stays under the collector's young-generation threshold,
    so a listing read through runs no collections of its own (pages of 1,000 ran about
    one per 200 rows, each promoting the page, and so, now and then, a full collection of
    the whole heap)."""
    import gc

    from threadloom.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(tmp_path / "pages.sqlite")) as saver:
        saver.setup()
        _fill(saver, 400, 3)
        list(saver.list(None))  # warm: the statements are prepared and cached
        passes: list[dict[str, int]] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                passes.append(info)

        thresholds = gc.get_threshold()
        gc.set_threshold(700, 10, 10)  # the interpreter's defaults
        gc.callbacks.append(count)
        try:
            gc.collect()
            passes.clear()
            listed = sum(1 for _ in saver.list(None))
        finally:
            gc.callbacks.remove(count)
            gc.set_threshold(*thresholds)
    assert listed == 1200
    assert len(passes) <= 1, passes


def test_async_sqlite_listing_hops_to_a_thread_per_page(tmp_path: Path) -> None:
    """``AsyncSqliteSaver.alist`` runs each page's query and decoding in a worker thread,
    one hop a page, and makes the page's tuples on the loop (a hop per row cost ~50 us a
    row, eight times the listing itself)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from threadloom.checkpoint.sqlite.aio import AsyncSqliteSaver

    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            Counting.submitted += 1
            return super().submit(fn, *args, **kwargs)

    async def run() -> tuple[list[Any], list[Any], int]:
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "a.sqlite")) as saver:
            _fill(saver, 125, 2)
            executor = Counting(max_workers=1)
            asyncio.get_running_loop().set_default_executor(executor)
            Counting.submitted = 0
            listed = [t async for t in saver.alist(None)]
            hops = Counting.submitted
            return listed, list(saver.list(None)), hops

    listed, synced, hops = asyncio.run(run())
    assert hops == 3  # pages of 100, 100 and 50
    assert [t.config for t in listed] == [t.config for t in synced] and len(listed) == 250
    assert [t.checkpoint["channel_values"] for t in listed][:2] == [{"x": 12401}, {"x": 12400}]
