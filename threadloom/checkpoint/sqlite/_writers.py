"""The queue of a SQLite file's writers: an ``flock`` held across each write transaction.

SQLite lets one connection write at a time. A writer that finds the file taken does not
queue: its busy handler sleeps and tries again, sleeping 1, 2, 5, 10, 15, 20, 25 ... up
to 100 ms between attempts. A write transaction of ``SqliteSaver`` lasts a fraction of a
millisecond, so with several processes on one file the lock is mostly free while the
writers that found it taken sleep: the more processes, the more of them asleep, and the
fewer cycles per second the file serves in total.

So before ``BEGIN IMMEDIATE`` every threadloom writer of the file takes an exclusive
``flock`` on ``<database>-writer.lock`` and holds it until ``COMMIT`` (or ``ROLLBACK``).
Waiting for an ``flock`` is a queue in the kernel: the next writer wakes the moment the
lock is let go, so the file is never idle while a writer waits, and threadloom's writers
no longer meet SQLite's busy handler among themselves (it still applies to other
programs writing the same file, which do not take the lock). The kernel lets go of the
lock when its holder's file descriptor closes, even when the process is killed.

A caller that must not wait (the server's calls on its event loop) asks with
``blocking=False`` and gets "database is locked" at once when another writer holds it,
as SQLite itself answers with a busy timeout of 0.

Local file systems only: ``flock`` over NFS and similar is not reliable.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref

__all__ = ["WriterLock", "writer_lock_path"]


def writer_lock_path(database: str) -> str:
    """The file whose ``flock`` the writers of ``database`` take."""
    return f"{database}-writer.lock"


class WriterLock:
    """One connection's handle on its database's writer lock (opened on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._opening = threading.Lock()

    def _descriptor(self) -> int:
        if self._fd is None:
            with self._opening:
                if self._fd is None:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                    weakref.finalize(self, os.close, fd)  # closed with its saver
                    self._fd = fd
        return self._fd

    def acquire(self, *, blocking: bool = True) -> None:
        """Wait for the lock (raise ``sqlite3.OperationalError`` "database is locked" at
        once when ``blocking`` is False and another writer holds it)."""
        fd = self._descriptor()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not blocking:
                raise sqlite3.OperationalError("database is locked") from None
            fcntl.flock(fd, fcntl.LOCK_EX)  # queued in the kernel: woken when let go

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
