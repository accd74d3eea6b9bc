"""The checkpoint saver interface every backend implements, and the shapes it stores.

A *checkpoint* is the state of one thread (in one namespace) between two supersteps: the
channel values, their versions and which versions each node has seen. *Pending writes*
are the writes of tasks that finished (or interrupted, or failed) in the superstep after
a checkpoint, so a resumed run does not redo them.

Savers store ``channel_values`` only for the channels listed in ``new_versions``; the rest
are unchanged since an earlier checkpoint and are found by their version.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypedDict, TypeVar

from threadloom.checkpoint.base.id import next_uuid6_tick
from threadloom.constants import WRITES_IDX_MAP
from threadloom.errors import CheckpointConflictError, EmptyChannelError

__all__ = [
    "AuditRecord",
    "BaseCheckpointSaver",
    "ChannelVersions",
    "Checkpoint",
    "CheckpointMetadata",
    "CheckpointTuple",
    "EmptyChannelError",
    "PRUNE_STRATEGIES",
    "PendingWrite",
    "SerializerProtocol",
    "WRITES_IDX_MAP",
    "AUDIT_PRUNED",
    "audit_keep_last",
    "audit_marker_seal",
    "audit_prune_marker",
    "audit_record_hash",
    "is_prune_marker",
    "chain_audit_records",
    "copy_checkpoint",
    "checkpoint_ts",
    "create_checkpoint_id",
    "empty_checkpoint",
    "get_checkpoint_id",
    "prune_plan",
]

ChannelVersions = dict[str, str | int | float]
PendingWrite = tuple[str, str, Any]  # (task_id, channel, value)
AuditRecord = dict[str, Any]  # one JSON object of a thread's audit log (threadloom.hitl.audit)


class Checkpoint(TypedDict):
    """One snapshot of a thread's channels."""

    v: int
    id: str
    ts: str
    channel_values: dict[str, Any]
    channel_versions: ChannelVersions
    versions_seen: dict[str, ChannelVersions]
    updated_channels: list[str] | None


class CheckpointMetadata(TypedDict, total=False):
    """Why a checkpoint exists: ``source`` is "input", "loop", "update" or "fork"."""

    source: str
    step: int
    parents: dict[str, str]
    run_id: str


class CheckpointTuple(NamedTuple):
    config: dict[str, Any]
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    parent_config: dict[str, Any] | None = None
    pending_writes: list[PendingWrite] | None = None


class SerializerProtocol:
    """Turns values into ``(type_tag, bytes)`` and back."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:  # pragma: no cover - interface
        raise NotImplementedError

    def loads_typed(self, data: tuple[str, bytes]) -> Any:  # pragma: no cover - interface
        raise NotImplementedError


_id_prefix: tuple[int, str] = (-1, "")  # (t >> 12, the id's text for it), one at a time


def create_checkpoint_id() -> str:
    """A UUIDv6 string (``base.id.uuid6``) whose string order is creation order, so
    ``max(id)`` is the newest.

    Ids created in the same 100 ns tick (or after a clock step back) are still strictly
    increasing within this process. Built with bytes.hex, not ``uuid.UUID``: it is minted
    at every step. The first 13 characters (the timestamp's high 48 bits) change every
    ~0.4 ms and are formatted once for all the ids of that span.
    """
    global _id_prefix
    t = next_uuid6_tick()
    high, prefix = _id_prefix
    if t >> 12 != high:
        h = f"{t >> 12:012x}"
        high, prefix = _id_prefix = (t >> 12, f"{h[:8]}-{h[8:]}-6")
    # the low 12 bits of the time, the variant (10), 14 bits of clock_seq, 48 of node:
    # 80 bits, of which the hex text drops the first digit (always 0)
    rest = ((t & 0xFFF) << 64 | 0x8000 << 48 | random.getrandbits(62)).to_bytes(10).hex()
    return f"{prefix}{rest[1:4]}-{rest[4:8]}-{rest[8:]}"


_ts_second: tuple[int, str] = (-1, "")  # (a second since the epoch, its ISO text)


def checkpoint_ts() -> str:
    """Now, as ``datetime.now(UTC).isoformat()`` writes it (a checkpoint's ``ts``), with
    the date and time of the current second formatted once for all the checkpoints made
    in it (a step makes one)."""
    global _ts_second
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    last, prefix = _ts_second
    if second != last:
        prefix = datetime.fromtimestamp(second, UTC).isoformat()[:19]
        _ts_second = (second, prefix)
    return f"{prefix}.{micro:06d}+00:00" if micro else f"{prefix}+00:00"


def empty_checkpoint(*, checkpoint_id: str | None = None, ts: str | None = None) -> Checkpoint:
    """A checkpoint of no channels (format 4): a new thread's, before its first step.
    ``checkpoint_id`` and ``ts`` default to a new id (``create_checkpoint_id``) and the
    current time."""
    # (a dict display: calling the TypedDict builds the same dict through keywords)
    return {
        "v": 4,
        "id": create_checkpoint_id() if checkpoint_id is None else checkpoint_id,
        "ts": checkpoint_ts() if ts is None else ts,
        "channel_values": {},
        "channel_versions": {},
        "versions_seen": {},
        "updated_channels": None,
    }


def copy_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """A copy of ``checkpoint`` whose dicts can be changed without touching the original
    (``channel_values``, ``channel_versions`` and each ``versions_seen`` entry are new
    dicts; the values themselves are shared)."""
    copied: Checkpoint = {**checkpoint}
    copied["channel_values"] = dict(checkpoint["channel_values"])
    copied["channel_versions"] = dict(checkpoint["channel_versions"])
    copied["versions_seen"] = {k: dict(v) for k, v in checkpoint["versions_seen"].items()}
    return copied


def get_checkpoint_id(config: dict[str, Any]) -> str | None:
    checkpoint_id: str | None = config.get("configurable", {}).get("checkpoint_id")
    return checkpoint_id


_busy_guard = threading.Lock()  # guards each saver's set of threads being run


def _busy(thread_id: str) -> Exception:
    return CheckpointConflictError(
        f"Thread {thread_id!r} is being run by another run right now (for example a second "
        "resume of the same pause). Nothing was run or written by this one: wait for the "
        "other run to finish, then read get_state() and decide again."
    )


V = TypeVar("V", int, float, str)
"""The type of a saver's channel versions (``BaseCheckpointSaver[str]``: annotations only)."""


class BaseCheckpointSaver(Generic[V]):
    """Where checkpoints and pending writes live. Subclass it to add a backend.

    Implement the sync methods (``get_tuple``, ``list``, ``put``, ``put_writes``,
    ``delete_thread``); the async twins run them in a worker thread unless overridden.
    Every saver must pass ``tests/checkpoint_conformance.py``.
    """

    serde: SerializerProtocol

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        if serde is None:
            # here, not at the top: the serializer imports this module (a cycle)
            from threadloom.checkpoint.serde.msgpack import default_serializer

            serde = default_serializer()
        self.serde = serde

    # -- reading ---------------------------------------------------------------------

    def get(self, config: dict[str, Any]) -> Checkpoint | None:
        tup = self.get_tuple(config)
        return tup.checkpoint if tup else None

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        """The checkpoint named by ``checkpoint_id`` in ``config``, else the thread's newest."""
        raise NotImplementedError

    def list(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` matches metadata keys exactly."""
        raise NotImplementedError

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        """Store ``checkpoint`` as the child of ``config``'s checkpoint; return its config."""
        raise NotImplementedError

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the checkpoint in ``config``."""
        raise NotImplementedError

    def get_delta_channel_history(
        self, *, config: dict[str, Any], channels: Sequence[str]
    ) -> dict[str, Any]:
        """Per channel, ``{"seed": nearest stored value (absent: none), "writes": [(task_id,
        channel, value), ...] recorded after it}``: what rebuilds a channel stored as
        deltas at the checkpoint ``config`` names (see
        ``threadloom.checkpoint._values.history``)."""
        from threadloom.checkpoint._values.history import HistoryWalk  # imports this module

        walk = HistoryWalk(channels)
        at: Any = config
        while at is not None:
            tup = self.get_tuple(at)
            if tup is None:
                break
            at = walk.visit(tup)
        return dict(walk.result())

    def delete_thread(self, thread_id: str) -> None:
        raise NotImplementedError

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints made by the runs ``run_ids`` (metadata ``run_id``), in
        every thread and namespace, with their pending writes. Other checkpoints stay
        whole; unknown run ids are ignored."""
        raise NotImplementedError

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint of one thread (all namespaces, values, pending writes,
        ids unchanged) to another thread, which must have no checkpoints yet."""
        raise NotImplementedError

    def prune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        """Delete old checkpoints of the threads ``thread_ids`` (one id, or several); the
        number of checkpoints deleted.

        ``strategy="keep_latest"`` (the default) keeps the newest checkpoint of each
        namespace, ``"delete"`` deletes every checkpoint; ``keep_last=n`` keeps the ``n``
        newest of each namespace. Pending writes go with their checkpoint; a value stays
        while a kept checkpoint needs it. See ``prune_plan``.
        """
        raise NotImplementedError

    def get_next_version(self, current: str | int | float | None, channel: Any = None) -> str:
        """Versions are zero-padded counters plus a random fraction.

        String order is version order; the random part keeps two forks of one thread from
        minting the same version for different values (blobs are stored per version).
        """
        if current is None:
            n = 0
        elif isinstance(current, str):
            n = int(current.split(".", 1)[0])
        else:
            n = int(current)
        return f"{n + 1:032d}.{random.random():.16f}"

    # -- one run per thread ----------------------------------------------------------

    @contextlib.contextmanager
    def lock_thread(self, thread_id: str) -> Iterator[None]:
        """Hold the thread for one run; another run of it gets ``CheckpointConflictError``.

        One writer per thread: the engine takes it around every run (and state edit)
        that has a thread, so two resumes of one paused thread can never both run its
        nodes. This default is per process; the SQLite and PostgreSQL savers override it
        with locks other processes see (and that a killed process releases).

        While a saver holds a thread's run lock, its ``put`` of a ``loop`` checkpoint
        also checks that the parent is still the newest checkpoint of the (thread,
        namespace), and raises ``CheckpointConflictError`` if not: the thread was changed
        outside the run (deleted, pruned, written by a plain ``put``). Outside a run,
        ``put`` is plain storage: it stores any checkpoint under any parent, as the
        checkpoint saver contract has it (tools, migrations, ``copy_thread``).
        """
        with _busy_guard:
            busy = self.__dict__.setdefault("_busy_threads", set())
            if thread_id in busy:
                raise _busy(thread_id)
            busy.add(thread_id)
        try:
            yield
        finally:
            with _busy_guard:
                busy.discard(thread_id)

    @contextlib.asynccontextmanager
    async def alock_thread(self, thread_id: str) -> AsyncIterator[None]:
        """The async twin of ``lock_thread``."""
        with self.lock_thread(thread_id):
            yield

    # -- the end of a run -------------------------------------------------------------

    def settle(self, config: dict[str, Any]) -> None:
        """Called by the engine when a run ends or pauses, with the config of the last
        checkpoint it wrote. Savers that store list deltas check there, once per run,
        what their per-``put`` checks leave for later (an older list item changed in
        place) and store it; this default does nothing."""

    async def asettle(self, config: dict[str, Any]) -> None:
        """The async twin of ``settle`` (a no-op unless ``settle`` is overridden)."""
        if type(self).settle is not BaseCheckpointSaver.settle:
            await asyncio.to_thread(self.settle, config)

    # -- async twins -----------------------------------------------------------------

    async def aget(self, config: dict[str, Any]) -> Checkpoint | None:
        tup = await self.aget_tuple(config)
        return tup.checkpoint if tup else None

    async def aget_delta_channel_history(
        self, *, config: dict[str, Any], channels: Sequence[str]
    ) -> dict[str, Any]:
        """Async ``get_delta_channel_history`` (walks with ``aget_tuple``)."""
        from threadloom.checkpoint._values.history import HistoryWalk  # imports this module

        walk = HistoryWalk(channels)
        at: Any = config
        while at is not None:
            tup = await self.aget_tuple(at)
            if tup is None:
                break
            at = walk.visit(tup)
        return dict(walk.result())

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
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

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

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        return await asyncio.to_thread(self.prune, thread_ids, keep_last, strategy=strategy)

    # -- audit log (added for threadloom.hitl) --------------------------------------

    def put_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        """Append ``records`` (JSON objects) to the thread's audit log; return them as
        stored, with ``seq``, ``prev_hash`` and ``hash`` (see ``chain_audit_records``).

        The log is append-only while its thread lives. It goes with its thread:
        ``delete_thread`` (and ``expire_paused``) delete it, and ``prune`` keeps what
        ``audit_keep_last`` says (by default all of it). Savers without an audit log
        raise ``NotImplementedError``.
        """
        raise _no_audit(self)

    def list_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        """The thread's audit records, oldest first."""
        raise _no_audit(self)

    audit_key: bytes | None = None
    """Set it (``saver.audit_key = b"..."``) to chain the audit log with HMAC-SHA256
    under this key instead of plain sha256: a rewritten suffix can then not be re-hashed
    without the key (``verify_chain(records, key=...)`` checks it)."""

    audit_keep_last: int | None = None
    """The audit log's retention under ``prune``: ``None`` (the default) keeps a thread's
    whole log - ``prune`` reclaims checkpoints, the log is the record of who decided
    what, and its records are bounded in size (``ApprovalHooks(max_record_bytes=...)``).
    ``n`` keeps the ``n`` newest records: the older ones are replaced by one anchor
    record (``audit_prune_marker``) holding the last pruned record's ``seq`` and
    ``hash``, so the rest of the chain still verifies. ``delete_thread`` always deletes
    the whole log."""

    def audit_head(self, thread_id: str) -> dict[str, Any] | None:
        """The anchor of the thread's audit chain, kept apart from the records and moved
        in the same transaction as each append: ``{"seq", "hash"}`` of the last record
        (None when the thread has no log). A log cut short no longer reaches it."""
        raise _no_audit(self)

    async def aaudit_head(self, thread_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.audit_head, thread_id)

    async def aput_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        return await asyncio.to_thread(self.put_audit, thread_id, records)

    async def alist_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        return await asyncio.to_thread(self.list_audit, thread_id)


PRUNE_STRATEGIES = ("keep_latest", "delete")


def prune_plan(
    thread_ids: str | Sequence[str], keep_last: int | None, strategy: str | None
) -> tuple[list[str], int]:
    """``prune``'s arguments as (thread ids, how many checkpoints to keep per namespace).

    ``thread_ids`` is one id or an iterable of ids; give ``keep_last`` or ``strategy``
    (``"keep_latest"``: keep 1, ``"delete"``: keep 0), not both; neither means
    ``"keep_latest"``.
    """
    if keep_last is not None and strategy is not None:
        raise ValueError(
            f"prune takes keep_last or strategy, not both (got keep_last={keep_last!r}, "
            f"strategy={strategy!r})"
        )
    if keep_last is None:
        if strategy is None:
            strategy = "keep_latest"
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"Unknown prune strategy {strategy!r}: use 'keep_latest' (keep the newest "
                "checkpoint of each namespace) or 'delete' (delete every checkpoint)."
            )
        keep_last = 1 if strategy == "keep_latest" else 0
    elif isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise ValueError(f"keep_last must be an int >= 0, got {keep_last!r}")
    if isinstance(thread_ids, str | bytes) or not isinstance(thread_ids, Iterable):
        ids = [str(thread_ids)]
    else:
        ids = [str(t) for t in thread_ids]
    return ids, keep_last


KEYED = "hmac-sha256:"


def audit_record_hash(record: AuditRecord, key: bytes | None = None) -> str:
    """sha256 of the record's canonical JSON, without its own ``hash`` key; with ``key``,
    ``"hmac-sha256:<hex>"`` (HMAC-SHA256 under the key)."""
    body = {k: v for k, v in record.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if key is not None:
        return KEYED + hmac.new(bytes(key), text.encode(), hashlib.sha256).hexdigest()
    return hashlib.sha256(text.encode()).hexdigest()


def chain_audit_records(
    last: AuditRecord | None,
    thread_id: str,
    records: Sequence[AuditRecord],
    key: bytes | None = None,
    *,
    salt: bool = False,
) -> list[AuditRecord]:
    """``records`` as stored after ``last``: numbered (``seq`` from 1) and hash-chained
    (``prev_hash`` is the previous record's ``hash``; HMAC under ``key`` if given), so an
    edited or deleted entry shows. Savers call it inside the transaction that appends.

    ``salt``: give each record a random ``salt`` (hashed with it), so that its hash - which
    may be kept in plaintext (checkpoint metadata anchors) - cannot confirm a guess at an
    encrypted record's content (see ``threadloom.checkpoint._stored.auditcodec``)."""
    seq = int(last["seq"]) if last else 0
    prev = str(last["hash"]) if last else ""
    out: list[AuditRecord] = []
    for record in records:
        seq += 1
        stored = {**record, "thread_id": str(thread_id), "seq": seq, "prev_hash": prev}
        if salt:
            stored["salt"] = secrets.token_hex(16)
        stored["hash"] = prev = audit_record_hash(stored, key)
        out.append(stored)
    return out


AUDIT_PRUNED = "pruned"
"""The ``event`` of the anchor record that stands for the records ``prune`` removed."""


def audit_marker_seal(marker: AuditRecord, key: bytes | None = None) -> str:
    """The seal of a prune anchor record: the hash (HMAC under ``key``) of everything in
    it but the seal, its ``hash`` included (the pruned record's, which the next record
    follows)."""
    body = {k: v for k, v in marker.items() if k != "seal"}
    return audit_record_hash({AUDIT_PRUNED: body}, key)


def audit_prune_marker(
    last: AuditRecord, key: bytes | None = None, *, at: datetime | None = None
) -> AuditRecord:
    """The anchor record that replaces records ``1..last["seq"]`` when ``prune`` cuts a
    log: it sits at ``last``'s place, carries its ``hash`` (so the first kept record
    still follows it) and a ``seal`` over itself (see ``audit_marker_seal``)."""
    marker: AuditRecord = {
        "event": AUDIT_PRUNED,
        "thread_id": last.get("thread_id"),
        "seq": int(last["seq"]),
        "hash": str(last["hash"]),
        "at": (at or datetime.now(UTC)).isoformat(),
    }
    marker["seal"] = audit_marker_seal(marker, key)
    return marker


def is_prune_marker(record: AuditRecord) -> bool:
    """Whether ``record`` is the anchor record a ``prune`` left (``audit_prune_marker``)."""
    return record.get("event") == AUDIT_PRUNED and "seal" in record


def audit_keep_last(saver: Any) -> int | None:
    """``saver.audit_keep_last``, checked: None or an int >= 0."""
    keep = getattr(saver, "audit_keep_last", None)
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise ValueError(
            f"{type(saver).__name__}.audit_keep_last must be None (prune keeps the whole "
            f"audit log) or an int >= 0 (the newest records prune keeps); got {keep!r}."
        )
    return keep


def _no_audit(saver: Any) -> NotImplementedError:
    return NotImplementedError(
        f"{type(saver).__name__} does not store an audit log of decisions. Use "
        "InMemorySaver, SqliteSaver or PostgresSaver, or implement put_audit/list_audit."
    )
