"""Fencing for the Postgres savers' runs: a run notices that its run lock is gone.

A run lock (``lock_thread``) is a session-level advisory lock: it lives as long as the
database session that took it. When that session ends while the run goes on
(``pg_terminate_backend``, ``idle_session_timeout``, a dropped connection), the lock
goes with it and another worker may take the thread. So before each write of a run
holding its thread, the saver checks the session that holds the lock (``session_up``,
no round trip). If it ended, the saver takes the lock again on a new session: if it
gets it, nobody else holds the thread and the run goes on (a write another run made
meanwhile still fails the head check); if not, the run stops with ``RunLockLostError``
before writing anything more.

``RunLockHolders`` keeps which session holds which thread, and makes the decisions and
the error; each saver (sync ``PostgresSaver``, asyncio ``AsyncPostgresSaver``) only
does the I/O: check the holder, open a new session, ask for the lock.
"""

from __future__ import annotations

import select
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import pq

from threadloom.errors import RunLockLostError

__all__ = ["RunLockHolders", "connection_up", "lock_lost", "session_up"]

S = TypeVar("S")


def connection_up(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether ``conn`` (sync or async) is open as far as the client knows, no I/O."""
    return not conn.closed and not conn.broken and conn.pgconn.status == pq.ConnStatus.OK


def session_up(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the session of an idle connection is still up, checked without a round
    trip: a session the server ended has left a last message and the end of the stream
    on the socket. Replies already there are kept for whoever reads them next."""
    if not connection_up(conn):
        return False
    pgconn = conn.pgconn
    try:
        for _ in range(4):
            readable, _, _ = select.select([pgconn.socket], [], [], 0)
            if not readable:
                break
            pgconn.consume_input()
    except (OSError, psycopg.Error):
        return False
    return connection_up(conn)


def lock_lost(thread_id: str, why: str) -> RunLockLostError:
    """The error of a run whose run lock went with its session (``why``: what then)."""
    return RunLockLostError(
        f"The run of thread {thread_id!r} lost its run lock: the database session holding "
        f"it ended, and {why}. The run stopped before its next write, so two workers "
        "never write the thread at once; what it saved before is kept. Read the thread "
        "with get_state() and resume it once no other run holds it."
    )


class RunLockHolders(Generic[S]):
    """Thread id -> the session (``S``: whatever the saver's lock connection is) holding
    its run lock, and the lock's key. Used behind the saver's lock mutex."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[S, int]] = {}

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, thread_id: str, session: S, key: int) -> None:
        """``session`` holds ``thread_id``'s run lock (taken, or taken again)."""
        self._held[thread_id] = (session, key)

    def drop(self, thread_id: str) -> None:
        """The run of ``thread_id`` let go of its lock (or lost it)."""
        self._held.pop(thread_id, None)

    def get(self, thread_id: str) -> tuple[S, int] | None:
        """The session holding ``thread_id``'s run lock and the lock's key, if a run of
        this saver holds it (then, before each write: if that session is not the saver's
        current lock session and up, take the lock again and report with ``retaken`` or
        ``failed``)."""
        return self._held.get(thread_id)

    def retaken(self, thread_id: str, session: S, key: int, got: bool) -> None:
        """The lock was asked for again on ``session``: held again, or - another run holds
        it now - raise ``RunLockLostError``."""
        if got:
            self._held[thread_id] = (session, key)
            return
        self.drop(thread_id)
        raise lock_lost(thread_id, "another run holds it now")

    def failed(self, thread_id: str, error: Exception) -> RunLockLostError:
        """The lock could not be asked for again (``error``): the error to raise."""
        self.drop(thread_id)
        return lock_lost(thread_id, f"it could not be taken again: {error}")
