"""The SQL core's writes, as generators of ``Query``: ``put`` (prepared outside the
transaction by ``prepare_put``), ``put_writes``, and ``settle`` at the end of a run.

Why apart from the reads (``read``): what to store and when a write must be refused is
decided here alone - which channels get a row (those in ``new_versions``), whether a list
is stored whole or as the items appended to a base row (``_values.delta``), the conflict
rule's head check - and none of it decodes a stored checkpoint. ``SqlWrites`` is a base of
``core.SqlCore``.

Round trips: ``put`` is one batch - on PostgreSQL one round trip (pipeline mode) of two
statements, the thread's write lock and a single statement whose data-modifying ``WITH``
clauses check and insert; on SQLite (inside ``BEGIN IMMEDIATE``) a status query and the
conditional inserts. The inserts include the thread's row of ``threadloom_threads``
(``statements.thread_upsert``), which ``list_threads`` and ``expire_paused`` read. Every
insert is conditional on the same two checks - the head check and the existence of every
delta's base row - so when either fails nothing is written and the status row says which
(a missing base, i.e. a stale delta cache, is retried with whole values; a stale head
raises ``CheckpointConflictError``). ``put_writes`` is one batch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.checkpoint._sql.base import SqlBase
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    WRITES,
    Batch,
    Op,
    Query,
    chunks,
    thread_upsert,
    values_cte,
)
from threadloom.checkpoint._stored.decode import SEALED_METADATA
from threadloom.checkpoint._stored.inline import inline_values
from threadloom.checkpoint._stored.records import (
    dump_metadata,
    make_config,
    thread_and_ns,
    timestamp,
)
from threadloom.checkpoint._values.chains import EMPTY, BlobKey, StoredBlob
from threadloom.checkpoint._values.delta import BlobPlan
from threadloom.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_id,
)
from threadloom.checkpoint.serde.place import checkpoint_place, value_place, write_place
from threadloom.errors import CheckpointConflictError

__all__ = ["PreparedPut", "SqlWrites"]

_MAX_DELTAS_PER_PUT = 64  # more list deltas in one put are stored whole (keeps SQL small)
_ATTEMPTS = 3  # put: as planned; bases re-checked; all values whole (always succeeds)


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
    stored: list[tuple[BlobPlan, str, bytes | None]] | None = None  # as written by ``put``
    relaxed: bool = False  # commit without waiting for the flush (``Dialect.relaxed_commit``)
    run_locked: bool = False  # this process holds the thread's run lock: no other writer
    inline: dict[str, Any] | None = None  # the values the row carries (``_stored.inline``)

    def config(self) -> dict[str, Any]:
        """The config ``put`` returns: the stored checkpoint's address."""
        return make_config(self.thread_id, self.ns, self.checkpoint["id"])

class SqlWrites(SqlBase):
    """The writing operations of ``core.SqlCore`` (see the module docstring)."""

    def prepare_put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
        *,
        relaxed: bool = False,
        run_locked: bool = False,
    ) -> PreparedPut:
        """Serialize outside the transaction, so the write lock is held only for I/O.

        ``relaxed``: commit without waiting for the flush, where the dialect can (the
        caller makes the write durable later, see ``RunGuard``). ``run_locked``: the
        caller holds the thread's run lock, so no other writer can come between the head
        check and the insert and the write lock is not needed."""
        thread_id, ns = thread_and_ns(config)
        parent_id = get_checkpoint_id(config) or None  # "" means "no parent" too
        metadata_json = dump_metadata(metadata)
        stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        inline = None if self._binds else self._inline(thread_id, ns, parent_id, checkpoint,
                                                       new_versions)  # fmt: skip
        if inline:
            stored["channel_values"] = inline
        if self._binds:  # the metadata column stays JSON (filters): seal a copy to check it
            stored[SEALED_METADATA] = json.loads(metadata_json)
        place = checkpoint_place(thread_id, ns, checkpoint["id"])
        cp_type, cp_blob = self._dumps_at(stored, place)
        plans = self.cache.plan(
            thread_id, ns, parent_id, checkpoint["channel_values"], new_versions
        )
        if sum(plan.is_delta for plan in plans) > _MAX_DELTAS_PER_PUT:
            plans = [plan.as_full() if plan.is_delta else plan for plan in plans]
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
            blobs=[self._dumped(thread_id, ns, plan) for plan in plans],
            inline=inline,
            relaxed=relaxed,
            run_locked=run_locked,
        )

    def _inline(
        self,
        thread_id: str,
        ns: str,
        parent_id: str | None,
        checkpoint: Checkpoint,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        """The values the checkpoint's row carries, read back with it rather than by
        version (``_stored.inline``): the new versions' as given, the others' as stored
        for their version. (Not called with a serializer that binds values to their
        place: each value is then sealed to its own row, which a reader checks.)"""
        values, versions = checkpoint["channel_values"], checkpoint["channel_versions"]
        inline = {
            channel: value
            for channel, value in self.cache.carried_atoms(
                thread_id, ns, parent_id, versions
            ).items()
            if channel not in new_versions
        } if parent_id else {}  # fmt: skip
        fresh = {
            c: values[c] for c, v in new_versions.items() if c in values and versions.get(c) == v
        }
        inline.update(inline_values(fresh, versions))
        return inline

    def _dumped(
        self, thread_id: str, ns: str, plan: BlobPlan
    ) -> tuple[BlobPlan, str, bytes | None]:
        """``plan`` serialized: (plan, type, bytes); a plan whose print waits for its row
        (``DeltaCache.row_prints``: the saver's serializer is the one that fingerprints)
        is completed from the bytes."""
        typ, blob = self._dump_plan(thread_id, ns, plan)
        if plan.needs_row:
            plan = self.cache.finish_row(plan, None if blob is None else (typ, blob))
        return plan, typ, blob

    def _dump_plan(self, thread_id: str, ns: str, plan: BlobPlan) -> tuple[str, bytes | None]:
        if plan.value is EMPTY:
            return "empty", None
        place = value_place(
            thread_id, ns, plan.channel, plan.version, plan.base_version, plan.root_version
        )
        return self._dumps_at(plan.payload, place)

    def put(self, p: PreparedPut, extra: Batch = ()) -> Op[dict[str, Any]]:
        """Store a prepared checkpoint; a run's ``loop`` checkpoint on a stale head loses.

        ``extra``: statements sent at the end of the first attempt's batch, in the same
        round trip and transaction (the pending writes of ``put_with_writes``).

        The conflict rule applies to the puts of a run holding the thread's run lock
        (``p.run_locked``): the lock keeps other runs out, the head check catches a
        thread changed behind the run's back (deleted, pruned, written by a plain
        ``put``). A put outside a run is plain storage, as the saver contract has it.

        One batch (see the module docstring): the head check and the delta-base check are
        folded into every insert, so the check and the write see the same head, and a
        delta is never stored on a base that is gone. On
        Postgres the batch first takes the thread's write lock (an advisory transaction
        lock), so the checks and the inserts see the same head; SQLite's ``BEGIN
        IMMEDIATE`` serializes writers already.
        """
        blobs = p.blobs
        for attempt in range(_ATTEMPTS):
            batch, status_at = self._put_batch(p, blobs)
            results = yield (*batch, *extra) if attempt == 0 and extra else batch
            head, head_ok, bases_ok = results[status_at][0]
            if not head_ok:
                raise CheckpointConflictError(
                    f"Thread {p.thread_id!r} (namespace {p.ns!r}) moved on: this run "
                    f"continues from checkpoint {p.parent_id!r} but the newest checkpoint is "
                    f"now {head!r}: the thread was changed outside this run (by another "
                    "writer, a delete or a prune); nothing was written. Re-read the thread "
                    "with get_state() and decide again."
                )
            if bases_ok:
                break
            # The delta cache was stale (the thread was pruned or deleted elsewhere):
            # store whole what no longer has a base - or, at the last try, everything.
            if attempt == 0:
                blobs = yield from self._check_bases(p, blobs)
            else:
                blobs = [self._full(p, b) for b in blobs]
        p.stored = blobs
        return p.config()

    def remember_put(self, p: PreparedPut) -> None:
        """After ``put`` committed: what it wrote is what this process now knows of the
        thread (the delta cache's head, the value cache's rows)."""
        if p.stored is None:
            return
        self.values.add_rows(
            {
                (p.thread_id, p.ns, plan.channel, plan.version): StoredBlob(
                    typ, blob, plan.base_version, plan.root_version
                )
                for plan, typ, blob in p.stored
            }
        )
        self.cache.remember_put(
            p.thread_id,
            p.ns,
            p.checkpoint["id"],
            p.checkpoint["channel_versions"],
            [plan for plan, _, _ in p.stored],
            p.inline,
        )

    def settle(self, config: dict[str, Any]) -> Op[None] | None:
        """The end of a run (``DeltaCache.settle``): None when every list stored at the
        checkpoint ``config`` names is as stored; else the op that overwrites the rows of
        those that changed in place with their whole value (the same version: the
        checkpoints that name it now read the edit)."""
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            return None
        thread_id, ns = thread_and_ns(config)
        plans = self.cache.settle(thread_id, ns, checkpoint_id)
        return self._overwrite(thread_id, ns, plans) if plans else None

    def _overwrite(self, thread_id: str, ns: str, plans: list[BlobPlan]) -> Op[None]:
        rows: dict[BlobKey, StoredBlob] = {}
        queries = []
        for plan in plans:
            typ, blob = self._dump_plan(thread_id, ns, plan)
            rows[(thread_id, ns, plan.channel, plan.version)] = StoredBlob(typ, blob)
            queries.append(
                Query(
                    f"UPDATE {BLOBS} SET type = ?, blob = {self.d.blob_param}, "
                    "base_version = NULL, root_version = NULL WHERE thread_id = ? AND "
                    "checkpoint_ns = ? AND channel = ? AND version = ?",
                    (typ, blob, thread_id, ns, plan.channel, plan.version),
                )
            )
        yield tuple(queries)
        self.values.drop(rows)
        self.values.add_rows(rows)

    def store_whole(self, p: PreparedPut) -> None:
        """Make ``p`` store every list delta whole: for a write planned on a delta chain
        that changed before it ran (a write before it was stored whole on retry), whose
        planned chain root may no longer exist."""
        p.blobs = [self._full(p, b) for b in p.blobs]

    def _full(
        self, p: PreparedPut, blob: tuple[BlobPlan, str, bytes | None]
    ) -> tuple[BlobPlan, str, bytes | None]:
        plan = blob[0]
        if not plan.is_delta:
            return blob
        plan = plan.as_full()
        return (plan, *self._dump_plan(p.thread_id, p.ns, plan))

    def _put_batch(
        self, p: PreparedPut, blobs: list[tuple[BlobPlan, str, bytes | None]]
    ) -> tuple[Batch, int]:
        """The statements of one ``put`` attempt, and the index of its status query.

        Both checks - the conflict rule's head check and the delta-base check - guard
        every insert; the status query returns the head and both verdicts. Where the
        database has data-modifying ``WITH`` (Postgres) it is all one statement, the
        checks evaluated once; elsewhere (SQLite) a status query and conditional inserts.
        """
        t, ns, checkpoint_id = p.thread_id, p.ns, p.checkpoint["id"]
        head_query = (
            f"SELECT MAX(checkpoint_id) AS head FROM {CHECKPOINTS} "
            "WHERE thread_id = ? AND checkpoint_ns = ?"
        )
        one_statement = self.d.writable_ctes and len(blobs) * 8 < 30_000
        head, head_params = ("h.head", []) if one_statement else (f"({head_query})", [t, ns])
        head_ok, head_ok_params = "1 = 1", []
        if p.source == "loop" and p.run_locked:  # the conflict rule (see ``put``)
            if p.parent_id is None:
                head_ok = f"COALESCE({head} = ?, 1 = 1)"
                head_ok_params = [*head_params, checkpoint_id]
            else:
                head_ok = f"COALESCE({head} IN (?, ?), 1 = 0)"
                head_ok_params = [*head_params, p.parent_id, checkpoint_id]
        deltas = [plan for plan, _, _ in blobs if plan.is_delta]
        bases_ok = "1 = 1"
        bases_params: list[str | int | None] = []
        if deltas:
            pairs = " OR ".join("(channel = ? AND version = ?)" for _ in deltas)
            bases_ok = (
                f"(SELECT COUNT(*) FROM {BLOBS} WHERE thread_id = ? AND checkpoint_ns = ? "
                f"AND ({pairs})) = ?"
            )
            bases_params = [t, ns]
            for plan in deltas:
                bases_params += [plan.channel, plan.base_version]
            bases_params.append(len(deltas))

        blob_columns = (
            f"INSERT INTO {BLOBS} (thread_id, checkpoint_ns, channel, version, type, blob, "
            "base_version, root_version) "
        )
        blob_conflict = " ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING"
        one = f"(?, ?, ?, ?, ?, {self.d.blob_param}, ?, ?)"

        def blob_values(chunk: Sequence[tuple[BlobPlan, str, bytes | None]]) -> list[Any]:
            return [
                v
                for plan, typ, blob in chunk
                for v in (
                    t, ns, plan.channel, plan.version, typ, blob, plan.base_version,
                    plan.root_version,
                )
            ]  # fmt: skip

        cp_insert = (
            f"INSERT INTO {CHECKPOINTS} (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata, created_at) "
            f"SELECT ?, ?, ?, ?, ?, {self.d.blob_param}, {self.d.metadata_param}, ?"
        )
        cp_conflict = (
            " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET "
            "parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type, "
            "checkpoint = excluded.checkpoint, metadata = excluded.metadata, "
            "created_at = excluded.created_at"
        )
        cp_params = [
            t, ns, checkpoint_id, p.parent_id, p.cp_type, p.cp_blob, p.metadata_json,
            p.created_at,
        ]  # fmt: skip
        newest = [t, p.created_at, checkpoint_id]  # the thread's row (``THREADS``)

        queries: list[Query] = []
        if self.d.lock_thread and not p.run_locked:
            queries.append(Query(self.d.lock_thread, (t,)))
        if one_statement:
            # the commit mode is a column of ``s``, which every part reads: evaluated once,
            # before anything is written
            relax = f", {self.d.relaxed_commit} AS relaxed" if self._relax(p.relaxed) else ""
            sql = (
                f"WITH h AS ({head_query}), "
                f"s AS (SELECT head, {head_ok} AS head_ok, {bases_ok} AS bases_ok{relax} FROM h)"
            )
            params: list[Any] = [t, ns, *head_ok_params, *bases_params]
            if blobs:
                sql += (
                    f", b AS ({blob_columns}SELECT v.* FROM (VALUES "
                    f"{', '.join(one for _ in blobs)}) AS v, s WHERE s.head_ok AND "
                    f"s.bases_ok{blob_conflict})"
                )
                params += blob_values(blobs)
            sql += (
                f", c AS ({cp_insert} FROM s WHERE s.head_ok AND s.bases_ok{cp_conflict}), "
                f"n AS ({thread_upsert(' FROM s WHERE s.head_ok AND s.bases_ok')}) "
                "SELECT head, CASE WHEN head_ok THEN 1 ELSE 0 END, "
                "CASE WHEN bases_ok THEN 1 ELSE 0 END FROM s"
            )
            queries.append(Query(sql, [*params, *cp_params, *newest], fetch=True))
            return tuple(queries), len(queries) - 1

        queries[:0] = self._commit_mode(p.relaxed)
        status_at = len(queries)
        where = f" WHERE {head_ok} AND {bases_ok}"
        where_params = head_ok_params + bases_params
        queries.append(
            Query(
                f"SELECT {head}, CASE WHEN {head_ok} THEN 1 ELSE 0 END, "
                f"CASE WHEN {bases_ok} THEN 1 ELSE 0 END",
                [*head_params, *where_params],
                fetch=True,
            )
        )
        for chunk in chunks(blobs, 8, reserve=len(where_params)):
            queries.append(
                Query(
                    f"{blob_columns}SELECT * FROM (VALUES {', '.join(one for _ in chunk)}) "
                    f"AS v{where}{blob_conflict}",
                    [*blob_values(chunk), *where_params],
                )
            )
        cp_query = Query(cp_insert + where + cp_conflict, [*cp_params, *where_params])
        if self.d.changes:  # the thread's row if the checkpoint's insert wrote one
            queries += (cp_query, Query(thread_upsert(f" WHERE {self.d.changes} > 0"), newest))
        else:  # the thread's row on the same checks
            queries += (Query(thread_upsert(where), [*newest, *where_params]), cp_query)
        return tuple(queries), status_at

    def _check_bases(
        self, p: PreparedPut, blobs: list[tuple[BlobPlan, str, bytes | None]]
    ) -> Op[list[tuple[BlobPlan, str, bytes | None]]]:
        """Store a delta whole when its base row is gone (the cache was stale)."""
        bases = sorted(
            {
                (p.thread_id, p.ns, plan.channel, plan.base_version)
                for plan, _, _ in blobs
                if plan.is_delta
            }
        )
        if not bases:
            return blobs
        present = yield from self._fetch_keys(bases)
        return [
            self._full(p, b)
            if b[0].is_delta and (p.thread_id, p.ns, b[0].channel, b[0].base_version) not in present
            else b
            for b in blobs
        ]

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
        *,
        relaxed: bool = False,
    ) -> Op[None]:
        """Regular writes are kept once per (task, index); special ones are replaced.

        ``relaxed``: as for ``prepare_put``."""
        inserts = self.write_queries(config, writes, task_id, task_path, relaxed=relaxed)
        if inserts:
            yield inserts  # one round trip; atomic
        return None

    def write_queries(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
        *,
        relaxed: bool = False,
    ) -> Batch:
        """The statements of ``put_writes`` (none when there is nothing to write)."""
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise ValueError("put_writes needs a checkpoint_id in config['configurable'].")
        regular: dict[int, tuple[Any, ...]] = {}
        special: dict[int, tuple[Any, ...]] = {}
        for idx, (channel, value) in enumerate(writes):
            key = WRITES_IDX_MAP.get(channel, idx)
            typ, blob = self._dumps_at(
                value, write_place(thread_id, ns, checkpoint_id, task_id, key, channel)
            )
            row = (thread_id, ns, checkpoint_id, task_id, key, channel, typ, blob, task_path)
            if key < 0:
                special[key] = row  # the last one wins, as in the memory saver
            else:
                regular.setdefault(key, row)
        insert = (
            f"INSERT INTO {WRITES} (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, "
            "channel, type, blob, task_path) "
        )
        conflict = " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) "
        one = f"(?, ?, ?, ?, ?, ?, ?, {self.d.blob_param}, ?)"
        relax = self._relax(relaxed)
        inserts: list[Query] = []
        for rows, action in (
            (list(regular.values()), "DO NOTHING"),
            (
                list(special.values()),
                "DO UPDATE SET channel = excluded.channel, type = excluded.type, "
                "blob = excluded.blob, task_path = excluded.task_path",
            ),
        ):
            for chunk in chunks(rows, 9):
                values = f"VALUES {', '.join(one for _ in chunk)}"
                if relax and not inserts:  # the commit mode, folded into the first insert
                    values = (
                        f"SELECT v.* FROM ({values}) AS v, (SELECT {self.d.relaxed_commit}) AS m"
                    )
                inserts.append(
                    Query(insert + values + conflict + action, [v for row in chunk for v in row])
                )
        return tuple(inserts)

    def _relax(self, relaxed: bool) -> bool:
        return relaxed and self.d.relaxed_commit is not None

    def _commit_mode(self, relaxed: bool) -> list[Query]:
        """The statement starting a relaxed write's transaction, if any."""
        if self._relax(relaxed):
            return [Query(f"SELECT {self.d.relaxed_commit}", ())]
        return []
