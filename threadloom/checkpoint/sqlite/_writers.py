"""The queue of a SQLite file's writers: an ``flock`` held across each write transaction.

SQLite lets one connection write at a time. A writer that finds the file taken does not
queue: its busy handler sleeps and tries again, sleeping 1, 2, 5, 10, 15, 20, 25 ... up
to 100 ms between attempts. A write transaction of ``SqliteSaver`` lasts a fraction of a
millisecond, so with several processes on one file the lock is mostly free while the
writers that found it taken sleep: the more processes, the more of them asleep, and the
fewer cycles per second the file serves in total.

So before ``BEGIN IMMEDIATE`` every threadloom writer of the file takes an exclusive
``flock`` on ``<database>-writer.lock`` and holds it until ``COMMIT`` (or ``ROLLBACK``).
A writer that finds it taken tries again after 0.1 ms, then 0.2, 0.4 ... at most 2 ms
apart, so the file is idle for at most a couple of milliseconds while writers wait, and
threadloom's writers no longer meet SQLite's busy handler among themselves (it still
applies to other programs writing the same file, which do not take the lock). The
kernel lets go of the lock when its holder's file descriptor closes, even when the
process is killed.

A caller that must not wait (the server's calls on its event loop) asks with
``blocking=False`` and gets "database is locked" at once when another writer holds it,
as SQLite itself answers with a busy timeout of 0.

A writer waits no longer than its connection's busy timeout (``PRAGMA busy_timeout``,
which SQLite would have waited too) and then gets "database is locked": a writer stopped
mid-transaction (a debugger, SIGSTOP) must not hang the others forever. (A blocking ``flock``
would queue in the kernel, but Python cannot bound its wait: hence the short sleeps.)

Local file systems only: ``flock`` over NFS and similar is not reliable.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
import weakref

__all__ = ["WriterLock", "writer_lock_path"]


def writer_lock_path(database: str) -> str:
    """The file whose ``flock`` the writers of ``database`` take."""
    return f"{database}-writer.lock"


class WriterLock:
    """One connection's handle on its database's writer lock (opened on first use)."""

    #: the longest sleep between two tries of a waiting writer
    max_sleep = 0.002

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.path = path
        self.timeout = timeout  # seconds a writer waits before "database is locked"
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
        """Wait for the lock, at most ``timeout`` seconds (then, or at once when
        ``blocking`` is False and another writer holds it, raise
        ``sqlite3.OperationalError`` "database is locked", as SQLite would)."""
        fd = self._descriptor()
        deadline = time.monotonic() + self.timeout if blocking else 0.0
        sleep = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise sqlite3.OperationalError("database is locked") from None
            time.sleep(min(sleep, left))
            sleep = min(sleep * 2, self.max_sleep)

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
