"""Run locks for ``SqliteSaver``: one lock per thread id, held by the kernel for a run.

On 64-bit Linux a run takes an open-file-description lock (``F_OFD_SETLK``) on one byte
of ``<database>-runs.lock``: the byte at an offset made from the thread id's SHA-256 (60
bits, so two thread ids share a byte with odds of 1 in 2^60 per pair). Taking and
dropping it are one ``fcntl`` call each: no file is created or removed per run, which on
a journaling file system cost more than the rest of a short run's locking. The file is
made once and stays, next to the database's ``-wal`` and ``-shm`` files.

The kernel drops the lock when the holder's file description closes - including when its
process dies (even by SIGKILL) - so a crash never leaves a thread held. Each ``RunLocks``
(one per saver) opens its own description, so two savers on one file exclude each other
even in one process; within one saver the saver's own guard excludes a second run (an
OFD lock taken twice through one description would be granted twice). A forked child
opens a description of its own before it takes a lock, since it shares its parent's.

Elsewhere (no ``F_OFD_SETLK``, or a kernel that refuses it) each thread id has its own
file, ``<database>-locks/<sha256(thread_id)[:32]>.lock``, locked with
``flock(LOCK_EX | LOCK_NB)`` and removed by its holder on release, while still locked; a
process that opened the file before the removal and locks it afterwards sees that the
path no longer names the file it holds and starts over, so two holders can never hold two
different files for one thread.

Local file systems only: file locks over NFS and similar are not reliable. Processes of a
threadloom release that locked files per thread id do not see these locks: stop them
before starting a newer one on the same database.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct
import threading
import weakref
from collections.abc import Callable

__all__ = ["RunLocks"]

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
# struct flock on 64-bit Linux: l_type, l_whence (short), l_start, l_len (off_t), l_pid
_FLOCK = "hhqqi4x"
_OFD = _OFD_SETLK is not None and struct.calcsize(_FLOCK) == 32 and struct.calcsize("l") == 8


def _digest(thread_id: str) -> str:
    return hashlib.sha256(str(thread_id).encode("utf-8")).hexdigest()


class RunLocks:
    """The run locks of one database file, as one saver takes them."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._byte_ranges = _OFD
        self._fd: int | None = None
        self._pid = 0
        self._opening = threading.Lock()

    @property
    def path(self) -> str:
        """The lock file (byte-range locks) or folder of lock files (one per thread)."""
        return f"{self.database}-runs.lock" if self._byte_ranges else f"{self.database}-locks"

    def acquire(self, thread_id: str, busy: Callable[[], Exception]) -> int | tuple[str, int]:
        """Lock ``thread_id``; a token for ``release``. Raises ``busy()`` when another
        holder has it. Never blocks."""
        if self._byte_ranges:
            offset = int(_digest(thread_id)[:15], 16)
            try:
                self._set(offset, fcntl.F_WRLCK)
            except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: held elsewhere
                raise busy() from None
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self._byte_ranges = False  # a kernel without OFD locks (before 3.15)
            else:
                return offset
        path = os.path.join(self.path, f"{_digest(thread_id)[:32]}.lock")
        return path, _acquire_file(path, busy)

    def release(self, token: int | tuple[str, int]) -> None:
        """Let go of the lock ``acquire`` returned ``token`` for (a byte offset, or a
        lock file's path and descriptor)."""
        if isinstance(token, int):
            self._set(token, fcntl.F_UNLCK)
        else:
            _release_file(*token)

    def _set(self, offset: int, kind: int) -> None:
        assert _OFD_SETLK is not None
        fcntl.fcntl(self._descriptor(), _OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET,
                                                                offset, 1, 0))

    def _descriptor(self) -> int:
        pid = os.getpid()
        if self._fd is None or self._pid != pid:
            with self._opening:
                if self._fd is None or self._pid != pid:
                    fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
                    weakref.finalize(self, os.close, fd)  # closed with its saver
                    self._fd, self._pid = fd, pid
        return self._fd


def _acquire_file(path: str, busy: Callable[[], Exception]) -> int:
    """Lock the file ``path`` (creating it and its folder); the descriptor holding it."""
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


def _release_file(path: str, fd: int) -> None:
    """Remove the lock file (still holding it), then let go."""
    try:
        os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)
