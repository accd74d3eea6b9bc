"""The SQL core's reads, as generators of ``Query``: ``get_tuple``, a page of ``list``,
and the values a checkpoint names with their delta chains.

Why apart from the writes (``write``): a read decides nothing about what is stored - it
turns rows into ``CheckpointTuple``s, taking values from the value cache where it can - and
the writes never read a checkpoint back. ``SqlReads`` is a base of ``core.SqlCore``.

Round trips: ``get_tuple`` is one statement (the checkpoint row and its pending writes
together, ``_with_writes``); channel values come from the saver's ``ValueCache`` when it
holds them, else from one more statement per chunk of keys fetching the rows and every row
of their delta chains (``_fetch_values``). A page of ``list`` is the same two steps for up
to a page of checkpoints. Damaged rows raise ``CorruptCheckpointError`` naming the thread,
namespace and checkpoint (``_load_row``); a serializer that binds values to their place is
given each row's place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any

from threadloom.checkpoint._sql.base import SqlBase
from threadloom.checkpoint._sql.statements import (
    BLOBS,
    CHECKPOINTS,
    WRITES,
    Dialect,
    Op,
    Query,
    Rows,
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
from threadloom.checkpoint._stored.inline import inline_values
from threadloom.checkpoint._stored.records import thread_and_ns
from threadloom.checkpoint._stored.shape import (
    check_checkpoint,
    shaped_checkpoints,
    shaped_value_keys,
    value_keys,
)
from threadloom.checkpoint._values.chains import (
    EMPTY,
    BlobKey,
    Resolved,
    StoredBlob,
    shared_copy,
)
from threadloom.checkpoint.base import CheckpointTuple, PendingWrite, get_checkpoint_id
from threadloom.checkpoint.serde.place import checkpoint_place, value_place, write_place

__all__ = ["ListedPage", "SqlReads"]

_MSGPACK = "msgpack"
# The type column as NULL where it is "msgpack" (nearly every row; the column is NOT NULL):
# None costs the driver nothing, a string a row is ~3% of a listing over SQLite.
_CP_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    f"NULLIF(type, '{_MSGPACK}') AS type, checkpoint, metadata"
)
_BLOB_COLUMNS = (
    "b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.blob, b.base_version, "
    "b.root_version"
)
_WRITE_COLUMNS = (
    "x.thread_id, x.checkpoint_ns, x.checkpoint_id, x.task_id, x.type, x.blob, x.channel, x.idx"
)
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
    ``values``: the value of each value key, in the order of the keys (``EMPTY`` where
    none was found); ``resolved``: the values with their chain facts, by key, for
    ``items(mine=True)`` (``get_tuple``), None for a listing; ``shared``: the value keys
    more than one row of the page names (each row after the first gets a copy), or
    None."""

    __slots__ = (
        "_checked", "_checkpoints", "_ends", "_keys", "_load_row", "_resolved", "_rows",
        "_shared", "_values", "_writes",
    )  # fmt: skip

    def __init__(
        self,
        rows: Rows,
        checkpoints: list[dict[str, Any]],
        checked: dict[int, dict[str, Any]],
        keys: tuple[list[BlobKey], list[int]],
        values: list[Any],
        writes: Mapping[tuple[str, str, str], list[PendingWrite]],
        load_row: Callable[[tuple[Any, ...]], tuple[dict[str, Any], dict[str, Any]]],
        resolved: Mapping[BlobKey, Resolved] | None = None,
        shared: set[BlobKey] | None = None,
    ) -> None:
        self._rows = rows
        self._checkpoints = checkpoints
        self._checked = checked
        self._keys, self._ends = keys
        self._values = values
        self._resolved = resolved
        self._writes = writes
        self._load_row = load_row
        self._shared = shared

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
        shared = self._shared
        handed: set[BlobKey] = set()
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
            # the values the row carries (``_stored.inline``), then those found by key
            channel_values: dict[str, Any] = checkpoint.get("channel_values") or {}
            end = ends[i]
            while start < end:
                value = values[start]
                if value is not EMPTY:
                    key = keys[start]
                    if shared and key in shared:  # rows sharing a version: lists of their own
                        if key in handed:
                            value = shared_copy(value)
                        else:
                            handed.add(key)
                    channel_values[key[2]] = value
                start += 1
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

class SqlReads(SqlBase):
    """The reading operations of ``core.SqlCore`` (see the module docstring)."""

    def get_tuple(
        self, config: dict[str, Any], ready: Mapping[BlobKey, Resolved] | None = None
    ) -> Op[CheckpointTuple | None]:
        """The checkpoint ``config`` names, or the newest; ``ready``: values the caller
        already holds (see ``ahead_keys``), filled in at the latest before the first
        query's rows are sent back."""
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        base = f"SELECT {_CP_COLUMNS} FROM {CHECKPOINTS} WHERE thread_id = ? AND checkpoint_ns = ?"
        params: tuple[str, ...]
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
            versions = tup.checkpoint["channel_versions"]
            self.cache.remember_loaded(
                thread_id, ns, tup.checkpoint["id"], versions, resolved,
                inline_values(tup.checkpoint["channel_values"], versions),
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
        if self.d.in_process:
            return (yield from self._list_page_in_process(where, params, limit, after))
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

    def _list_page_in_process(
        self, where: list[str], params: list[Any], limit: int, after: tuple[str, str, str] | None
    ) -> Op[ListedPage]:
        """``list_page`` where a statement may wait for the one before (SQLite): the page,
        then the pending writes of its checkpoints - the rows ``where`` selects between
        the page's first and last keys, which are the page's rows - without reading its
        keys again into a table of their own to join (as ``LIMIT`` would need)."""
        page_where = list(where)
        page_params = list(params)
        if after is not None:
            page_where.append("(checkpoint_id, thread_id, checkpoint_ns) < (?, ?, ?)")
            page_params += after
        sql = f"SELECT {_CP_COLUMNS} FROM {CHECKPOINTS}"
        if page_where:
            sql += " WHERE " + " AND ".join(f"({w})" for w in page_where)
        sql += " ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC LIMIT ?"
        rows = (yield Query(sql, [*page_params, limit], fetch=True)) or []
        write_rows: Rows | None = None
        if rows:
            first, last = rows[0], rows[-1]
            span = [
                *where,
                "(checkpoint_id, thread_id, checkpoint_ns) <= (?, ?, ?)",
                "(checkpoint_id, thread_id, checkpoint_ns) >= (?, ?, ?)",
            ]
            found = f"SELECT thread_id, checkpoint_ns, checkpoint_id FROM {CHECKPOINTS} WHERE " + (
                " AND ".join(f"({w})" for w in span)
            )
            write_rows = yield Query(
                f"WITH c AS ({found}) SELECT {_WRITE_COLUMNS} FROM "
                f"{self.d.probe(WRITES, 'x', 'c', _CP_KEY, one=False)} "
                "ORDER BY x.task_path, x.task_id, x.idx",
                [*params, first[2], first[0], first[1], last[2], last[0], last[1]],
                fetch=True,
            )
        return (yield from self._load(rows, self._writes(write_rows), listing=True))

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

    def ahead_keys(self, config: dict[str, Any]) -> list[BlobKey]:
        """The value keys a read of the thread's newest checkpoint most likely needs (those
        of the head this process last wrote or read), for ``get_tuple(ready=...)``."""
        thread_id, ns = thread_and_ns(config)
        versions = self.cache.head_versions(thread_id, ns)
        return [(thread_id, ns, channel, version) for channel, version in versions.items()]

    def _load(
        self,
        rows: Rows,
        writes: dict[tuple[str, str, str], list[PendingWrite]],
        ready: Mapping[BlobKey, Resolved] | None = None,
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
        keys: list[BlobKey] = []
        ends: list[int] = []
        # The common case per row, without building error texts or places: a serializer
        # that does not bind values to their place, a checkpoint of the right shape, JSON
        # metadata. Anything else (or a failure) takes the path that names the row.
        plain = None if self._binds else self.serde.loads_typed
        loader = getattr(self.serde, "payload_loader", None)
        unpack = loader() if plain is not None and loader is not None else None
        batch = None
        shaped = False  # whether ``batch`` was shape-checked by its decoding
        if unpack is not None and (payloads := _msgpack_payloads(rows)) is not None:
            batch = shaped_checkpoints(payloads)
            shaped = batch is not None
            many = getattr(self.serde, "payloads_loader", None)
            if batch is None and len(rows) > 1 and many is not None:
                batch = many()(payloads)
        add_key = keys.append
        while True:
            for i, row in enumerate(rows):
                thread_id, ns, checkpoint_id, parent_id, typ, blob, metadata = row
                checkpoint = None
                if batch is not None:
                    checkpoint = batch[i]
                    if type(checkpoint) is not dict or checkpoint.get("id") != checkpoint_id:
                        break  # items shifted against rows (see ``payloads_loader``)
                    if shaped:
                        value_keys(checkpoint, thread_id, ns, keys)
                        ends.append(len(keys))
                        checkpoints.append(checkpoint)
                        continue
                elif plain is not None:
                    try:
                        if unpack is not None and typ is None and type(blob) is bytes:
                            checkpoint = unpack(blob)
                        elif typ != "empty" and (data := as_bytes(blob)) is not None:
                            checkpoint = plain((typ or _MSGPACK, data))
                    except Exception:
                        checkpoint = None
                if (
                    type(checkpoint) is not dict
                    or SEALED_METADATA in checkpoint
                    or not shaped_value_keys(checkpoint, thread_id, ns, keys)
                ):
                    checkpoint, checked[i] = self._load_row(row)
                    inline = checkpoint.get("channel_values") or ()
                    for channel, version in checkpoint["channel_versions"].items():
                        if channel not in inline:
                            add_key((thread_id, ns, channel, str(version)))
                ends.append(len(keys))
                checkpoints.append(checkpoint)
            else:
                break
            batch, shaped = None, False  # each row decoded alone, from the first
            checkpoints.clear()
            checked.clear()
            keys.clear()
            ends.clear()

        # which checkpoint an error about a value names (made when first needed: a
        # listing served by the value cache never needs it)
        owners: dict[BlobKey, str] = {}
        if len(rows) == 1:  # ``get_tuple``
            only: str = rows[0][2]
            owners = dict.fromkeys(keys, only)
        elif not listing:
            owners = _first_owners(rows, keys, ends)
        blob_rows: dict[BlobKey, StoredBlob] = {}
        owner_of = ValueOwners(owners, blob_rows)

        def named(key: BlobKey) -> str:
            if not owners:
                owners.update(_first_owners(rows, keys, ends))
            return value_name(key, owner_of(key))

        def decode(key: BlobKey, row: StoredBlob) -> Any:
            if plain is not None:
                try:  # the common case, without the error text and place
                    blob = row.blob
                    if unpack is not None and row.type == "msgpack" and type(blob) is bytes:
                        return unpack(blob)
                    if row.type != "empty" and (data := as_bytes(blob)) is not None:
                        return plain((row.type, data))
                except Exception:
                    pass  # decoded again below, for the error naming the value
            thread_id, ns, channel, version = key
            return decode_stored(
                self.serde,
                (row.type, row.blob),
                lambda: named(key),
                value_place(thread_id, ns, channel, version, row.base_version, row.root_version),
            )

        resolved: dict[BlobKey, Resolved] | None = None
        values: list[Any]
        if listing:
            values, missing = self.values.listed(keys, decode)
        elif ready:
            resolved, missing = self.values.lookup([k for k in owners if k not in ready], decode)
            resolved.update((k, ready[k]) for k in owners if k in ready)
        else:
            resolved, missing = self.values.lookup(owners, decode)
        if missing:
            if not owners:
                owners.update(_first_owners(rows, keys, ends))
            blob_rows.update((yield from self._fetch_values(missing)))
            # a chain row is named after a checkpoint whose value is built on it
            for k, r in blob_rows.items():
                if r.base_version is not None and k in owners:
                    owner_of.via_chain[root_key(k, r)] = owners[k]
            fresh = rebuild(blob_rows, missing, decode, owner_of)
            if resolved is None:
                self.values.add_rows(blob_rows)
                for at, key in enumerate(keys):
                    if values[at] is EMPTY and key in fresh:
                        values[at] = fresh[key].value
            else:
                self.values.add_resolved(blob_rows, fresh)
                resolved.update(fresh)
        if resolved is not None:
            values = [got.value if (got := resolved.get(k)) is not None else EMPTY for k in keys]
        return ListedPage(
            rows, checkpoints, checked, (keys, ends), values, writes, self._load_row, resolved,
            _shared_keys(rows, keys) if len(rows) > 1 else None,
        )

    def _load_row(self, row: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A checkpoint row's checkpoint and metadata, checked, errors naming the row."""
        thread_id, ns, checkpoint_id, _, typ, blob, metadata = row
        where = f"thread {thread_id!r}, namespace {ns!r}, checkpoint {checkpoint_id!r}"
        place = checkpoint_place(thread_id, ns, checkpoint_id)
        checkpoint = decode_stored(
            self.serde, (typ or _MSGPACK, blob), f"checkpoint of {where}", place
        )
        sealed = checkpoint.pop(SEALED_METADATA, None) if isinstance(checkpoint, dict) else None
        check_checkpoint(checkpoint, where)
        meta = load_metadata(metadata, where)
        if sealed is not None:
            meta = authentic_metadata(meta, sealed, where)
        return checkpoint, meta

    def _fetch_values(self, keys: list[BlobKey]) -> Op[dict[BlobKey, StoredBlob]]:
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
        found: dict[BlobKey, StoredBlob] = {}
        if not queries:
            return found
        results = yield tuple(queries)
        for rows in results:
            found.update(_blob_rows(rows))
        return found


def _first_owners(rows: Rows, keys: list[BlobKey], ends: list[int]) -> dict[BlobKey, str]:
    """Each value key of a page (``keys``, row after row, each row's ending at its
    ``ends``) with the id of the first checkpoint of the page that names it."""
    owners: dict[BlobKey, str] = {}
    own = owners.setdefault
    start = 0
    for row, end in zip(rows, ends, strict=True):
        checkpoint_id = row[2]
        for key in keys[start:end]:
            own(key, checkpoint_id)
        start = end
    return owners


def _shared_keys(rows: Rows, keys: list[BlobKey]) -> set[BlobKey] | None:
    """The value keys more than one checkpoint of a page names (a row names each key
    once), or None when none is - at once when no two rows are of one thread (a key
    starts with its thread), as in a listing over many threads."""
    if not keys or len({row[0] for row in rows}) == len(rows) or len(set(keys)) == len(keys):
        return None
    seen: set[BlobKey] = set()
    shared: set[BlobKey] = set()
    for key in keys:
        (shared if key in seen else seen).add(key)
    return shared


def _msgpack_payloads(rows: Rows) -> list[bytes] | None:
    """The checkpoint payloads of ``rows``, or None - each row is then decoded on its
    own - when a row's is not a ``msgpack`` payload (``_CP_COLUMNS``' type is NULL)."""
    payloads: list[bytes] = []
    for row in rows:
        blob = row[5]
        if row[4] is not None or type(blob) is not bytes:
            return None
        payloads.append(blob)
    return payloads


def _blob_rows(rows: Rows | None) -> Iterable[tuple[tuple[Any, ...], StoredBlob]]:
    for thread_id, ns, channel, version, typ, blob, base, root in rows or ():
        yield (thread_id, ns, channel, version), StoredBlob(typ, as_bytes(blob), base, root)
