"""Public saver methods on top of ``core.SqlCore``, for sync and async database drivers.

A backend supplies only how to run one operation: ``_run(op)`` for a blocking connection
(``SyncSqlSaver``), ``_arun(op)`` for an asyncio one (``AsyncSqlSaver``). With
``atomic=True`` (the default) the whole operation is one transaction; the hot-path
operations pass ``atomic=False``: each of their steps is self-contained, so a driver may
run each statement or batch as its own atomic unit, in one round trip. Everything else -
the checkpoint API, housekeeping, paging, the version scheme, the value cache - lives
here once.
"""

from __future__ import annotations

import asyncio
import builtins
import random
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar, Literal, TypeVar

from threadloom.checkpoint._sql import audit as _sqlaudit
from threadloom.checkpoint._sql.core import SqlCore
from threadloom.checkpoint._sql.read import ListedPage
from threadloom.checkpoint._sql.statements import (
    Batch,
    Dialect,
    Op,
    Query,
    page_size,
    resumed,
)
from threadloom.checkpoint._sql.write import PreparedPut
from threadloom.checkpoint._stored.records import (
    expiry_cutoff,
    thread_and_ns,
    validate_filter,
)
from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.delta import DeltaCache, serde_fingerprint
from threadloom.checkpoint.base import (
    AuditRecord,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    audit_keep_last,
    prune_plan,
)
from threadloom.checkpoint.serde.place import binds
from threadloom.checkpoint.trace import Trace
from threadloom.constants import CONFIG_KEY_BRANCH, CONFIG_KEY_DURABILITY
from threadloom.errors import CheckpointConflictError

__all__ = [
    "DURABILITIES",
    "AsyncSqlSaver",
    "Durability",
    "RunGuard",
    "SqlSaver",
    "SyncSqlSaver",
    "checked_durability",
    "thread_busy_error",
]

T = TypeVar("T")
_Keyset = tuple[str, str, str]

Durability = Literal["normal", "full"]
DURABILITIES = ("normal", "full")


def checked_durability(durability: str, normal: str) -> Durability:
    """A saver's ``durability`` argument, or a ``ValueError`` saying what each value
    means (``normal``: what "normal" means on that database)."""
    if durability == "normal":
        return "normal"
    if durability == "full":
        return "full"
    raise ValueError(
        f"durability must be 'normal' ({normal}) or 'full' (every commit flushed to "
        f"disk before it returns), got {durability!r}"
    )


def thread_busy_error(thread_id: str) -> Exception:
    """What ``lock_thread`` raises when another run holds the thread."""
    return CheckpointConflictError(
        f"Thread {thread_id!r} is being run by another process or run right now (it holds "
        "the thread's run lock, e.g. a second resume of the same pause). Nothing was run or "
        "written by this one. Retry once that run has finished, or read the thread with "
        "get_state() to see where it stands and decide again."
    )


class RunGuard:
    """The thread ids this saver is running in this process (a non-blocking set lock).

    It also remembers which held threads had writes committed *relaxed* - without
    waiting for the disk, as a run with durability="async" allows (``relax``). Whoever
    releases the run lock asks ``unflushed`` and, if so, makes everything durable before
    the run returns (on Postgres one synchronous commit flushes all earlier WAL), so a
    caller never sees a pause or result that a crash of the database could lose.
    """

    def __init__(self) -> None:
        self._held: set[str] = set()
        self._unflushed: set[str] = set()
        self._lock = threading.Lock()

    def relax(self, config: dict[str, Any], dialect: Dialect) -> bool:
        """Whether a write with this config may commit relaxed (and note that it did)."""
        conf = config.get("configurable") or {}
        if dialect.relaxed_commit is None or conf.get(CONFIG_KEY_DURABILITY) != "async":
            return False
        thread_id = str(conf.get("thread_id"))
        with self._lock:
            if thread_id not in self._held:  # no run lock to make it durable at the end
                return False
            self._unflushed.add(thread_id)
            return True

    def holds(self, config: dict[str, Any]) -> bool:
        """Whether this saver holds the run lock of the thread ``config`` names."""
        thread_id = (config.get("configurable") or {}).get("thread_id")
        with self._lock:
            return thread_id is not None and str(thread_id) in self._held

    def alone(self, thread_id: str) -> bool:
        """Whether ``thread_id`` is the only thread this saver holds (or none is)."""
        with self._lock:
            return self._held <= {thread_id}

    def unflushed(self, thread_id: str) -> bool:
        """Whether the run of ``thread_id`` committed relaxed writes (clears the mark)."""
        with self._lock:
            if thread_id in self._unflushed:
                self._unflushed.discard(thread_id)
                return True
            return False

    def take(self, thread_id: str) -> None:
        with self._lock:
            if thread_id in self._held:
                raise thread_busy_error(thread_id)
            self._held.add(thread_id)

    def drop(self, thread_id: str) -> None:
        with self._lock:
            self._held.discard(thread_id)
            self._unflushed.discard(thread_id)

    @contextmanager
    def hold(self, thread_id: str) -> Iterator[None]:
        self.take(thread_id)
        try:
            yield
        finally:
            self.drop(thread_id)


def _sent_ahead(core: SqlCore, prepared: PreparedPut) -> dict[str, Any]:
    """A put sent ahead: optimistic, the caches learn the write now (a failed one clears
    them); the config of the checkpoint it stores."""
    prepared.stored = prepared.blobs
    core.remember_put(prepared)
    return prepared.config()


def _next_page(page: ListedPage, size: int) -> _Keyset | None:
    """Keyset of the last row, or None when this page was the last one."""
    if len(page) < size:
        return None
    return page.keyset()


def _page_ops(
    core: SqlCore,
    config: dict[str, Any] | None,
    filter: dict[str, Any],
    before: dict[str, Any] | None,
    limit: int | None,
) -> _PageOps:
    """The ops reading a listing's pages (``page_size``; the lock is not held between),
    one at a time: the caller runs each and sends its page back for the next."""
    after: _Keyset | None = None
    remaining = limit
    while remaining is None or remaining > 0:
        size = page_size(after is None, remaining, core.d.long_page)
        page = yield core.list_page(config, filter, before, size, after)
        if remaining is not None:
            remaining -= len(page)
        after = _next_page(page, size)
        if after is None:
            return


_PageOps = Generator[Op[ListedPage], ListedPage, None]


def _send(ops: _PageOps, page: ListedPage) -> Op[ListedPage] | None:
    """``_page_ops``'s next op after ``page``, or None after the last page."""
    try:
        return ops.send(page)
    except StopIteration:
        return None


class SqlSaver(BaseCheckpointSaver[str]):
    """Common state of the SQL savers: the dialect, the caches and the core.

    ``value_cache`` (a ``threadloom.checkpoint._values.cache.ValueCache``) keeps the channel
    values this saver stored or read, so reading a long thread again neither fetches nor
    walks its delta chains; every read gets values of its own (changing a message read
    from a checkpoint in place changes nothing stored). Bounded (64 MiB by default; set
    ``saver.value_cache.max_bytes``, 0 disables it); ``clear_cache()`` empties it.
    """

    dialect: ClassVar[Dialect]
    #: "full": every commit is flushed to disk before it returns, even within a run with
    #: durability="async" (see the savers' modules for what "normal" allows)
    durability: Durability = "normal"

    def __init__(
        self, *, serde: SerializerProtocol | None = None, trace: Trace | None = None
    ) -> None:
        super().__init__(serde=serde)  # sets self.serde, which builds the core
        #: called with each statement sent (``threadloom.checkpoint.trace``); None: off
        self.trace = trace

    @property
    def serde(self) -> SerializerProtocol:
        return self._serde

    @serde.setter
    def serde(self, value: SerializerProtocol) -> None:
        """Replacing the serializer (e.g. with an encrypting one) rebuilds the core."""
        self._serde = value
        # Fingerprint with the plain serializer under an encrypting one: encryption output
        # differs on every call, the plaintext encoding does not.
        inner = getattr(value, "serde", None)
        plain: SerializerProtocol = value
        if inner is not None and callable(getattr(inner, "dumps_typed", None)):
            plain = inner
        # a list stored whole is printed from its row when the row is what the fingerprints
        # serialize (``DeltaCache.finish_row``): a plain serializer, not bound to places
        self._delta_cache = DeltaCache(
            serde_fingerprint(plain.dumps_typed), row_prints=plain is value and not binds(value)
        )
        old = getattr(self, "_values", None)
        self._values = ValueCache(
            **({} if old is None else {"max_bytes": old.max_bytes, "max_entries": old.max_entries})
        )
        self._core = SqlCore(self.dialect, value, self._delta_cache, self._values)

    @property
    def value_cache(self) -> ValueCache:
        return self._values

    def _relaxed(self, config: dict[str, Any]) -> bool:
        """Whether a write may commit without waiting for its flush: only in a run with
        durability="async" whose run lock this saver holds (see ``RunGuard``)."""
        runs: RunGuard | None = getattr(self, "_runs", None)
        return self.durability != "full" and runs is not None and runs.relax(config, self.dialect)

    def _prepare_put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> PreparedPut:
        runs: RunGuard | None = getattr(self, "_runs", None)
        return self._core.prepare_put(
            config,
            checkpoint,
            metadata,
            new_versions,
            relaxed=self._relaxed(config),
            run_locked=runs is not None and runs.holds(config)
            and not (config.get("configurable") or {}).get(CONFIG_KEY_BRANCH),
        )

    def _prune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None,
        strategy: str | None,
    ) -> Op[int]:
        """``prune`` as one operation: the threads' old checkpoints (``SqlCore.prune``),
        then their audit logs as ``audit_keep_last`` says (``_sql.audit.prune_audit``)."""
        ids, keep = prune_plan(thread_ids, keep_last, strategy)
        keep_audit = audit_keep_last(self)  # a bad setting fails before anything goes

        def op() -> Op[int]:
            dropped = yield from self._core.prune(ids, keep)
            if keep_audit is not None:
                for thread_id in sorted(set(ids)):
                    yield from _sqlaudit.prune_audit(
                        self.dialect, thread_id, keep_audit, self.audit_key, self.serde
                    )
            return dropped

        return op()

    def clear_cache(self) -> None:
        """Forget every cached value and delta fingerprint of this saver (the next reads
        go to the database; the next write of each list stores it whole)."""
        self._values.clear()
        self._delta_cache.clear()

    def get_next_version(self, current: str | int | float | None, channel: Any = None) -> str:
        """A zero-padded counter plus a random suffix.

        The suffix makes two forks of one checkpoint (``update_state`` on an old
        checkpoint, twice) write *different* versions of a channel, so a stored blob -
        keyed by (thread, namespace, channel, version) and never overwritten - can never
        be mistaken for another branch's value. Only the counter decides the order.
        """
        if current is None:
            n = 0
        elif isinstance(current, str):
            n = int(current.split(".", 1)[0])
        else:
            n = int(current)
        return f"{n + 1:032d}.{random.getrandbits(64):016x}"


class SyncSqlSaver(SqlSaver):
    """Methods for a blocking connection; the async twins run them in a worker thread."""

    def _run(self, op: Op[T], *, write: bool, atomic: bool = True) -> T:  # pragma: no cover
        raise NotImplementedError

    # -- checkpoint API ----------------------------------------------------------------

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return self._run(self._core.get_tuple(config), write=False, atomic=False)

    def list(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Generator[CheckpointTuple, None, None]:
        """Newest first, fetched a page at a time (``page_size``; the lock is not held
        between)."""
        checked = validate_filter(filter)
        return self._pages(config, checked, before, limit)

    def _pages(
        self,
        config: dict[str, Any] | None,
        filter: dict[str, Any],
        before: dict[str, Any] | None,
        limit: int | None,
    ) -> Generator[CheckpointTuple, None, None]:
        ops = _page_ops(self._core, config, filter, before, limit)
        op = next(ops, None)
        while op is not None:
            page = self._run(op, write=False, atomic=False)
            yield from page
            op = _send(ops, page)

    def put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        """Store a checkpoint. Raises ``CheckpointConflictError`` when a run's ``loop``
        checkpoint's parent is no longer the thread's newest checkpoint (see
        ``SqlCore.put``)."""
        return self._put(config, checkpoint, metadata, new_versions, None)

    def put_with_writes(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> dict[str, Any]:
        """``put``, then ``put_writes(<the stored checkpoint's config>, writes, task_id,
        task_path)``, in one round trip and one transaction (a run's input checkpoint and
        the writes of its input task). Not for a run's ``loop`` checkpoint: when the
        conflict rule refuses one, a write sent ahead may land without it."""
        return self._put(config, checkpoint, metadata, new_versions, (writes, task_id, task_path))

    def _put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: tuple[Sequence[tuple[str, Any]], str, str] | None,
    ) -> dict[str, Any]:
        self._fence(config, checkpoint=True)
        prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        extra = self._core.write_queries(prepared.config(), *writes) if writes else ()
        op = self._core.put(prepared, extra)
        if prepared.relaxed:
            first = next(op)
            again = partial(self._core.put, prepared, extra)
            if self._send_ahead(prepared.thread_id, first, op, again, prepared):
                return _sent_ahead(self._core, prepared)
            op = resumed(first, op)
        stored = self._run(op, write=True, atomic=False)
        self._core.remember_put(prepared)  # committed: now the caches may know it
        return stored

    def settle(self, config: dict[str, Any]) -> None:
        """End of a run: lists changed in place since stored are stored (``SqlCore.settle``;
        nothing is sent when none did)."""
        op = self._core.settle(config)
        if op is not None:
            self._fence(config, checkpoint=False)
            self._run(op, write=True, atomic=False)

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._fence(config, checkpoint=False)
        relaxed = self._relaxed(config)

        def write() -> Op[None]:
            return self._core.put_writes(config, writes, task_id, task_path, relaxed=relaxed)

        op = write()
        if relaxed:
            try:
                first = next(op)
            except StopIteration:  # nothing to write
                return
            if self._send_ahead(thread_and_ns(config)[0], first, op, write, None):
                return
            op = resumed(first, op)
        self._run(op, write=True, atomic=False)

    def _fence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        """Before a write (``checkpoint``: one that ends a step): make sure a run that
        holds its thread's run lock still does (raise ``RunLockLostError`` if not), and
        that its earlier writes did not fail. Backends whose locks cannot be lost while
        the process lives, and whose writes are never left in flight, check nothing."""

    def _send_ahead(
        self,
        thread_id: str,
        first: Query | Batch,
        op: Op[Any],
        again: Callable[[], Op[Any]],
        prepared: PreparedPut | None,
    ) -> bool:
        """Send a relaxed write (``op``, whose first step is ``first``) without waiting
        for it, where the backend can; ``again`` makes it anew, should it have to run
        again. False: it was not sent, the caller runs it."""
        return False

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread: its checkpoints, pending writes, values and audit log."""
        with _sqlaudit.explained():
            self._run(self._core.delete_thread(thread_id), write=True)

    # -- housekeeping ------------------------------------------------------------------

    def list_threads(self, limit: int | None = None) -> builtins.list[str]:
        """Thread ids, the one with the newest checkpoint first."""
        return self._run(self._core.list_threads(limit), write=False, atomic=False)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints of the runs ``run_ids`` (see ``BaseCheckpointSaver``)."""
        self._run(self._core.delete_for_runs(run_ids), write=True)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread to a new thread id (see ``BaseCheckpointSaver``)."""
        self._run(self._core.copy_thread(source_thread_id, target_thread_id), write=True)

    def prune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        """Delete old checkpoints of the threads (``keep_last`` newest, or ``strategy``:
        see ``BaseCheckpointSaver.prune``), their pending writes and the values only they
        used, and the audit records ``audit_keep_last`` does not keep, in one
        transaction; returns the number of checkpoints deleted."""
        op = self._prune(thread_ids, keep_last, strategy)
        with _sqlaudit.explained():
            return self._run(op, write=True)

    def expire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        """Delete threads whose newest checkpoint is older than ``older_than``; their ids.

        ``now`` defaults to the current UTC time (naive datetimes are taken as UTC).
        """
        cutoff = expiry_cutoff(older_than, now)
        expired: list[str] = []
        more = True
        while more:
            with _sqlaudit.explained():
                batch, more = self._run(self._core.expire(cutoff), write=True)
            expired += batch
        return sorted(expired)  # batches come oldest first; the ids, as ever, by id

    def stored_bytes(self, thread_id: str | None = None) -> int:
        """Bytes of stored checkpoint, metadata, value and write payloads (for benchmarks)."""
        return self._run(self._core.stored_bytes(thread_id), write=False, atomic=False)

    async def alist_threads(self, limit: int | None = None) -> builtins.list[str]:
        return await asyncio.to_thread(self.list_threads, limit)

    async def aprune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        return await asyncio.to_thread(self.prune, thread_ids, keep_last, strategy=strategy)

    # The async twins run the blocking operations in a worker thread, one at a time per
    # call (``alist`` fetches each page in one).

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        # One hop to a worker thread per page (its query and decoding), not per row: the
        # tuples are made on the loop as the page is iterated (hopping per row cost ~50 us
        # a row).
        ops = _page_ops(self._core, config, validate_filter(filter), before, limit)
        op = next(ops, None)
        while op is not None:
            page = await asyncio.to_thread(self._run, op, write=False, atomic=False)
            for item in page:
                yield item
            op = _send(ops, page)

    async def aput(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def aput_with_writes(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> dict[str, Any]:
        """The async twin of ``put_with_writes``."""
        return await asyncio.to_thread(self.put_with_writes, config, checkpoint, metadata,
                                       new_versions, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aexpire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        return await asyncio.to_thread(self.expire_paused, older_than, now=now)

    async def astored_bytes(self, thread_id: str | None = None) -> int:
        return await asyncio.to_thread(self.stored_bytes, thread_id)

    # -- audit log (threadloom.hitl; table and migration in ``_sql.audit``) ------------

    def put_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        """Append records to the thread's audit log (numbered, hash-chained)."""
        with _sqlaudit.explained():
            op = _sqlaudit.put_audit(
                self.dialect, thread_id, records, self.audit_key, self.serde
            )
            return self._run(op, write=True)

    def list_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        """The thread's audit records, oldest first."""
        with _sqlaudit.explained():
            return self._run(_sqlaudit.list_audit(thread_id, self.serde), write=False)

    def audit_head(self, thread_id: str) -> dict[str, Any] | None:
        """The anchor of the thread's audit chain (see ``BaseCheckpointSaver``)."""
        with _sqlaudit.explained():
            return self._run(_sqlaudit.audit_head(thread_id, self.serde), write=False)


class AsyncSqlSaver(SqlSaver):
    """Methods for an asyncio connection.

    The sync methods also work, but only from a thread other than the event loop's (they
    hand the coroutine to the saver's loop and wait); called on the loop itself they raise
    instead of deadlocking.
    """

    loop: asyncio.AbstractEventLoop | None = None

    async def _arun(
        self, op: Op[T], *, write: bool, atomic: bool = True
    ) -> T:  # pragma: no cover - interface
        raise NotImplementedError

    def _remember_loop(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()

    # -- checkpoint API ----------------------------------------------------------------

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        self._remember_loop()
        return await self._arun(self._core.get_tuple(config), write=False, atomic=False)

    async def alist(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        self._remember_loop()
        ops = _page_ops(self._core, config, validate_filter(filter), before, limit)
        op = next(ops, None)
        while op is not None:
            page = await self._arun(op, write=False, atomic=False)
            for item in page:
                yield item
            op = _send(ops, page)

    async def aput(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return await self._aput(config, checkpoint, metadata, new_versions, None)

    async def aput_with_writes(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> dict[str, Any]:
        """``SyncSqlSaver.put_with_writes`` on asyncio: one round trip, one transaction."""
        return await self._aput(config, checkpoint, metadata, new_versions,
                                (writes, task_id, task_path))

    async def _aput(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        writes: tuple[Sequence[tuple[str, Any]], str, str] | None,
    ) -> dict[str, Any]:
        self._remember_loop()
        await self._afence(config, checkpoint=True)
        prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        extra = self._core.write_queries(prepared.config(), *writes) if writes else ()
        op = self._core.put(prepared, extra)
        if prepared.relaxed:
            first = next(op)
            again = partial(self._core.put, prepared, extra)
            if await self._asend_ahead(prepared.thread_id, first, op, again, prepared):
                return _sent_ahead(self._core, prepared)
            op = resumed(first, op)
        stored = await self._arun(op, write=True, atomic=False)
        self._core.remember_put(prepared)  # committed: now the caches may know it
        return stored

    async def asettle(self, config: dict[str, Any]) -> None:
        """End of a run: see ``SyncSqlSaver.settle``."""
        op = self._core.settle(config)
        if op is not None:
            self._remember_loop()
            await self._afence(config, checkpoint=False)
            await self._arun(op, write=True, atomic=False)

    async def aput_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._remember_loop()
        await self._afence(config, checkpoint=False)
        relaxed = self._relaxed(config)

        def write() -> Op[None]:
            return self._core.put_writes(config, writes, task_id, task_path, relaxed=relaxed)

        op = write()
        if relaxed:
            try:
                first = next(op)
            except StopIteration:  # nothing to write
                return
            if await self._asend_ahead(thread_and_ns(config)[0], first, op, write, None):
                return
            op = resumed(first, op)
        await self._arun(op, write=True, atomic=False)

    async def _afence(self, config: dict[str, Any], *, checkpoint: bool) -> None:
        """``SyncSqlSaver._fence`` for asyncio savers."""

    async def _asend_ahead(
        self,
        thread_id: str,
        first: Query | Batch,
        op: Op[Any],
        again: Callable[[], Op[Any]],
        prepared: PreparedPut | None,
    ) -> bool:
        """``SyncSqlSaver._send_ahead`` for asyncio savers."""
        return False

    async def adelete_thread(self, thread_id: str) -> None:
        self._remember_loop()
        with _sqlaudit.explained():
            await self._arun(self._core.delete_thread(thread_id), write=True)

    async def alist_threads(self, limit: int | None = None) -> builtins.list[str]:
        self._remember_loop()
        return await self._arun(self._core.list_threads(limit), write=False, atomic=False)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._remember_loop()
        await self._arun(self._core.delete_for_runs(run_ids), write=True)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._remember_loop()
        await self._arun(self._core.copy_thread(source_thread_id, target_thread_id), write=True)

    async def aprune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        """See ``SyncSqlSaver.prune``."""
        op = self._prune(thread_ids, keep_last, strategy)
        self._remember_loop()
        with _sqlaudit.explained():
            return await self._arun(op, write=True)

    async def aexpire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        self._remember_loop()
        cutoff = expiry_cutoff(older_than, now)
        expired: list[str] = []
        more = True
        while more:
            with _sqlaudit.explained():
                batch, more = await self._arun(self._core.expire(cutoff), write=True)
            expired += batch
        return sorted(expired)  # batches come oldest first; the ids, as ever, by id

    async def astored_bytes(self, thread_id: str | None = None) -> int:
        self._remember_loop()
        return await self._arun(self._core.stored_bytes(thread_id), write=False, atomic=False)

    async def aput_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        self._remember_loop()
        with _sqlaudit.explained():
            op = _sqlaudit.put_audit(
                self.dialect, thread_id, records, self.audit_key, self.serde
            )
            return await self._arun(op, write=True)

    async def alist_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        self._remember_loop()
        with _sqlaudit.explained():
            return await self._arun(_sqlaudit.list_audit(thread_id, self.serde), write=False)

    async def aaudit_head(self, thread_id: str) -> dict[str, Any] | None:
        self._remember_loop()
        with _sqlaudit.explained():
            return await self._arun(_sqlaudit.audit_head(thread_id, self.serde), write=False)

    # -- sync bridges ------------------------------------------------------------------

    def _bridge(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self.loop
        if running is not None and running is loop:
            coro.close()
            raise RuntimeError(
                f"{type(self).__name__}'s sync methods would block its own event loop. "
                "Use the async methods (await saver.aget_tuple(...), graph.ainvoke(...)), "
                "or a sync saver for sync code."
            )
        if loop is None or loop.is_closed() or not loop.is_running():
            coro.close()
            raise RuntimeError(
                f"{type(self).__name__}'s sync methods need its event loop running in "
                "another thread. Use the async methods, or a sync saver for sync code."
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return self._bridge(self.aget_tuple(config))

    def list(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> builtins.list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        return iter(self._bridge(collect()))

    def put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return self._bridge(self.aput(config, checkpoint, metadata, new_versions))

    def settle(self, config: dict[str, Any]) -> None:
        self._bridge(self.asettle(config))

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._bridge(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._bridge(self.adelete_thread(thread_id))

    def list_threads(self, limit: int | None = None) -> builtins.list[str]:
        return self._bridge(self.alist_threads(limit))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._bridge(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._bridge(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        return self._bridge(self.aprune(thread_ids, keep_last, strategy=strategy))

    def expire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        return self._bridge(self.aexpire_paused(older_than, now=now))

    def stored_bytes(self, thread_id: str | None = None) -> int:
        return self._bridge(self.astored_bytes(thread_id))

    def put_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        return self._bridge(self.aput_audit(thread_id, records))

    def list_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        return self._bridge(self.alist_audit(thread_id))

    def audit_head(self, thread_id: str) -> dict[str, Any] | None:
        return self._bridge(self.aaudit_head(thread_id))
