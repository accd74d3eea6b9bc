"""Run locks for ``SqliteSaver``: one ``flock`` per thread id, on a file next to the database.

``<database>-locks/<sha256(thread_id)[:32]>.lock`` is locked with
``flock(LOCK_EX | LOCK_NB)`` for as long as a run holds the thread. The kernel drops the
lock when the holder's file descriptor closes - including when its process dies (even by
SIGKILL) - so a crash never leaves a thread held. ``flock`` locks belong to the open file,
so two runs in one process exclude each other too.

A lock file is removed by its holder on release, while still locked; a process that
opened the file before the removal and locks it afterwards sees that the path no longer
names the file it holds and starts over, so two holders can never hold two different
files for one thread. Lock files left by a killed process are reused, then removed.

Local file systems only: ``flock`` over NFS and similar is not reliable.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable

__all__ = ["acquire", "lock_dir_for", "lock_path", "release"]


def lock_dir_for(database: str) -> str:
    return f"{database}-locks"


def lock_path(lock_dir: str, thread_id: str) -> str:
    digest = hashlib.sha256(str(thread_id).encode("utf-8")).hexdigest()[:32]
    return os.path.join(lock_dir, f"{digest}.lock")


def acquire(path: str, busy: Callable[[], Exception]) -> int:
    """Lock ``path`` (creating it and its folder); the open descriptor holding the lock.

    Raises ``busy()`` when another holder has it. Never blocks.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:  # the first lock of this database: make the folder
            os.makedirs(os.path.dirname(path), exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise busy() from None
        except BaseException:
            os.close(fd)
            raise
        try:
            named = os.stat(path)
        except FileNotFoundError:
            named = None
        held = os.fstat(fd)
        if named is not None and (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # the previous holder removed this file after we opened it: retry


def release(path: str, fd: int) -> None:
    """Remove the lock file (still holding it), then let go."""
    try:
        os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)
