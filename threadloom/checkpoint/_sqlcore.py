"""The SQL savers' algorithm, written once for SQLite and Postgres, sync and async.

Every method of ``SqlCore`` that touches the database is a generator of ``Query`` (see
``_sql``): it decides what to read and write, a backend driver executes it in one
transaction. So what to store, how a stale head is detected, how delta chains are
rebuilt and what a prune may delete are the same code on every backend, with no I/O of
their own.

Storage layout (tables in ``_sql``): a checkpoint row without values (serialized with the
saver's serde) and JSON metadata; one blob row per (thread, namespace, channel, version)
written only for channels in ``new_versions`` - either the whole value, or, for a list
that grew, the appended items plus ``base_version``/``root_version`` (``_delta``); one row
per pending write.

Damaged rows raise ``CorruptCheckpointError`` naming the thread, namespace and checkpoint;
decoding goes through the serializer, which never runs code named by stored bytes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.checkpoint._delta import (
    EMPTY,
    BlobPlan,
    BrokenChainError,
    DeltaCache,
    Resolved,
    StoredBlob,
    chain_roots,
    needed_keys,
    resolve,
)
from threadloom.checkpoint._sql import (
    BLOBS,
    CHECKPOINTS,
    EXPIRE_BATCH,
    MIGRATIONS_TABLE,
    WRITES,
    Dialect,
    Op,
    Query,
    chunks,
    dump_metadata,
    make_config,
    thread_and_ns,
    timestamp,
    values_cte,
)
from threadloom.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    SerializerProtocol,
    get_checkpoint_id,
)
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.errors import CheckpointConflictError

__all__ = ["CorruptCheckpointError", "PreparedPut", "SqlCore"]

Rows = list[tuple[Any, ...]]

_CP_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)
_BLOB_COLUMNS = (
    "b.checkpoint_ns, b.channel, b.version, b.type, b.blob, b.base_version, b.root_version"
)


@dataclass(slots=True)
class PreparedPut:
    """Everything ``put`` writes, serialized before the transaction starts."""

    thread_id: str
    ns: str
    parent_id: str | None
    checkpoint: Checkpoint
    source: Any
    cp_type: str
    cp_blob: bytes
    metadata_json: str
    created_at: float
    blobs: list[tuple[BlobPlan, str, bytes | None]]


class SqlCore:
    """The saver operations as generators of ``Query`` (see the module docstring)."""

    def __init__(self, dialect: Dialect, serde: SerializerProtocol, cache: DeltaCache) -> None:
        self.d = dialect
        self.serde = serde
        self.cache = cache

    # -- schema ------------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Sequence[str]]) -> Op[int]:
        """Apply the migrations not yet recorded; returns how many ran.

        Runs in one transaction behind a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory
        transaction lock on Postgres), so concurrent callers apply each migration once.
        """
        if self.d.lock_migrations:
            yield Query(self.d.lock_migrations)
        yield Query(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (v INTEGER PRIMARY KEY)")
        rows = yield Query(f"SELECT v FROM {MIGRATIONS_TABLE}", fetch=True)
        done = {int(r[0]) for r in rows or ()}
        ran = 0
        for version, statements in enumerate(migrations):
            if version in done:
                continue
            for statement in statements:
                yield Query(statement)
            yield Query(f"INSERT INTO {MIGRATIONS_TABLE} (v) VALUES (?)", (version,))
            ran += 1
        return ran

    # -- reading -------------------------------------------------------------------------

    def get_tuple(self, config: dict[str, Any]) -> Op[CheckpointTuple | None]:
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        base = f"SELECT {_CP_COLUMNS} FROM {CHECKPOINTS} WHERE thread_id = ? AND checkpoint_ns = ?"
        if checkpoint_id is not None:
            params = (thread_id, ns, checkpoint_id)
            rows = yield Query(base + " AND checkpoint_id = ?", params, fetch=True)
        else:
            rows = yield Query(
                base + " ORDER BY checkpoint_id DESC LIMIT 1", (thread_id, ns), fetch=True
            )
        if not rows:
            return None
        [(tup, resolved)] = yield from self._load(rows)
        if checkpoint_id is None:
            # The newest checkpoint is what a run continues from: remember it, so that the
            # run's first put can append deltas even in a process that never wrote this
            # thread. Explicit (older) checkpoints are left out: browsing history must not
            # cost fingerprinting or evict the head a running graph is appending to.
            self.cache.remember_loaded(
                thread_id, ns, tup.checkpoint["id"], tup.checkpoint["channel_versions"], resolved
            )
        return tup

    def list_page(
        self,
        config: dict[str, Any] | None,
        filter: dict[str, Any],
        before: dict[str, Any] | None,
        limit: int,
        after: tuple[str, str, str] | None,
    ) -> Op[list[CheckpointTuple]]:
        """Up to ``limit`` checkpoints, newest first, strictly after the keyset ``after``."""
        conf = (config or {}).get("configurable") or {}
        where: list[str] = []
        params: list[Any] = []
        if "thread_id" in conf:
            where.append("thread_id = ?")
            params.append(str(conf["thread_id"]))
        if conf.get("checkpoint_ns") is not None:
            where.append("checkpoint_ns = ?")
            params.append(str(conf["checkpoint_ns"]))
        if conf.get("checkpoint_id"):
            where.append("checkpoint_id = ?")
            params.append(str(conf["checkpoint_id"]))
        before_id = get_checkpoint_id(before) if before else None
        if before_id:
            where.append("checkpoint_id < ?")
            params.append(str(before_id))
        if filter:
            clauses, filter_params = self.d.filter_sql(filter)
            where += clauses
            params += filter_params
        if after is not None:
            where.append("(checkpoint_id, thread_id, checkpoint_ns) < (?, ?, ?)")
            params += list(after)
        sql = f"SELECT {_CP_COLUMNS} FROM {CHECKPOINTS}"
        if where:
            sql += " WHERE " + " AND ".join(f"({w})" for w in where)
        sql += " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ?"
        rows = yield Query(sql, [*params, limit], fetch=True)
        if not rows:
            return []
        loaded = yield from self._load(rows)
        return [tup for tup, _ in loaded]

    def _load(self, rows: Rows) -> Op[list[tuple[CheckpointTuple, dict[str, Resolved]]]]:
        """Turn checkpoint rows into tuples: decode, fetch blobs (+ chains) and writes."""
        decoded = []
        owners: dict[tuple[Any, ...], str] = {}
        for thread_id, ns, checkpoint_id, parent_id, typ, blob, metadata in rows:
            where = f"thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
            checkpoint = self._decode((typ, blob), f"checkpoint of {where}")
            if not isinstance(checkpoint, dict) or not isinstance(
                checkpoint.get("channel_versions"), dict
            ):
                raise CorruptCheckpointError(
                    f"Stored checkpoint of {where} is not a checkpoint (got "
                    f"{type(checkpoint).__name__}); the row is damaged."
                )
            meta = _load_metadata(metadata, where)
            keys = [(thread_id, ns, ch, str(v)) for ch, v in checkpoint["channel_versions"].items()]
            for key in keys:
                owners.setdefault(key, checkpoint_id)
            decoded.append((thread_id, ns, checkpoint_id, parent_id, checkpoint, meta, keys))

        blob_rows = yield from self._fetch_blobs(list(owners))
        # a chain row is named after a checkpoint whose value is built on it
        via_chain = {
            _root_key(k, r): owners[k] for k, r in blob_rows.items() if r.base_version is not None
        }
        roots = chain_roots(blob_rows)
        if roots:
            blob_rows.update((yield from self._fetch_chains(sorted(roots))))

        def owner_of(key: tuple[Any, ...]) -> str:
            if key in owners:
                return f"checkpoint {owners[key]!r}"
            row = blob_rows.get(key)
            owner = via_chain.get(_root_key(key, row) if row else key)
            return f"checkpoint {owner!r}, through the list delta chain it extends"

        def decode(key: tuple[Any, ...], row: StoredBlob) -> Any:
            thread_id, ns, channel, version = key
            return self._decode(
                (row.type, row.blob),
                f"value of channel {channel!r} version {version!r} (thread {thread_id!r}, "
                f"namespace {ns!r}, {owner_of(key)})",
            )

        try:
            resolved = resolve(blob_rows, list(owners), decode)
        except BrokenChainError as exc:
            thread_id, ns, channel, version = exc.key
            raise CorruptCheckpointError(
                f"Stored value of channel {channel!r} version {version!r} (thread "
                f"{thread_id!r}, namespace {ns!r}, {owner_of(exc.key)}) "
                f"cannot be rebuilt: {exc}"
            ) from exc

        writes = yield from self._fetch_writes([(d[0], d[1], d[2]) for d in decoded])
        out = []
        for thread_id, ns, checkpoint_id, parent_id, checkpoint, meta, keys in decoded:
            values: dict[str, Any] = {}
            mine: dict[str, Resolved] = {}
            for key in keys:
                got = resolved.get(key)
                if got is not None and got.value is not EMPTY:
                    values[key[2]] = got.value
                    mine[key[2]] = got
            checkpoint = dict(checkpoint)
            checkpoint["channel_values"] = values
            tup = CheckpointTuple(
                config=make_config(thread_id, ns, checkpoint_id),
                checkpoint=checkpoint,  # type: ignore[arg-type]
                metadata=meta,  # type: ignore[arg-type]
                parent_config=make_config(thread_id, ns, parent_id) if parent_id else None,
                pending_writes=writes.get((thread_id, ns, checkpoint_id), []),
            )
            out.append((tup, mine))
        return out

    def _fetch_blobs(self, keys: list[tuple[Any, ...]]) -> Op[dict[tuple[Any, ...], StoredBlob]]:
        found: dict[tuple[Any, ...], StoredBlob] = {}
        cols = ("thread_id", "checkpoint_ns", "channel", "version")
        for chunk in chunks(keys, 4):
            cte = values_cte("w", cols, chunk)
            sql = (
                f"{cte.sql}SELECT b.thread_id, {_BLOB_COLUMNS} FROM {BLOBS} b JOIN w ON "
                "b.thread_id = w.thread_id AND b.checkpoint_ns = w.checkpoint_ns "
                "AND b.channel = w.channel AND b.version = w.version"
            )
            rows = yield Query(sql, cte.params, fetch=True)
            found.update(_blob_rows(rows))
        return found

    def _fetch_chains(self, roots: list[tuple[Any, ...]]) -> Op[dict[tuple[Any, ...], StoredBlob]]:
        """Every row of the chains starting at ``roots`` (the root and its deltas)."""
        found: dict[tuple[Any, ...], StoredBlob] = {}
        cols = ("thread_id", "checkpoint_ns", "channel", "root")
        for chunk in chunks(roots, 4):
            cte = values_cte("w", cols, chunk)
            join = (
                "b.thread_id = w.thread_id AND b.checkpoint_ns = w.checkpoint_ns "
                "AND b.channel = w.channel AND "
            )
            sql = (
                f"{cte.sql}SELECT b.thread_id, {_BLOB_COLUMNS} FROM {BLOBS} b JOIN w ON "
                f"{join}b.root_version = w.root UNION ALL "
                f"SELECT b.thread_id, {_BLOB_COLUMNS} FROM {BLOBS} b JOIN w ON "
                f"{join}b.version = w.root"
            )
            rows = yield Query(sql, cte.params, fetch=True)
            found.update(_blob_rows(rows))
        return found

    def _fetch_writes(
        self, keys: list[tuple[str, str, str]]
    ) -> Op[dict[tuple[str, str, str], list[PendingWrite]]]:
        out: dict[tuple[str, str, str], list[PendingWrite]] = defaultdict(list)
        cols = ("thread_id", "checkpoint_ns", "checkpoint_id")
        for chunk in chunks(keys, 3):
            cte = values_cte("w", cols, chunk)
            sql = (
                f"{cte.sql}SELECT x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, "
                f"x.channel, x.type, x.blob FROM {WRITES} x JOIN w ON "
                "x.thread_id = w.thread_id AND x.checkpoint_ns = w.checkpoint_ns "
                "AND x.checkpoint_id = w.checkpoint_id "
                "ORDER BY x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_path, "
                "x.task_id, x.idx"
            )
            rows = yield Query(sql, cte.params, fetch=True)
            for thread_id, ns, checkpoint_id, task_id, channel, typ, blob in rows or ():
                value = self._decode(
                    (typ, _bytes(blob)),
                    f"pending write of task {task_id!r} to channel {channel!r} (thread "
                    f"{thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r})",
                )
                out[(thread_id, ns, checkpoint_id)].append((task_id, channel, value))
        return out

    def _decode(self, data: tuple[str, Any], what: str) -> Any:
        typ, blob = data
        if typ == "empty":
            return EMPTY
        try:
            return self.serde.loads_typed((typ, _bytes(blob)))
        except Exception as exc:
            raise CorruptCheckpointError(
                f"Stored {what} cannot be decoded ({type(exc).__name__}: {exc}). The row is "
                "damaged or was written by an incompatible serializer; nothing in it was run."
            ) from exc

    # -- writing -----------------------------------------------------------------------

    def prepare_put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> PreparedPut:
        """Serialize outside the transaction, so the write lock is held only for I/O."""
        thread_id, ns = thread_and_ns(config)
        parent_id = get_checkpoint_id(config) or None  # "" means "no parent" too
        metadata_json = dump_metadata(metadata)
        stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        cp_type, cp_blob = self.serde.dumps_typed(stored)
        plans = self.cache.plan(
            thread_id, ns, parent_id, checkpoint["channel_values"], new_versions
        )
        return PreparedPut(
            thread_id=thread_id,
            ns=ns,
            parent_id=parent_id,
            checkpoint=checkpoint,
            source=(metadata or {}).get("source"),
            cp_type=cp_type,
            cp_blob=cp_blob,
            metadata_json=metadata_json,
            created_at=timestamp(checkpoint.get("ts")),
            blobs=[(plan, *self._dump_plan(plan)) for plan in plans],
        )

    def _dump_plan(self, plan: BlobPlan) -> tuple[str, bytes | None]:
        if plan.value is EMPTY:
            return "empty", None
        return self.serde.dumps_typed(plan.payload)

    def put(self, p: PreparedPut) -> Op[dict[str, Any]]:
        """Store a prepared checkpoint; a ``loop`` checkpoint on a stale head loses.

        The head check and the inserts share one transaction under the thread's write
        lock, so of two writers continuing from the same head exactly one succeeds.
        """
        checkpoint_id = p.checkpoint["id"]
        if self.d.lock_thread:
            yield Query(self.d.lock_thread, (p.thread_id,))
        rows = yield Query(
            f"SELECT checkpoint_id FROM {CHECKPOINTS} WHERE thread_id = ? AND checkpoint_ns = ? "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (p.thread_id, p.ns),
            fetch=True,
        )
        head = rows[0][0] if rows else None
        if p.source == "loop" and head != p.parent_id and head != checkpoint_id:
            raise CheckpointConflictError(
                f"Thread {p.thread_id!r} (namespace {p.ns!r}) moved on: this run continues "
                f"from checkpoint {p.parent_id!r} but the newest checkpoint is now {head!r}. "
                "Another run advanced the thread first; nothing was written. Re-read the "
                "thread with get_state() and decide again."
            )
        blobs = yield from self._check_bases(p)
        for chunk in chunks(blobs, 8):
            one = "(?, ?, ?, ?, ?, ?, ?, ?)"
            yield Query(
                f"INSERT INTO {BLOBS} (thread_id, checkpoint_ns, channel, version, type, blob, "
                f"base_version, root_version) VALUES {', '.join(one for _ in chunk)} "
                "ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING",
                [
                    v
                    for plan, typ, blob in chunk
                    for v in (
                        p.thread_id,
                        p.ns,
                        plan.channel,
                        plan.version,
                        typ,
                        blob,
                        plan.base_version,
                        plan.root_version,
                    )
                ],
            )
        yield Query(
            f"INSERT INTO {CHECKPOINTS} (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata, created_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, {self.d.metadata_param}, ?) "
            "ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type, "
            "checkpoint = excluded.checkpoint, metadata = excluded.metadata, "
            "created_at = excluded.created_at",
            (
                p.thread_id,
                p.ns,
                checkpoint_id,
                p.parent_id,
                p.cp_type,
                p.cp_blob,
                p.metadata_json,
                p.created_at,
            ),
        )
        self.cache.remember_put(
            p.thread_id,
            p.ns,
            checkpoint_id,
            p.checkpoint["channel_versions"],
            [plan for plan, _, _ in blobs],
        )
        return make_config(p.thread_id, p.ns, checkpoint_id)

    def _check_bases(self, p: PreparedPut) -> Op[list[tuple[BlobPlan, str, bytes | None]]]:
        """Store a delta whole when its base row is gone (the cache was stale)."""
        bases = sorted(
            {
                (p.thread_id, p.ns, plan.channel, plan.base_version)
                for plan, _, _ in p.blobs
                if plan.is_delta
            }
        )
        if not bases:
            return p.blobs
        present = yield from self._fetch_keys(bases)
        out = []
        for plan, typ, blob in p.blobs:
            if (
                plan.is_delta
                and (p.thread_id, p.ns, plan.channel, plan.base_version) not in present
            ):
                plan = plan.as_full()
                typ, blob = self._dump_plan(plan)
            out.append((plan, typ, blob))
        return out

    def _fetch_keys(self, keys: list[tuple[Any, ...]]) -> Op[set[tuple[Any, ...]]]:
        present: set[tuple[Any, ...]] = set()
        cols = ("thread_id", "checkpoint_ns", "channel", "version")
        for chunk in chunks(keys, 4):
            cte = values_cte("w", cols, chunk)
            rows = yield Query(
                f"{cte.sql}SELECT b.thread_id, b.checkpoint_ns, b.channel, b.version "
                f"FROM {BLOBS} b JOIN w ON b.thread_id = w.thread_id AND "
                "b.checkpoint_ns = w.checkpoint_ns AND b.channel = w.channel AND "
                "b.version = w.version",
                cte.params,
                fetch=True,
            )
            present.update(tuple(r) for r in rows or ())
        return present

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Op[None]:
        """Regular writes are kept once per (task, index); special ones are replaced."""
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise ValueError("put_writes needs a checkpoint_id in config['configurable'].")
        regular: dict[int, tuple[Any, ...]] = {}
        special: dict[int, tuple[Any, ...]] = {}
        for idx, (channel, value) in enumerate(writes):
            typ, blob = self.serde.dumps_typed(value)
            key = WRITES_IDX_MAP.get(channel, idx)
            row = (thread_id, ns, checkpoint_id, task_id, key, channel, typ, blob, task_path)
            if key < 0:
                special[key] = row  # the last one wins, as in the memory saver
            else:
                regular.setdefault(key, row)
        insert = (
            f"INSERT INTO {WRITES} (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, type, blob, task_path) VALUES "
        )
        conflict = " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) "
        for rows, action in (
            (list(regular.values()), "DO NOTHING"),
            (
                list(special.values()),
                "DO UPDATE SET channel = excluded.channel, type = excluded.type, "
                "blob = excluded.blob, task_path = excluded.task_path",
            ),
        ):
            for chunk in chunks(rows, 9):
                one = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
                yield Query(
                    insert + ", ".join(one for _ in chunk) + conflict + action,
                    [v for row in chunk for v in row],
                )
        return None

    # -- housekeeping ------------------------------------------------------------------

    def delete_thread(self, thread_id: str) -> Op[None]:
        thread_id = str(thread_id)
        if self.d.lock_thread:
            yield Query(self.d.lock_thread, (thread_id,))
        for table in (WRITES, BLOBS, CHECKPOINTS):
            yield Query(f"DELETE FROM {table} WHERE thread_id = ?", (thread_id,))
        self.cache.forget(thread_id)
        return None

    def list_threads(self, limit: int | None) -> Op[list[str]]:
        sql = (
            f"SELECT thread_id FROM {CHECKPOINTS} GROUP BY thread_id "
            "ORDER BY MAX(created_at) DESC, MAX(checkpoint_id) DESC, thread_id"
        )
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = yield Query(sql, params, fetch=True)
        return [r[0] for r in rows or ()]

    def prune(self, thread_id: str, keep_last: int) -> Op[int]:
        """Keep the ``keep_last`` newest checkpoints per namespace; returns how many went.

        Blobs survive while a kept checkpoint references them or a kept delta chain runs
        through them, so every kept checkpoint still reads back whole.
        """
        if keep_last < 0:
            raise ValueError(f"keep_last must be >= 0, got {keep_last}")
        thread_id = str(thread_id)
        if self.d.lock_thread:
            yield Query(self.d.lock_thread, (thread_id,))
        rows = yield Query(
            f"SELECT checkpoint_ns, checkpoint_id, type, checkpoint FROM {CHECKPOINTS} "
            "WHERE thread_id = ? ORDER BY checkpoint_ns, checkpoint_id DESC",
            (thread_id,),
            fetch=True,
        )
        seen: dict[str, int] = defaultdict(int)
        dropped: list[tuple[str, str, str]] = []
        referenced: set[tuple[Any, ...]] = set()
        for ns, checkpoint_id, typ, blob in rows or ():
            seen[ns] += 1
            if seen[ns] > keep_last:
                dropped.append((thread_id, ns, checkpoint_id))
                continue
            where = f"thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
            checkpoint = self._decode((typ, blob), f"checkpoint of {where}")
            for channel, version in (checkpoint.get("channel_versions") or {}).items():
                referenced.add((thread_id, ns, channel, str(version)))
        if not dropped:
            return 0
        cols = ("thread_id", "checkpoint_ns", "checkpoint_id")
        for table in (WRITES, CHECKPOINTS):
            for chunk in chunks(dropped, 3):
                cte = values_cte("w", cols, chunk)
                yield Query(
                    f"{cte.sql}DELETE FROM {table} WHERE (thread_id, checkpoint_ns, "
                    "checkpoint_id) IN (SELECT thread_id, checkpoint_ns, checkpoint_id FROM w)",
                    cte.params,
                )
        blob_rows = yield Query(
            f"SELECT thread_id, checkpoint_ns, channel, version, base_version FROM {BLOBS} "
            "WHERE thread_id = ?",
            (thread_id,),
            fetch=True,
        )
        bases = {tuple(r[:4]): r[4] for r in blob_rows or ()}
        keep = needed_keys(referenced, bases)
        garbage = [k for k in bases if k not in keep]
        bcols = ("thread_id", "checkpoint_ns", "channel", "version")
        for chunk in chunks(garbage, 4):
            cte = values_cte("w", bcols, chunk)
            yield Query(
                f"{cte.sql}DELETE FROM {BLOBS} WHERE (thread_id, checkpoint_ns, channel, "
                "version) IN (SELECT thread_id, checkpoint_ns, channel, version FROM w)",
                cte.params,
            )
        self.cache.forget(thread_id)
        return len(dropped)

    def expire(self, cutoff: float, batch: int | None = None) -> Op[tuple[list[str], bool]]:
        """Delete up to ``batch`` threads whose newest checkpoint is older than ``cutoff``.

        Returns the deleted ids and whether more candidates may remain. Batches keep each
        transaction (and, on Postgres, its number of advisory locks) bounded.
        """
        batch = batch or EXPIRE_BATCH
        rows = yield Query(
            f"SELECT thread_id FROM {CHECKPOINTS} GROUP BY thread_id "
            "HAVING MAX(created_at) < ? ORDER BY thread_id LIMIT ?",
            (cutoff, batch),
            fetch=True,
        )
        candidates = [r[0] for r in rows or ()]
        expired: list[str] = []
        for thread_id in candidates:
            if self.d.lock_thread:  # re-check under the lock: a run may have just written
                yield Query(self.d.lock_thread, (thread_id,))
                again = yield Query(
                    f"SELECT MAX(created_at) FROM {CHECKPOINTS} WHERE thread_id = ?",
                    (thread_id,),
                    fetch=True,
                )
                newest = again[0][0] if again else None
                if newest is None or newest >= cutoff:
                    continue
            yield from self.delete_thread(thread_id)
            expired.append(thread_id)
        return expired, len(candidates) >= batch

    def stored_bytes(self, thread_id: str | None) -> Op[int]:
        where, params = ("", []) if thread_id is None else (" WHERE thread_id = ?", [thread_id])
        n = self.d.blob_len
        sql = (
            f"SELECT (SELECT COALESCE(SUM({n}(checkpoint) + {self.d.metadata_len}), 0) "
            f"FROM {CHECKPOINTS}{where}), "
            f"(SELECT COALESCE(SUM({n}(blob)), 0) FROM {BLOBS}{where}), "
            f"(SELECT COALESCE(SUM({n}(blob)), 0) FROM {WRITES}{where})"
        )
        rows = yield Query(sql, params * 3, fetch=True)
        return int(sum(rows[0])) if rows else 0


def _bytes(blob: Any) -> bytes | None:
    return bytes(blob) if isinstance(blob, memoryview | bytearray) else blob


def _root_key(key: tuple[Any, ...], row: StoredBlob) -> tuple[Any, ...]:
    """Key of the full row a stored value's chain starts at (its own key if it is full)."""
    return (*key[:-1], row.root_version or row.base_version or key[-1])


def _blob_rows(rows: Rows | None) -> Iterable[tuple[tuple[Any, ...], StoredBlob]]:
    for thread_id, ns, channel, version, typ, blob, base, root in rows or ():
        yield (thread_id, ns, channel, version), StoredBlob(typ, _bytes(blob), base, root)


def _load_metadata(raw: Any, where: str) -> dict[str, Any]:
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise CorruptCheckpointError(
                f"Stored metadata of {where} is not valid JSON ({exc}); the row is damaged."
            ) from exc
    if not isinstance(raw, dict):
        raise CorruptCheckpointError(
            f"Stored metadata of {where} is not a JSON object; the row is damaged."
        )
    return raw
