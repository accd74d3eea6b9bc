"""The SQL savers' algorithm, written once for SQLite and Postgres, sync and async.

Every method of ``SqlCore`` that touches the database is a generator of ``Query`` or
``Batch`` (see ``statements``): it decides what to read and write, a backend driver executes
it. So what to store, how a stale head is detected, how delta chains are rebuilt and what
a prune may delete are the same code on every backend, with no I/O of their own.

Round trips on the hot path (what a graph run and ``get_state`` do):

* ``get_tuple`` is one statement (the checkpoint row and its pending writes together);
  channel values come from the saver's ``ValueCache`` when it holds them, else from one
  more statement fetching the rows and their delta chains.
* ``put`` is one batch: on Postgres one round trip (pipeline mode) of two statements,
  the thread's write lock and a single statement whose data-modifying ``WITH`` clauses
  check and insert; on SQLite (inside ``BEGIN IMMEDIATE``) a status query and the
  conditional inserts. Every insert is conditional on the same two checks - the head
  check of the conflict rule and the existence of every delta's base row - so when
  either fails nothing is written and the status row says which (a missing base, i.e.
  a stale delta cache, is retried with whole values; a stale head raises
  ``CheckpointConflictError``). No SELECT-then-INSERT on the way.
* ``put_writes`` is one batch.

Each of these steps is self-contained, so the drivers may run them without an enclosing
transaction (each statement or batch is atomic on its own); housekeeping (``prune``,
``delete_thread``, ``expire``, ``migrate``: ``housekeeping``, a base of ``SqlCore``) runs as
one transaction (on Postgres one pipeline: a round trip per statement whose rows it
needs, plus one).

Storage layout (tables in ``statements``): a checkpoint row without values (serialized with the
saver's serde) and JSON metadata; one blob row per (thread, namespace, channel, version)
written only for channels in ``new_versions`` - either the whole value, or, for a list
that grew, the appended items plus ``base_version``/``root_version`` (``_values.delta``); one row
per pending write.

Damaged rows raise ``CorruptCheckpointError`` naming the thread, namespace and checkpoint;
decoding goes through the serializer, which never runs code named by stored bytes. A
serializer that binds values to their place (``EncryptedSerializer``) is given each row's
place (``serde.place``: the checkpoint row, the value's (channel, version, base, root),
the write's (checkpoint, task, index, channel)), so a row copied elsewhere is refused;
``copy_thread`` then reseals the copies for their new thread (``reseal``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from threadloom.checkpoint._sql.housekeeping import SqlHousekeeping
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    WRITES,
    Batch,
    Dialect,
    Op,
    Query,
    chunks,
    values_cte,
)
from threadloom.checkpoint._stored.decode import (
    SEALED_METADATA,
    ValueOwners,
    as_bytes,
    authentic_metadata,
    decode_stored,
    load_metadata,
    quick_json_loads,
    rebuild,
    root_key,
    value_name,
    write_name,
)
from threadloom.checkpoint._stored.records import (
    dump_metadata,
    make_config,
    thread_and_ns,
    timestamp,
)
from threadloom.checkpoint._stored.shape import check_checkpoint, well_shaped
from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.chains import (
    EMPTY,
    Resolved,
    StoredBlob,
    shared_copy,
)
from threadloom.checkpoint._values.delta import BlobPlan, DeltaCache
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
from threadloom.checkpoint.serde.place import (
    binds,
    checkpoint_place,
    dumps_at,
    value_place,
    write_place,
)
from threadloom.errors import CheckpointConflictError

__all__ = ["CorruptCheckpointError", "ListedPage", "PreparedPut", "SqlCore"]

Rows = list[tuple[Any, ...]]

_CP_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)
_BLOB_COLUMNS = (
    "b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.blob, b.base_version, "
    "b.root_version"
)
_WRITE_COLUMNS = (
    "x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.type, x.blob, x.channel, x.idx"
)
_MAX_DELTAS_PER_PUT = 64  # more list deltas in one put are stored whole (keeps SQL small)
_ATTEMPTS = 3  # put: as planned; bases re-checked; all values whole (always succeeds)

Key = tuple[Any, ...]
_CP_KEY = ("thread_id", "checkpoint_ns", "checkpoint_id")


def _with_writes(inner: str, d: Dialect) -> str:
    """``inner`` (a query for checkpoint rows) plus their pending writes, in one statement.

    Rows come back tagged: ``0`` for a checkpoint (columns as ``_CP_COLUMNS``), ``1`` for
    a write (thread, namespace, checkpoint, task id, type, blob, -, channel), checkpoints
    first, newest first, then the writes in (task path, task id, index) order.
    """
    return (
        f"WITH c AS ({inner}) "
        "SELECT 0, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
        "checkpoint, metadata, NULL, NULL, NULL FROM c UNION ALL "
        "SELECT 1, x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.type, x.blob, "
        f"NULL, x.channel, x.task_path, x.idx FROM {d.probe(WRITES, 'x', 'c', _CP_KEY, one=False)} "
        "ORDER BY 1, 4 DESC, 2 DESC, 3 DESC, 10, 5, 11"
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
    stored: list[tuple[BlobPlan, str, bytes | None]] | None = None  # as written by ``put``
    relaxed: bool = False  # commit without waiting for the flush (``Dialect.relaxed_commit``)
    run_locked: bool = False  # this process holds the thread's run lock: no other writer

    def config(self) -> dict[str, Any]:
        """The config ``put`` returns: the stored checkpoint's address."""
        return make_config(self.thread_id, self.ns, self.checkpoint["id"])


_new_tuple = tuple.__new__  # a ``CheckpointTuple`` without its Python-level ``__new__``


class ListedPage:
    """Checkpoint rows read by one query, their checkpoints decoded and their values
    found, made into ``CheckpointTuple``s as they are iterated.

    A listing read through (``list(None)`` over every thread) then holds one row's
    metadata, configs and tuple at a time rather than a page of them, which the garbage
    collector would otherwise walk and promote to its older generations on every page.
    For the same reason the page keeps what it decoded in flat lists (the rows, their
    checkpoints, every row's value keys one after the other and where each row's end),
    not in containers of its own per row: each container alive across the page counts
    towards the collector's next pass and is promoted by it. A damaged metadata column
    raises when its row is reached (a page built at once raised before handing out any
    of its rows). Iterate it once: its tuples take the decoded checkpoints and values as
    their own.

    ``checked``: the metadata of the rows read by the checked path, by row index;
    ``values``: each value key's value; ``resolved``: the same with their chain facts,
    for ``items(mine=True)`` (``get_tuple``), None for a listing."""

    __slots__ = (
        "_checked", "_checkpoints", "_ends", "_keys", "_load_row", "_resolved", "_rows",
        "_values", "_writes",
    )  # fmt: skip

    def __init__(
        self,
        rows: Rows,
        checkpoints: list[dict[str, Any]],
        checked: dict[int, dict[str, Any]],
        keys: tuple[list[Key], list[int]],
        values: Mapping[Key, Any],
        writes: Mapping[tuple[str, str, str], list[PendingWrite]],
        load_row: Callable[[tuple[Any, ...]], tuple[dict[str, Any], dict[str, Any]]],
        resolved: Mapping[Key, Resolved] | None = None,
    ) -> None:
        self._rows = rows
        self._checkpoints = checkpoints
        self._checked = checked
        self._keys, self._ends = keys
        self._values = values
        self._resolved = resolved
        self._writes = writes
        self._load_row = load_row

    def __len__(self) -> int:
        return len(self._rows)

    def keyset(self) -> tuple[str, str, str]:
        """(checkpoint id, thread, namespace) of the last row: where the next page starts."""
        thread_id, ns, checkpoint_id = self._rows[-1][:3]
        return (checkpoint_id, thread_id, ns)

    def __iter__(self) -> Iterator[CheckpointTuple]:
        values, writes, load_row = self._values, self._writes, self._load_row
        checkpoints, checked, keys, ends = self._checkpoints, self._checked, self._keys, self._ends
        loads = quick_json_loads  # what it refuses takes ``load_row``, which reads it
        value_of = values.get
        handed: set[Key] = set()
        start = 0
        for i, row in enumerate(self._rows):
            thread_id, ns, checkpoint_id, parent_id, _, _, metadata = row
            checkpoint = checkpoints[i]
            meta = checked.get(i) if checked else None
            if meta is None:
                if type(metadata) is str:
                    try:
                        meta = loads(metadata)
                    except ValueError:
                        meta = None
                elif type(metadata) is dict:  # a driver that decodes JSON columns itself
                    meta = metadata
                if type(meta) is not dict:
                    checkpoint, meta = load_row(row)  # raises, naming the row
            channel_values: dict[str, Any] = {}
            end = ends[i]
            while start < end:
                key = keys[start]
                start += 1
                value = value_of(key, EMPTY)
                if value is not EMPTY:
                    if key in handed:  # checkpoints sharing a version get their own lists
                        value = shared_copy(value)
                    else:
                        handed.add(key)
                    channel_values[key[2]] = value
            checkpoint["channel_values"] = channel_values  # decoded just now: ours to fill
            yield _new_tuple(CheckpointTuple, (
                {"configurable": {  # make_config, inline: a listing makes two a row
                    "thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id
                }},
                checkpoint,
                meta,
                {"configurable": {
                    "thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent_id
                }} if parent_id else None,
                writes.get((thread_id, ns, checkpoint_id)) or [] if writes else [],
            ))  # fmt: skip

    def items(self, *, mine: bool) -> Iterator[tuple[CheckpointTuple, dict[str, Resolved]]]:
        """Each tuple, with (``mine``) the values handed to it, by channel, with their
        chain facts (a page read with them: ``get_tuple``'s)."""
        resolved = self._resolved or {}
        keys, ends = self._keys, self._ends
        for i, tup in enumerate(self):
            theirs: dict[str, Resolved] = {}
            if mine:
                values = tup.checkpoint["channel_values"]
                for key in keys[ends[i - 1] if i else 0 : ends[i]]:
                    got = resolved.get(key)
                    if got is not None and key[2] in values:
                        theirs[key[2]] = Resolved(values[key[2]], got.root, got.depth)
            yield tup, theirs


class SqlCore(SqlHousekeeping):
    """The saver operations as generators of ``Query`` (see the module docstring)."""

    def __init__(
        self,
        dialect: Dialect,
        serde: SerializerProtocol,
        cache: DeltaCache,
        values: ValueCache | None = None,
    ) -> None:
        self.d = dialect
        self.serde = serde
        self._dumps_at = dumps_at(serde)  # place-bound where the serializer binds
        self._binds = binds(serde)
        self.cache = cache
        self.values = values if values is not None else ValueCache(max_bytes=0)

    # -- reading -------------------------------------------------------------------------

    def get_tuple(
        self, config: dict[str, Any], ready: Mapping[Key, Resolved] | None = None
    ) -> Op[CheckpointTuple | None]:
        """The checkpoint ``config`` names, or the newest; ``ready``: values the caller
        already holds (see ``ahead_keys``), filled in at the latest before the first
        query's rows are sent back."""
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        base = f"SELECT {_CP_COLUMNS} FROM {CHECKPOINTS} WHERE thread_id = ? AND checkpoint_ns = ?"
        if checkpoint_id is not None:
            inner, params = base + " AND checkpoint_id = ?", (thread_id, ns, checkpoint_id)
        else:
            inner, params = base + " ORDER BY checkpoint_id DESC LIMIT 1", (thread_id, ns)
        rows = yield Query(_with_writes(inner, self.d), params, fetch=True)
        checkpoints, writes = self._split(rows)
        if not checkpoints:
            return None
        loaded = yield from self._load(checkpoints, writes, ready)
        [(tup, resolved)] = loaded.items(mine=True)
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
    ) -> Op[ListedPage]:
        """Up to ``limit`` checkpoints, newest first, strictly after the keyset ``after``
        (their tuples are made as the page is iterated)."""
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
        rest = f" FROM {CHECKPOINTS}"
        if where:
            rest += " WHERE " + " AND ".join(f"({w})" for w in where)
        rest += " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ?"
        params.append(limit)
        # Two statements in one batch: the page, read in its index's order, and the pending
        # writes of the page's checkpoints (the page's keys read again, index only). One
        # statement tagging both kinds of rows (``_with_writes``) must sort the page with
        # its writes: that sort cost more than the second read of the keys.
        found = f"SELECT thread_id, checkpoint_ns, checkpoint_id{rest}"
        rows, write_rows = yield (
            Query(f"SELECT {_CP_COLUMNS}{rest}", params, fetch=True),
            Query(
                f"WITH c AS ({found}) SELECT {_WRITE_COLUMNS} FROM "
                f"{self.d.probe(WRITES, 'x', 'c', _CP_KEY, one=False)} "
                "ORDER BY x.task_path, x.task_id, x.idx",
                params,
                fetch=True,
            ),
        )
        return (yield from self._load(rows or [], self._writes(write_rows), listing=True))

    def _split(
        self, rows: Rows | None
    ) -> tuple[Rows, dict[tuple[str, str, str], list[PendingWrite]]]:
        """Checkpoint rows and decoded pending writes of a ``_with_writes`` result."""
        checkpoints: Rows = []
        writes: Rows = []
        for row in rows or ():
            if row[0] == 0:
                checkpoints.append(row[1:8])
            else:
                writes.append(row[1:7] + row[8:9] + row[10:])
        return checkpoints, self._writes(writes)

    def _writes(self, rows: Rows | None) -> dict[tuple[str, str, str], list[PendingWrite]]:
        """Pending writes, decoded, by checkpoint, from rows of ``_WRITE_COLUMNS`` (in
        their order within each checkpoint)."""
        writes: dict[tuple[str, str, str], list[PendingWrite]] = defaultdict(list)
        for thread_id, ns, checkpoint_id, task_id, typ, blob, channel, idx in rows or ():
            value = decode_stored(
                self.serde,
                (typ, blob),
                partial(write_name, task_id, channel, thread_id, ns, checkpoint_id),
                write_place(thread_id, ns, checkpoint_id, task_id, idx, channel),
            )
            writes[(thread_id, ns, checkpoint_id)].append((task_id, channel, value))
        return writes

    def ahead_keys(self, config: dict[str, Any]) -> list[Key]:
        """The value keys a read of the thread's newest checkpoint most likely needs (those
        of the head this process last wrote or read), for ``get_tuple(ready=...)``."""
        thread_id, ns = thread_and_ns(config)
        versions = self.cache.head_versions(thread_id, ns)
        return [(thread_id, ns, channel, version) for channel, version in versions.items()]

    def _load(
        self,
        rows: Rows,
        writes: dict[tuple[str, str, str], list[PendingWrite]],
        ready: Mapping[Key, Resolved] | None = None,
        *,
        listing: bool = False,
    ) -> Op[ListedPage]:
        """Turn checkpoint rows into tuples: decode them, find their values (``ready``,
        else in the value cache, else in the database with their delta chains), attach
        ``writes`` (the tuples themselves are made by the ``ListedPage``, as it is
        iterated). ``listing``: values are not frozen into the value cache (rows are
        kept, for the next page's chains)."""
        checkpoints: list[dict[str, Any]] = []
        checked: dict[int, dict[str, Any]] = {}
        keys: list[Key] = []
        ends: list[int] = []
        owners: dict[Key, str] = {}
        # The common case per row, without building error texts or places: a serializer
        # that does not bind values to their place, a checkpoint of the right shape, JSON
        # metadata. Anything else (or a failure) takes the path that names the row.
        plain = None if self._binds else self.serde.loads_typed
        loader = getattr(self.serde, "payload_loader", None)
        unpack = loader() if plain is not None and loader is not None else None
        own, add_key = owners.setdefault, keys.append
        for i, row in enumerate(rows):
            thread_id, ns, checkpoint_id, parent_id, typ, blob, metadata = row
            checkpoint = None
            if plain is not None:
                try:
                    if unpack is not None and typ == "msgpack" and type(blob) is bytes:
                        checkpoint = unpack(blob)
                    elif typ != "empty":
                        checkpoint = plain((typ, as_bytes(blob)))
                except Exception:
                    checkpoint = None
            if checkpoint is None or not well_shaped(checkpoint) or SEALED_METADATA in checkpoint:
                checkpoint, checked[i] = self._load_row(row)
            for channel, version in checkpoint["channel_versions"].items():
                key = (thread_id, ns, channel, str(version))
                add_key(key)
                own(key, checkpoint_id)  # the first checkpoint of the page that needs it
            ends.append(len(keys))
            checkpoints.append(checkpoint)

        blob_rows: dict[Key, StoredBlob] = {}
        owner_of = ValueOwners(owners, blob_rows)

        def decode(key: Key, row: StoredBlob) -> Any:
            if plain is not None:
                try:  # the common case, without the error text and place
                    blob = row.blob
                    if unpack is not None and row.type == "msgpack" and type(blob) is bytes:
                        return unpack(blob)
                    if row.type != "empty":
                        return plain((row.type, as_bytes(blob)))
                except Exception:
                    pass  # decoded again below, for the error naming the value
            return decode_stored(
                self.serde,
                (row.type, row.blob),
                lambda: value_name(key, owner_of(key)),
                value_place(*key, row.base_version, row.root_version),
            )

        resolved: dict[Key, Resolved] | None = None
        if listing:
            values, missing = self.values.listed(owners, decode)
        elif ready:
            resolved, missing = self.values.lookup([k for k in owners if k not in ready], decode)
            resolved.update((k, ready[k]) for k in owners if k in ready)
        else:
            resolved, missing = self.values.lookup(owners, decode)
        if missing:
            blob_rows.update((yield from self._fetch_values(missing)))
            # a chain row is named after a checkpoint whose value is built on it
            for k, r in blob_rows.items():
                if r.base_version is not None and k in owners:
                    owner_of.via_chain[root_key(k, r)] = owners[k]
            fresh = rebuild(blob_rows, missing, decode, owner_of)
            if resolved is None:
                self.values.add_rows(blob_rows)
                values.update((k, got.value) for k, got in fresh.items())
            else:
                self.values.add_resolved(blob_rows, fresh)
                resolved.update(fresh)
        if resolved is not None:
            values = {k: got.value for k, got in resolved.items()}
        return ListedPage(
            rows, checkpoints, checked, (keys, ends), values, writes, self._load_row, resolved
        )

    def _load_row(self, row: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A checkpoint row's checkpoint and metadata, checked, errors naming the row."""
        thread_id, ns, checkpoint_id, _, typ, blob, metadata = row
        where = f"thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
        place = checkpoint_place(thread_id, ns, checkpoint_id)
        checkpoint = decode_stored(self.serde, (typ, blob), f"checkpoint of {where}", place)
        sealed = checkpoint.pop(SEALED_METADATA, None) if isinstance(checkpoint, dict) else None
        check_checkpoint(checkpoint, where)
        meta = load_metadata(metadata, where)
        if sealed is not None:
            meta = authentic_metadata(meta, sealed, where)
        return checkpoint, meta

    def _fetch_values(self, keys: list[Key]) -> Op[dict[Key, StoredBlob]]:
        """The rows of ``keys`` and every row of the delta chains they extend, in one
        batch (one statement per chunk of keys)."""
        cols = ("thread_id", "checkpoint_ns", "channel", "version")
        queries = []
        for chunk in chunks(keys, 4):
            cte = values_cte("w", cols, chunk)
            chain = (
                f"SELECT {_BLOB_COLUMNS} FROM {BLOBS} b JOIN r ON b.thread_id = r.thread_id "
                "AND b.checkpoint_ns = r.checkpoint_ns AND b.channel = r.channel AND "
            )
            sql = (
                f"{cte.sql}, k AS (SELECT {_BLOB_COLUMNS} FROM "
                f"{self.d.probe(BLOBS, 'b', 'w', cols, one=True)}), "
                "r AS (SELECT DISTINCT thread_id, checkpoint_ns, channel, "
                "COALESCE(root_version, base_version) AS root FROM k "
                "WHERE base_version IS NOT NULL) "
                "SELECT * FROM k "
                f"UNION ALL {chain}b.root_version = r.root "
                f"UNION ALL {chain}b.version = r.root"
            )
            queries.append(Query(sql, cte.params, fetch=True))
        found: dict[Key, StoredBlob] = {}
        if not queries:
            return found
        results = yield tuple(queries)
        for rows in results:
            found.update(_blob_rows(rows))
        return found

    # -- writing -----------------------------------------------------------------------

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
            relaxed=relaxed,
            run_locked=run_locked,
        )

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
        rows: dict[Key, StoredBlob] = {}
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
        bases_ok, bases_params = "1 = 1", []
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
                f", c AS ({cp_insert} FROM s WHERE s.head_ok AND s.bases_ok{cp_conflict}) "
                "SELECT head, CASE WHEN head_ok THEN 1 ELSE 0 END, "
                "CASE WHEN bases_ok THEN 1 ELSE 0 END FROM s"
            )
            queries.append(Query(sql, [*params, *cp_params], fetch=True))
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
        queries.append(Query(cp_insert + where + cp_conflict, [*cp_params, *where_params]))
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


def _blob_rows(rows: Rows | None) -> Iterable[tuple[tuple[Any, ...], StoredBlob]]:
    for thread_id, ns, channel, version, typ, blob, base, root in rows or ():
        yield (thread_id, ns, channel, version), StoredBlob(typ, as_bytes(blob), base, root)
