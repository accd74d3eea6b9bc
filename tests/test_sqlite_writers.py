"""SQLite writers take turns through ``<database>-writer.lock`` (``sqlite/_writers.py``):
queued in the kernel rather than sleeping in SQLite's busy handler, in any process."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
import threading
from typing import Any

import pytest

from threadloom.checkpoint.base import empty_checkpoint
from threadloom.checkpoint.base.id import uuid6
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.checkpoint.sqlite._writers import writer_lock_path

PROCESSES = 4
PUTS = 150


def _shared_saver(path: str) -> SqliteSaver:
    """A saver of its own on ``path`` (SQLite's default busy timeout, 5 s: the longest a
    write waits for the writer lock)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    return SqliteSaver(conn)


def _put(saver: SqliteSaver, thread_id: str, step: int, config: dict[str, Any]) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=step))
    version = saver.get_next_version(None, None)
    checkpoint["channel_values"] = {"x": step}
    checkpoint["channel_versions"] = {"x": version}
    metadata = {"source": "loop", "step": step, "parents": {}, "writer": thread_id}
    return saver.put(config, checkpoint, metadata, {"x": version})


def _writer(path: str, name: str, barrier: Any, errors: Any) -> None:
    saver = _shared_saver(path)
    saver.setup()
    config: dict[str, Any] = {"configurable": {"thread_id": name, "checkpoint_ns": ""}}
    barrier.wait()
    try:
        for step in range(PUTS):
            config = _put(saver, name, step, config)
    except Exception as exc:
        errors.put(f"{name}: {type(exc).__name__}: {exc}")
    finally:
        saver.conn.close()


def test_processes_writing_one_file_take_turns_and_lose_nothing(tmp_path: Any) -> None:
    """Four processes put at once on one file: they take turns through the writer lock,
    none is told "database is locked", and every checkpoint of every process is there,
    once. (That a write waits for the lock: the test after this one.)"""
    path = str(tmp_path / "shared.sqlite")
    with SqliteSaver.from_conn_string(path):
        pass  # schema and WAL, before the writers start
    ctx = multiprocessing.get_context("fork")
    barrier, errors = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [
        ctx.Process(target=_writer, args=(path, f"w{i}", barrier, errors))
        for i in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * PROCESSES
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert failures == []
    with SqliteSaver.from_conn_string(path) as saver:
        for i in range(PROCESSES):
            steps = [t.metadata["step"] for t in saver.list(_thread(f"w{i}"))]
            assert sorted(steps) == list(range(PUTS)), f"w{i}"
        rows = saver.conn.execute("SELECT COUNT(*) FROM threadloom_checkpoints").fetchone()
        assert rows[0] == PROCESSES * PUTS


def _thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _hold(path: str) -> int:
    """Take the writer lock of ``path`` as another writer would."""
    fd = os.open(writer_lock_path(path), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_write_waits_for_the_writer_lock_and_goes_on_when_let_go(tmp_path: Any) -> None:
    path = str(tmp_path / "held.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        fd = _hold(path)
        done: list[Any] = []
        writer = threading.Thread(target=lambda: done.append(_put(saver, "t", 0, _thread("t"))))
        try:
            writer.start()
            writer.join(0.5)
            assert writer.is_alive() and done == []  # queued behind the holder
        finally:
            os.close(fd)  # lets go of the lock
        writer.join(10)
        assert not writer.is_alive() and len(done) == 1
        assert saver.get_tuple(_thread("t")) is not None
        # the writer let go in its turn: the lock is free again
        again = os.open(writer_lock_path(path), os.O_RDWR)
        try:
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(again)


def test_a_caller_that_must_not_wait_is_told_at_once(tmp_path: Any) -> None:
    """``may_wait()`` False (the server's calls on its event loop): "database is locked"
    at once while another writer holds the lock - nothing written - then the write goes
    through once it is free."""
    path = str(tmp_path / "loop.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        saver._runner.may_wait = lambda: False
        fd = _hold(path)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                _put(saver, "t", 0, _thread("t"))
        finally:
            os.close(fd)
        assert saver.get_tuple(_thread("t")) is None
        _put(saver, "t", 0, _thread("t"))
        assert saver.get_tuple(_thread("t")) is not None


def test_memory_databases_take_no_writer_lock() -> None:
    with SqliteSaver.from_conn_string(":memory:") as saver:
        _put(saver, "t", 0, _thread("t"))
        assert saver._runner.writers is None


def test_a_hot_read_is_one_statement_without_a_transaction(tmp_path: Any) -> None:
    """``get_tuple`` (a non-atomic read) runs its one statement alone: no BEGIN/COMMIT
    around it, so it holds no read snapshot of the file longer than the statement."""
    with SqliteSaver.from_conn_string(str(tmp_path / "reads.sqlite")) as saver:
        _put(saver, "t", 0, _thread("t"))
        saver.get_tuple(_thread("t"))  # warm: the value cache holds the values
        sent: list[str] = []
        saver.conn.set_trace_callback(sent.append)
        try:
            assert saver.get_tuple(_thread("t")) is not None
        finally:
            saver.conn.set_trace_callback(None)
        assert len(sent) == 1 and sent[0].lstrip().upper().startswith(("SELECT", "WITH"))


def test_a_writer_waits_no_longer_than_its_busy_timeout(tmp_path: Any) -> None:
    """A writer stopped mid-transaction must not hang the others forever: past the
    connection's busy timeout they get "database is locked", as SQLite would answer,
    and nothing is written."""
    path = str(tmp_path / "stuck.sqlite")
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=0.3)
    saver = SqliteSaver(conn)
    saver.setup()
    fd = _hold(path)
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            _put(saver, "t", 0, _thread("t"))
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    try:
        writer.start()
        writer.join(10)  # without a bound the writer would wait for the holder forever
        assert not writer.is_alive()
    finally:
        os.close(fd)
    assert isinstance(outcome[0], sqlite3.OperationalError)
    assert "locked" in str(outcome[0])
    assert saver.get_tuple(_thread("t")) is None
    _put(saver, "t", 0, _thread("t"))  # the lock let go: the write goes through
    assert saver.get_tuple(_thread("t")) is not None
    conn.close()
