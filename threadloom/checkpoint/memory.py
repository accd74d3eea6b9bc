"""``InMemorySaver``: checkpoints in a dict, for tests, demos and short-lived processes.

Values are serialized on the way in (only the channels that changed, once per version), so
a node that later mutates an object it returned cannot rewrite history, and every read
decodes fresh values. A list channel that grew (``add_messages``, ``operator.add``) is
stored as the items it gained since its previous version, planned by
``_values.delta.DeltaCache``
exactly as the SQL savers plan them, so a thread's memory grows linearly with its length
rather than with its square. Two CPU savings on top, since memory is all CPU: lists of
up to ``SMALL_LIST`` items are stored whole (a delta saves next to nothing there, while
fingerprinting the items - what makes deltas safe - and rebuilding chains on reads would
cost at every step), and a channel goes to the planner only from its second long write
on (a list written once, such as a 100-way ``Send`` fan-out, is never fingerprinted) -
or from its first, once the channel grew by deltas in another thread of this saver.
Everything is lost when the process exits: use ``SqliteSaver`` or ``PostgresSaver`` for
anything a person may answer tomorrow.

It follows the rules of the SQL savers (``tests/checkpoint_conformance.py`` checks both):
the one-writer conflict rule, metadata filter keys, damaged-row errors, housekeeping
(``list_threads``, ``prune``, ``expire_paused``) and ``stored_bytes``. The storage-agnostic
pieces are shared with them: ``_values`` (deltas, their chains, the value cache) and
``_stored`` (addresses, metadata, row decoding and the errors naming a damaged row); this
module imports nothing of the SQL savers.

Layout (plain dicts, so a test can inspect or damage them):

* ``storage[thread][ns][checkpoint_id] = (checkpoint, metadata, parent_id)``: the
  checkpoint dict without its values, kept by reference (``put`` takes ownership; reads
  return copies); metadata serialized as ``(type, bytes)``.
* ``blobs[(thread, ns, channel, version)]``: ``(type, bytes)`` for a whole value,
  ``_Row(type, bytes, base_version, root_version)`` (a 4-tuple) for the items appended to
  ``base_version``, ``("empty", b"")`` for a channel in ``new_versions`` without a value.
* ``writes[(thread, ns, checkpoint_id)][(task_id, idx)] = (task_id, channel, value, path)``.

Beside them, kept up to date by every method that changes them: the threads in
``list_threads`` order (``_threadorder.ThreadOrder``), the checkpoints in ``list`` order
(``_sortedblocks``, as the SQL savers' two listing indexes: every checkpoint, and each
thread's, by (checkpoint id, thread, namespace)), and each
thread's keys in ``blobs`` and ``writes``, so that a page of ``list_threads`` or of
``list``, an ``expire_paused`` call and deleting, pruning or copying a thread cost that
page or those threads, not the whole saver. A test may damage or delete entries in place;
an entry it adds is not one of its thread's.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import pickle
import tempfile
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta
from functools import partial
from itertools import islice
from typing import Any, NamedTuple

from threadloom.checkpoint._sortedblocks import (
    SortedBlocks,
    add_sorted,
    walk_down,
)
from threadloom.checkpoint._stored.auditcodec import open_text, reseal_text, seal_text
from threadloom.checkpoint._stored.decode import (
    ValueOwners,
    decode_stored,
    rebuild,
    root_key,
    value_name,
    write_name,
)
from threadloom.checkpoint._stored.records import (
    PAGE_SIZE,
    expiry_cutoff,
    make_config,
    pruned_checkpoints,
    thread_and_ns,
    timestamp,
    validate_filter,
)
from threadloom.checkpoint._threadorder import Activity, ThreadOrder
from threadloom.checkpoint._values.cache import ValueCache
from threadloom.checkpoint._values.chains import (
    EMPTY,
    Resolved,
    needed_keys,
    shared_copy,
)
from threadloom.checkpoint._values.delta import SMALL_LIST, DeltaCache, serde_fingerprint
from threadloom.checkpoint.base import (
    WRITES_IDX_MAP,
    AuditRecord,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    audit_keep_last,
    audit_prune_marker,
    chain_audit_records,
    get_checkpoint_id,
    is_prune_marker,
    prune_plan,
)
from threadloom.checkpoint.serde.place import (
    Place,
    audit_head_place,
    audit_place,
    binds,
    dumps_at,
    loads_at,
    metadata_place,
    reseal_at,
    value_place,
    write_place,
)
from threadloom.constants import CONFIG_KEY_BRANCH
from threadloom.errors import CheckpointConflictError

__all__ = ["InMemorySaver", "MemorySaver", "PersistentDict"]

_EMPTY = ("empty", b"")
_MISSING: Any = object()
_MAX_GROWING = 1024  # channel names remembered as growing (``_growing``)

Key = tuple[str, str, str, str]  # (thread, namespace, channel, version)
# (thread, namespace, checkpoint id, stored entry, metadata already decoded or None)
_Entry = tuple[str, str, str, tuple[Any, Any, str | None], Any]


class _Row(NamedTuple):
    """A stored delta row: ``_delta.StoredBlob``'s fields, as a tuple (cheap to make, and
    shaped like the whole-value rows, ``(type, bytes)``)."""

    type: str
    blob: bytes | None
    base_version: str | None = None
    root_version: str | None = None


class _Rows(Mapping[Key, Any]):
    """``blobs`` as the rows ``_delta.resolve`` reads: delta rows are ``_Row`` already,
    whole-value rows are wrapped on access (only the chain roots being rebuilt)."""

    __slots__ = ("blobs",)

    def __init__(self, blobs: dict[Key, tuple[Any, ...]]) -> None:
        self.blobs = blobs

    def get(self, key: Any, default: Any = None) -> Any:
        row = self.blobs.get(key)
        if row is None:
            return default
        if type(row) is _Row:
            return row
        return _Row(*row[:4]) if len(row) > 2 else _Row(row[0], row[1])

    def __getitem__(self, key: Any) -> Any:
        row = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return key in self.blobs

    def __iter__(self) -> Iterator[Key]:
        return iter(self.blobs)

    def __len__(self) -> int:
        return len(self.blobs)


def _json_equal(have: Any, want: Any) -> bool:
    """Metadata filter equality as the SQL savers compare JSON: types must agree (``True``
    is not ``1``, ``"1"`` is not ``1``), numbers compare by value, objects and arrays
    compare whole (equality, not containment)."""
    if want is None or isinstance(want, bool | str):
        return type(have) is type(want) and have == want
    if isinstance(want, int | float):
        return isinstance(have, int | float) and not isinstance(have, bool) and have == want
    if isinstance(want, dict):
        return (
            isinstance(have, dict)
            and have.keys() == want.keys()
            and all(_json_equal(have[k], v) for k, v in want.items())
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(have) == len(want)
            and all(_json_equal(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _matches(metadata: Any, filter: dict[str, Any]) -> bool:
    if not isinstance(metadata, dict):
        return False
    return all(k in metadata and _json_equal(metadata[k], v) for k, v in filter.items())


class InMemorySaver(BaseCheckpointSaver[str]):
    """Keeps checkpoints in process memory. ``MemorySaver`` is the same class."""


    def __init__(
        self,
        *,
        serde: SerializerProtocol | None = None,
        factory: Callable[..., Any] = defaultdict,
    ) -> None:
        super().__init__(serde=serde)
        # ``factory(default_factory)`` makes the three tables: ``defaultdict`` by default,
        # ``PersistentDict`` (or a ``partial`` of it naming the file) to keep them in a
        # file. Context-managed tables are closed with the saver (``stack``).
        self.stack = ExitStack()
        self.storage: defaultdict[str, dict[str, dict[str, tuple[Any, Any, str | None]]]] = (
            self._table(factory, dict, "storage")
        )
        self.blobs: dict[Key, tuple[Any, ...]] = self._table(factory, None, "blobs")
        self.writes: defaultdict[tuple[str, str, str], dict[tuple[str, int], tuple[Any, ...]]] = (
            self._table(factory, dict, "writes")
        )
        self._lock = threading.RLock()
        # (thread, ns) -> newest checkpoint id (ids sort in creation order)
        self._heads: dict[tuple[str, str], str] = {
            (thread_id, ns): max(checkpoints)  # tables loaded from a file (PersistentDict)
            for thread_id, per_ns in self.storage.items()
            for ns, checkpoints in per_ns.items()
            if checkpoints
        }
        # (thread, ns) -> its list channels written longer than SMALL_LIST at least once:
        # from their second such write on they go through the delta planner
        self._long_lists: dict[tuple[str, str], set[str]] = {}
        # list channels that grew by deltas in some thread: a new thread plans them from
        # their first long write (a thread started with a long input then appends from
        # its second write on, instead of storing the list whole twice)
        self._growing: set[str] = set()
        # threads in list_threads order, by (newest created_at, newest checkpoint id):
        # every change of a thread's checkpoints keeps it up to date (``_threadorder``)
        self._threads = ThreadOrder()
        # thread -> the keys of its rows in ``blobs`` / ``writes`` (kept by every method
        # that adds or deletes rows): deleting, pruning or copying one thread reads its own
        # rows, not every thread's
        self._blob_keys: dict[str, set[Key]] = {}
        self._write_keys: dict[str, set[tuple[str, str, str]]] = {}
        for blob_key in self.blobs:  # tables loaded from a file (PersistentDict)
            self._blob_keys.setdefault(blob_key[0], set()).add(blob_key)
        for write_key in self.writes:
            self._write_keys.setdefault(write_key[0], set()).add(write_key)
        for thread_id in self.storage:
            self._refresh_thread(thread_id)
        # every checkpoint in ``list`` order, (checkpoint id, thread, namespace), as the SQL
        # savers' two listing indexes: over all threads (``SortedBlocks``), and each
        # thread's (a plain sorted list of the same key tuples: one object a thread); kept by
        # every method that adds or deletes checkpoints, so that a page of ``list`` walks
        # its own entries down from a bound
        listed = sorted(  # tables loaded from a file (PersistentDict)
            (checkpoint_id, thread_id, ns)
            for thread_id, per_ns in self.storage.items()
            for ns, checkpoints in per_ns.items()
            for checkpoint_id in checkpoints
        )
        self._listed: SortedBlocks[tuple[str, str, str]] = SortedBlocks(listed)
        self._history: dict[str, list[tuple[str, str, str]]] = {}
        for listed_key in listed:
            self._history.setdefault(listed_key[1], []).append(listed_key)
        # Fingerprint with the plain serializer under an encrypting one (its output differs
        # on every call; the plaintext encoding does not), as the SQL savers do.
        inner = getattr(self.serde, "serde", None)
        plain: SerializerProtocol = self.serde
        if inner is not None and callable(getattr(inner, "dumps_typed", None)):
            plain = inner
        # A list stored whole is printed from its serialized row when the row is what the
        # fingerprints serialize (``DeltaCache.finish_row``: one pass over it, not two).
        self._fingerprinted = plain
        self._delta = DeltaCache(serde_fingerprint(plain.dumps_typed), row_prints=True)
        # Values rebuilt from delta chains, frozen: a long thread's read thaws one copy
        # instead of decoding every delta row again (each reader still gets its own).
        self._values = ValueCache()

    def _table(self, factory: Callable[..., Any], default: Any, name: str) -> Any:
        table = factory(default)
        if isinstance(table, PersistentDict):  # the three tables may share one file
            table.use_section(name)
        if hasattr(table, "__enter__") and hasattr(table, "__exit__"):
            self.stack.enter_context(table)
        return table

    def __enter__(self) -> InMemorySaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    async def __aenter__(self) -> InMemorySaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stack.close()

    def _codec(self) -> tuple[Any, Any, bool]:
        """(``dumps_at``, ``loads_at``, ``binds``) of the saver's serializer, made once per
        serializer (every put and read uses them; ``serde`` may be replaced at any time)."""
        serde = self.serde
        codec = self.__dict__.get("_codecs")
        if codec is None or codec[0] is not serde:
            codec = self._codecs = (serde, dumps_at(serde), loads_at(serde), binds(serde))
        return codec[1], codec[2], codec[3]

    # -- reading ---------------------------------------------------------------------

    def _load(
        self, entries: Sequence[_Entry], *, remember: bool = False
    ) -> builtins.list[CheckpointTuple]:
        """Build tuples from stored entries (the caller holds the lock).

        Each value is decoded once per call; delta chains are rebuilt together, decoding
        each row once even when several checkpoints share a chain. With ``remember`` (a
        single head read) the delta cache learns the checkpoint, so a run continuing from
        it appends deltas.
        """
        blobs = self.blobs
        _, loads, bind = self._codec()  # places are built only for a serializer that binds
        plain = self.serde.loads_typed  # (the same, without the call through loads_at)
        found: dict[Key, Any] = {}  # key -> value (EMPTY for an empty channel)
        owners: dict[Key, str] = {}  # key -> first checkpoint reading it (for errors)
        deltas: list[Key] = []
        decoded = []
        for thread_id, ns, checkpoint_id, (stored, meta, parent_id), metadata in entries:
            if metadata is None:
                where = (thread_id, ns, checkpoint_id)
                try:
                    metadata = loads(meta, metadata_place(*where) if bind else None)
                except Exception:
                    metadata = self._named_decode(meta, "metadata of ", *where)
            keys = []
            for channel, version in stored["channel_versions"].items():
                key = (thread_id, ns, channel, str(version))
                row = blobs.get(key)
                if row is None:
                    continue
                keys.append(key)
                if key in owners:
                    continue
                owners[key] = checkpoint_id
                if len(row) > 2:
                    deltas.append(key)
                elif row[0] == "empty":
                    found[key] = EMPTY
                else:
                    place = value_place(*key) if bind else None
                    try:
                        found[key] = loads(row, place) if bind else plain(row)
                    except Exception:
                        found[key] = self._named_decode(
                            row,
                            f"value of channel {channel!r} version {key[3]!r} (",
                            thread_id,
                            ns,
                            checkpoint_id,
                            ")",
                            place=place,
                        )
            decoded.append((thread_id, ns, checkpoint_id, stored, metadata, parent_id, keys))

        chains: dict[Key, Resolved] = {}
        if deltas:
            chains = self._resolve(deltas, owners)
            for key, got in chains.items():
                found[key] = got.value

        out = []
        handed: set[Key] | None = set() if len(decoded) > 1 else None
        for thread_id, ns, checkpoint_id, stored, metadata, parent_id, keys in decoded:
            values: dict[str, Any] = {}
            for key in keys:
                value = found.get(key, EMPTY)
                if value is EMPTY:
                    continue
                if handed is not None:
                    if key in handed:  # checkpoints sharing a version get their own lists
                        value = shared_copy(value)
                    else:
                        handed.add(key)
                values[key[2]] = value
            checkpoint: Checkpoint = dict(stored)  # type: ignore[assignment]
            checkpoint["channel_values"] = values
            checkpoint["channel_versions"] = dict(stored["channel_versions"])
            checkpoint["versions_seen"] = {
                k: dict(v) for k, v in stored["versions_seen"].items()
            }
            out.append(
                CheckpointTuple(
                    config=make_config(thread_id, ns, checkpoint_id),
                    checkpoint=checkpoint,
                    metadata=metadata,
                    parent_config=make_config(thread_id, ns, parent_id) if parent_id else None,
                    pending_writes=self._pending(thread_id, ns, checkpoint_id),
                )
            )
            long_lists = self._long_lists.get((thread_id, ns)) if remember else None
            if long_lists:
                lists = {
                    key[2]: chains.get(key) or Resolved(values[key[2]], key[3], 0)
                    for key in keys
                    if key[2] in long_lists and type(values.get(key[2])) is list
                }
                if lists:
                    self._delta.remember_loaded(
                        thread_id, ns, checkpoint_id, checkpoint["channel_versions"], lists
                    )
        return out

    def _named_decode(
        self,
        data: Any,
        what: str,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        end: str = "",
        *,
        place: Place | None = None,
    ) -> Any:
        """Decode through ``decode_stored``, which raises ``CorruptCheckpointError``
        naming the row (reads try the serializer directly first: this is the slow path).
        ``place`` defaults to the checkpoint's metadata."""
        return decode_stored(
            self.serde,
            data,
            lambda: f"{what}thread {thread_id!r}, namespace {ns!r}, checkpoint "
            f"{checkpoint_id!r}{end}",
            place or metadata_place(thread_id, ns, checkpoint_id),
        )

    def _resolve(self, targets: list[Key], owners: dict[Key, str]) -> dict[Key, Resolved]:
        """Rebuild delta-stored values; damage raises ``CorruptCheckpointError`` naming the
        thread, namespace and checkpoint (as the SQL savers do)."""
        rows = _Rows(self.blobs)
        owner_of = ValueOwners(owners, rows)
        for key in targets:  # a chain row is named after a checkpoint whose value needs it
            owner_of.via_chain.setdefault(root_key(key, rows[key]), owners[key])

        bound = getattr(self.serde, "loads_typed_at", None)
        plain = self.serde.loads_typed

        def decode(key: Key, row: _Row) -> Any:
            if row.type == "empty":
                return EMPTY
            place = None  # the place is built only for a serializer that binds to it
            blob = row.blob
            try:
                if bound is None:
                    if blob is not None:  # None: damaged, named by ``decode_stored``
                        return plain((row.type, blob))
                else:
                    place = value_place(*key, row.base_version, row.root_version)
                    return bound((row.type, blob), place)
            except Exception:  # decode again through ``decode_stored``, which
                pass  # raises CorruptCheckpointError naming the row (outside this handler)
            return decode_stored(
                self.serde, (row.type, row.blob), lambda: value_name(key, owner_of(key)), place
            )

        # a _Row has StoredBlob's fields (a NamedTuple: cheaper to make than the dataclass)
        cached, missing = self._values.lookup(targets, decode)  # type: ignore[arg-type]
        if not missing:
            return cached
        fresh = rebuild(rows, missing, decode, owner_of)
        self._values.add_resolved({key: rows[key] for key in fresh}, fresh)
        cached.update(fresh)
        return cached

    def _pending(self, thread_id: str, ns: str, checkpoint_id: str) -> builtins.list[Any]:
        """Pending writes in (task path, task id, index) order, as the SQL savers list them."""
        bucket = self.writes.get((thread_id, ns, checkpoint_id))
        if not bucket:
            return []
        serde = self.serde
        items = sorted(bucket.items(), key=lambda kv: (kv[1][3], kv[0][0], kv[0][1]))
        return [
            (
                task_id,
                channel,
                decode_stored(
                    serde,
                    value,
                    partial(write_name, task_id, channel, thread_id, ns, checkpoint_id),
                    write_place(thread_id, ns, checkpoint_id, task_id, idx, channel),
                ),
            )
            for (_, idx), (task_id, channel, value, _path) in items
        ]

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        with self._lock:
            per_ns = self.storage.get(thread_id)
            checkpoints = per_ns.get(ns) if per_ns else None
            if not checkpoints:
                return None
            wanted = checkpoint_id
            if wanted is None:
                wanted = self._heads.get((thread_id, ns))
                if wanted is None or wanted not in checkpoints:
                    wanted = max(checkpoints)
            saved = checkpoints.get(wanted)
            if saved is None:
                return None
            # The newest checkpoint is what a run continues from: remember it for deltas
            # (explicit, older checkpoints are history: no fingerprinting for them).
            entry = (thread_id, ns, wanted, saved, None)
            return self._load([entry], remember=checkpoint_id is None)[0]

    def list(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Newest first (by checkpoint id, then thread, then namespace, across threads as
        the SQL savers order them), loaded ``PAGE_SIZE`` at a time: each page walks the
        listing index (``_listed``, or the thread's ``_history``) down from the last
        checkpoint of the page before (O(log n + page); with a metadata ``filter``, the
        checkpoints it passes over too), as the SQL savers' keyset pages do."""
        checked = validate_filter(filter)  # before anything runs, as the SQL savers do
        return self._pages(config, checked, before, limit)

    def _pages(
        self,
        config: dict[str, Any] | None,
        filter: dict[str, Any],
        before: dict[str, Any] | None,
        limit: int | None,
    ) -> Iterator[CheckpointTuple]:
        conf = (config or {}).get("configurable") or {}
        thread_id = str(conf["thread_id"]) if "thread_id" in conf else None
        wanted_ns = conf.get("checkpoint_ns")
        wanted_ns = None if wanted_ns is None else str(wanted_ns)
        wanted_id = str(conf["checkpoint_id"]) if conf.get("checkpoint_id") else None
        before_id = get_checkpoint_id(before) if before else None
        # The keys below ``bound`` are still to list, as the SQL savers page by keyset
        # (checkpoint id, thread, namespace); a 1-tuple is above every key of lower ids.
        bound: tuple[str, ...] | None = (str(before_id),) if before_id else None
        if wanted_id is not None and (bound is None or (wanted_id + "\0",) < bound):
            bound = (wanted_id + "\0",)  # above every key of ``wanted_id``, below the rest
        remaining = limit
        while remaining is None or remaining > 0:
            size = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            entries: list[_Entry] = []
            more = False  # the page filled up before the walk ended
            with self._lock:  # not held between pages
                keys = (
                    self._listed.descending(bound)
                    if thread_id is None
                    else walk_down(self._history.get(thread_id) or [], bound)
                )
                for key in keys:
                    bound = key
                    checkpoint_id, thread, ns = key
                    if wanted_id is not None and checkpoint_id != wanted_id:
                        break  # below the one checkpoint id wanted
                    if wanted_ns is not None and ns != wanted_ns:
                        continue
                    saved = ((self.storage.get(thread) or {}).get(ns) or {}).get(checkpoint_id)
                    if saved is None:  # (a test deleted it from ``storage``)
                        continue
                    metadata = None
                    if filter:
                        metadata = self._named_decode(
                            saved[1], "metadata of ", thread, ns, checkpoint_id
                        )
                        if not _matches(metadata, filter):
                            continue
                    entries.append((thread, ns, checkpoint_id, saved, metadata))
                    if len(entries) == size:
                        more = True
                        break
                page = self._load(entries) if entries else []
            yield from page
            if not more:
                return
            if remaining is not None:
                remaining -= len(page)

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        """Store ``checkpoint`` (taking ownership of the dict). Raises
        ``CheckpointConflictError`` when a run's ``loop`` checkpoint's parent is no longer
        the newest checkpoint of its thread and namespace (see ``lock_thread``)."""
        thread_id, ns = thread_and_ns(config)
        parent_id = get_checkpoint_id(config) or None  # "" means "no parent" too
        checkpoint_id = checkpoint["id"]
        values = checkpoint["channel_values"]
        dumps, _, bind = self._codec()  # places are built only for a serializer that binds
        plain = self.serde.dumps_typed  # (the same, without the call through dumps_at)
        head_key = (thread_id, ns)
        long_lists = self._long_lists.get(head_key)
        # Serialize outside the lock: only the channels that changed. A long list goes to
        # the delta planner once it was long before (a list written once, such as a Send
        # fan-out, never pays for the fingerprints that make deltas safe).
        rows: list[tuple[Key, tuple[Any, ...]]] = []
        lists: dict[str, Any] | None = None
        first_long: list[str] | None = None
        for channel, version in new_versions.items():
            if channel not in values:
                rows.append(((thread_id, ns, channel, str(version)), _EMPTY))
                continue
            value = values[channel]
            if type(value) is list and len(value) > SMALL_LIST:
                known = long_lists is not None and channel in long_lists
                if not known:
                    if first_long is None:
                        first_long = []
                    first_long.append(channel)
                if known or channel in self._growing:
                    if lists is None:
                        lists = {}
                    lists[channel] = version
                    continue
            key = (thread_id, ns, channel, str(version))
            rows.append((key, dumps(value, value_place(*key)) if bind else plain(value)))
        plans = None
        if long_lists is not None or first_long is not None:  # the planner follows the head
            plans = self._delta.plan(thread_id, ns, parent_id, values, lists or {})
            same_bytes = not bind and self.serde is self._fingerprinted
            for i, plan in enumerate(plans):
                key = (thread_id, ns, plan.channel, plan.version)
                typ, blob = dumps(
                    plan.payload, value_place(*key, plan.base_version, plan.root_version)
                )
                if plan.needs_row:
                    plans[i] = self._delta.finish_row(plan, (typ, blob) if same_bytes else None)
                if plan.is_delta:
                    rows.append((key, _Row(typ, blob, plan.base_version, plan.root_version)))
                else:
                    rows.append((key, (typ, blob)))
        stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
        created_at = timestamp(checkpoint.get("ts"))
        meta = (dumps(dict(metadata), metadata_place(thread_id, ns, checkpoint_id)) if bind
                else plain(dict(metadata)))
        # the conflict rule, for a run holding the thread's run lock (see ``lock_thread``)
        loop = (
            bool(metadata)
            and metadata.get("source") == "loop"
            and thread_id in self.__dict__.get("_busy_threads", ())
            and not (config.get("configurable") or {}).get(CONFIG_KEY_BRANCH)
        )
        with self._lock:
            head = self._heads.get(head_key)
            if loop and not (
                (head is None or head == checkpoint_id)
                if parent_id is None
                else head in (parent_id, checkpoint_id)
            ):
                raise CheckpointConflictError(
                    f"Thread {thread_id!r} (namespace {ns!r}) moved on: this run "
                    f"continues from checkpoint {parent_id!r} but the newest checkpoint is "
                    f"now {head!r}: the thread was changed outside this run (by another "
                    "writer, a delete or a prune); nothing was written. Re-read the thread "
                    "with get_state() and decide again."
                )
            blobs = self.blobs
            if plans is not None:
                for i, plan in enumerate(plans):
                    if plan.is_delta and (thread_id, ns, plan.channel, plan.base_version) not in (
                        blobs
                    ):  # the base was pruned or deleted: store the value whole
                        plans[i] = plan.as_full()
                        key = (thread_id, ns, plan.channel, plan.version)
                        rows = [r for r in rows if r[0] != key]
                        rows.append((key, dumps(plans[i].payload, value_place(*key))))
            owned = self._blob_keys.get(thread_id)
            if owned is None:
                owned = self._blob_keys[thread_id] = set()
            for key, row in rows:
                if key not in blobs:  # a version is written once
                    blobs[key] = row
                    owned.add(key)
            per_ns = self.storage[thread_id]
            checkpoints = per_ns.get(ns)
            if checkpoints is None:
                checkpoints = per_ns[ns] = {}
            replaced = checkpoint_id in checkpoints
            checkpoints[checkpoint_id] = (stored, meta, parent_id)
            if head is None or checkpoint_id > head:
                self._heads[head_key] = checkpoint_id
            if replaced:  # its old created_at may have been the thread's newest
                self._refresh_thread(thread_id)
            else:
                self._threads.add(thread_id, created_at, checkpoint_id)
                listed_key = (checkpoint_id, thread_id, ns)
                self._listed.add(listed_key)
                history = self._history.get(thread_id)
                if history is None:
                    self._history[thread_id] = [listed_key]
                else:
                    add_sorted(history, listed_key)
            if first_long is not None:
                self._long_lists.setdefault(head_key, set()).update(first_long)
            if plans is not None:
                self._delta.remember_put(
                    thread_id, ns, checkpoint_id, checkpoint["channel_versions"], plans
                )
                if len(self._growing) < _MAX_GROWING:
                    self._growing.update(plan.channel for plan in plans if plan.is_delta)
        return make_config(thread_id, ns, checkpoint_id)

    def settle(self, config: dict[str, Any]) -> None:
        """End of a run: a list stored at its last checkpoint whose older items changed
        in place since is stored again, whole, under the same version
        (``DeltaCache.settle``)."""
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            return
        thread_id, ns = thread_and_ns(config)
        if not self._long_lists.get((thread_id, ns)):
            return  # only lists that went through the delta planner have anything to settle
        plans = self._delta.settle(thread_id, ns, checkpoint_id)
        if not plans:
            return
        dumps = self._codec()[0]
        rows = {}
        for plan in plans:
            key = (thread_id, ns, plan.channel, plan.version)
            rows[key] = dumps(plan.payload, value_place(*key))
        with self._lock:
            for key, row in rows.items():
                if key in self.blobs:  # still stored (not pruned or deleted meanwhile)
                    self.blobs[key] = row
            self._values.drop(rows)

    async def asettle(self, config: dict[str, Any]) -> None:
        self.settle(config)

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Regular writes are kept once per (task, index); special ones are replaced."""
        thread_id, ns = thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise ValueError("put_writes needs a checkpoint_id in config['configurable'].")
        dumps, _, bind = self._codec()
        plain = self.serde.dumps_typed
        with self._lock:
            bucket = self.writes[(thread_id, ns, checkpoint_id)]
            owned = self._write_keys.get(thread_id)
            if owned is None:
                owned = self._write_keys[thread_id] = set()
            owned.add((thread_id, ns, checkpoint_id))
            for idx, (channel, value) in enumerate(writes):
                key = (task_id, WRITES_IDX_MAP.get(channel, idx))
                if key[1] >= 0 and key in bucket:
                    continue
                row = (dumps(value, write_place(thread_id, ns, checkpoint_id, task_id, key[1],
                                                channel)) if bind else plain(value))
                bucket[key] = (task_id, channel, row, task_path)

    def delete_thread(self, thread_id: str) -> None:
        thread_id = str(thread_id)
        with self._lock:
            self._drop_thread(thread_id)

    def _drop_thread(self, thread_id: str) -> None:
        for ns in self.storage.pop(thread_id, None) or ():
            self._heads.pop((thread_id, ns), None)
            self._long_lists.pop((thread_id, ns), None)
        for key in self._write_keys.pop(thread_id, ()):
            self.writes.pop(key, None)
        for blob_key in self._blob_keys.pop(thread_id, ()):
            self.blobs.pop(blob_key, None)  # (a test may have deleted it)
        self._threads.discard(thread_id)
        self._unlist(thread_id)
        self._delta.forget(thread_id)
        self._values.forget(thread_id)
        self.__dict__.get("_audit", {}).pop(thread_id, None)  # the log goes with its thread
        self.__dict__.get("_audit_heads", {}).pop(thread_id, None)

    def _unlist(self, thread_id: str) -> None:
        """Take the thread's checkpoints out of ``_listed`` and ``_history``."""
        for key in self._history.pop(thread_id, ()):
            self._listed.remove(key)

    # -- housekeeping ------------------------------------------------------------------

    def _refresh_thread(self, thread_id: str) -> None:
        """Recompute the thread's place in ``_threads`` from its checkpoints (O(its
        checkpoints): for the changes that may lower its newest, such as a prune); the
        caller holds the lock."""
        newest: Activity | None = None
        for checkpoints in (self.storage.get(thread_id) or {}).values():
            for checkpoint_id, (stored, _meta, _parent) in checkpoints.items():
                at = timestamp(stored.get("ts"))
                if newest is None:
                    newest = (at, checkpoint_id)
                else:
                    newest = (max(newest[0], at), max(newest[1], checkpoint_id))
        if newest is None:
            self._threads.discard(thread_id)
        else:
            self._threads.set(thread_id, newest)

    def list_threads(self, limit: int | None = None) -> builtins.list[str]:
        """Thread ids, the one with the newest checkpoint first (by newest created_at -
        the checkpoint's ``ts`` - then newest checkpoint id, then thread id ascending, as
        the SQL savers order them): ``limit=N`` reads N entries of ``_threads``."""
        with self._lock:
            threads = self._threads.newest()
            if limit is not None and int(limit) >= 0:
                return builtins.list(islice(threads, int(limit)))
            ids = builtins.list(threads)
        return ids if limit is None else ids[: int(limit)]

    def prune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        """Delete old checkpoints of the threads: keep the ``keep_last`` newest of each
        namespace, or follow ``strategy`` (see ``BaseCheckpointSaver.prune``).

        Older checkpoints, their pending writes and the values only they used are deleted
        (a value a kept checkpoint reads through a delta chain stays); returns the number
        of checkpoints deleted.
        """
        ids, keep = prune_plan(thread_ids, keep_last, strategy)
        keep_audit = audit_keep_last(self)
        with self._lock:
            dropped = sum(
                self._drop(t, lambda entries: pruned_checkpoints(entries, keep)) for t in ids
            )
            if keep_audit is not None:
                for thread_id in ids:
                    self._prune_audit(thread_id, keep_audit)
            return dropped

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints whose metadata ``run_id`` is one of ``run_ids``, in every
        thread and namespace, with their pending writes and the values only they used."""
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return
        def made_by_run(entries: list[tuple[str, str, Any]]) -> set[tuple[str, str]]:
            return {(ns, c) for ns, c, meta in entries if meta.get("run_id") in wanted}

        with self._lock:
            for thread_id in list(self.storage):
                self._drop(thread_id, made_by_run)

    def _drop(self, thread_id: str, choose: Any) -> int:
        """Delete the checkpoints of ``thread_id`` that ``choose`` picks (as (namespace,
        checkpoint id) pairs, from every (namespace, checkpoint id, metadata)), their
        writes and the values no remaining checkpoint needs; how many went. The caller
        holds the lock."""
        per_ns = self.storage.get(thread_id)
        if not per_ns:
            return 0
        entries = []
        for ns, checkpoints in per_ns.items():
            for checkpoint_id, (_stored, meta, _parent) in checkpoints.items():
                metadata = self._named_decode(meta, "metadata of ", thread_id, ns, checkpoint_id)
                entries.append((ns, checkpoint_id, metadata if isinstance(metadata, dict) else {}))
        picked = choose(entries)
        dropped = 0
        referenced: set[Key] = set()
        for ns, checkpoints in list(per_ns.items()):
            for checkpoint_id in list(checkpoints):
                if (ns, checkpoint_id) in picked:
                    del checkpoints[checkpoint_id]
                    self._listed.remove((checkpoint_id, thread_id, ns))
                    self.writes.pop((thread_id, ns, checkpoint_id), None)
                    self._write_keys.get(thread_id, set()).discard((thread_id, ns, checkpoint_id))
                    dropped += 1
                    continue
                versions = checkpoints[checkpoint_id][0].get("channel_versions") or {}
                referenced.update((thread_id, ns, ch, str(v)) for ch, v in versions.items())
            if not checkpoints:
                del per_ns[ns]
                self._long_lists.pop((thread_id, ns), None)
            if checkpoints:
                self._heads[(thread_id, ns)] = max(checkpoints)
            else:
                self._heads.pop((thread_id, ns), None)
        if not per_ns:
            del self.storage[thread_id]
        if not dropped:
            return 0
        kept = [  # the thread's index, in one pass (not one deletion per checkpoint)
            key for key in self._history.pop(thread_id, ()) if key[0] in per_ns.get(key[2], ())
        ]
        if kept:
            self._history[thread_id] = kept
        self._refresh_thread(thread_id)
        owned = self._blob_keys.get(thread_id, set())
        bases = {}
        for key in owned:
            row = self.blobs.get(key)
            if row is not None:
                bases[key] = row[2] if len(row) > 2 else None
        keep = needed_keys(referenced, bases)
        for key in bases:
            if key not in keep:
                del self.blobs[key]
                owned.discard(key)
        if not owned:  # (a thread pruned of everything)
            self._blob_keys.pop(thread_id, None)
        if not self._write_keys.get(thread_id, True):
            del self._write_keys[thread_id]
        self._delta.forget(thread_id)
        self._values.forget(thread_id)
        return dropped

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint of one thread (all namespaces, values, pending writes,
        ids unchanged) to another thread, which must have no checkpoints yet."""
        source, target = str(source_thread_id), str(target_thread_id)
        if source == target:
            raise ValueError(f"copy_thread needs two different threads, got {source!r} twice")
        with self._lock:
            if self.storage.get(target):
                raise ValueError(
                    f"Cannot copy thread {source!r} to {target!r}: {target!r} already has "
                    f"checkpoints. Copy to a new thread id, or delete {target!r} first."
                )
            per_ns = self.storage.get(source)
            if not per_ns:
                return
            # Stored checkpoints and rows are never changed in place: share them - except
            # where the serializer binds values to their place (encryption): those are
            # sealed anew for the target thread, all of them before anything is stored.
            storage = {ns: dict(cps) for ns, cps in per_ns.items()}
            blobs = {
                (target, *key[1:]): self.blobs[key]
                for key in self._blob_keys.get(source, ())
                if key in self.blobs
            }
            writes = {
                (target, *key[1:]): dict(self.writes[key])
                for key in self._write_keys.get(source, ())
                if key in self.writes
            }
            if binds(self.serde):
                self._reseal_copy(source, target, storage, blobs, writes)
            self.storage[target] = storage
            self._unlist(target)  # (none: unless a test emptied its ``storage``)
            history = []
            for ns, checkpoints in per_ns.items():
                self._heads[(target, ns)] = max(checkpoints)
                for checkpoint_id in checkpoints:
                    listed_key = (checkpoint_id, target, ns)
                    self._listed.add(listed_key)
                    history.append(listed_key)
            if history:
                self._history[target] = sorted(history)
            self.blobs.update(blobs)
            self.writes.update(writes)
            self._blob_keys.setdefault(target, set()).update(blobs)
            self._write_keys.setdefault(target, set()).update(writes)
            newest = self._threads.get(source)
            if newest is not None:  # the copies' ids and ts are the source's
                self._threads.set(target, newest)

    def _reseal_copy(
        self,
        source: str,
        target: str,
        storage: dict[str, dict[str, tuple[Any, Any, str | None]]],
        blobs: dict[Key, tuple[Any, ...]],
        writes: dict[tuple[str, str, str], dict[tuple[str, int], tuple[Any, ...]]],
    ) -> None:
        """Seal the copied rows of ``source`` (given keyed for ``target``) for their new
        place, in place of the dicts given."""
        serde = self.serde
        for ns, checkpoints in storage.items():
            for checkpoint_id, (stored, meta, parent) in checkpoints.items():
                moved = reseal_at(
                    serde,
                    meta,
                    metadata_place(source, ns, checkpoint_id),
                    metadata_place(target, ns, checkpoint_id),
                )
                checkpoints[checkpoint_id] = (stored, moved, parent)
        for key, row in blobs.items():
            if row[0] == "empty":
                continue
            base, root = (row[2], row[3]) if len(row) > 2 else (None, None)
            typ, blob = reseal_at(  # type: ignore[misc]
                serde,
                (row[0], row[1]),
                value_place(source, *key[1:], base, root),
                value_place(*key, base, root),
            )
            blobs[key] = _Row(typ, blob, base, root) if len(row) > 2 else (typ, blob)
        for (_, ns, checkpoint_id), bucket in writes.items():
            for (task_id, idx), (tid, channel, value, path) in bucket.items():
                moved = reseal_at(
                    serde,
                    value,
                    write_place(source, ns, checkpoint_id, task_id, idx, channel),
                    write_place(target, ns, checkpoint_id, task_id, idx, channel),
                )
                bucket[(task_id, idx)] = (tid, channel, moved, path)

    def expire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        """Delete threads whose newest checkpoint is older than ``older_than``; their ids.

        ``now`` defaults to the current UTC time (naive datetimes are taken as UTC).
        """
        cutoff = expiry_cutoff(older_than, now)
        with self._lock:  # the oldest entries of ``_threads``: O(expired), not O(threads)
            expired = sorted(self._threads.older_than(cutoff))
            for thread_id in expired:
                self._drop_thread(thread_id)
            return expired

    def stored_bytes(self, thread_id: str | None = None) -> int:
        """Serialized bytes of stored checkpoints, metadata, values and pending writes
        (the payloads the SQL savers count), for the thread or for everything."""
        dumps = self.serde.dumps_typed
        with self._lock:
            threads = list(self.storage) if thread_id is None else [str(thread_id)]
            total = 0
            for t in threads:
                for checkpoints in (self.storage.get(t) or {}).values():
                    for stored, meta, _parent in checkpoints.values():
                        total += len(dumps(stored)[1]) + len(meta[1])
            mine = (lambda k: True) if thread_id is None else (lambda k: k[0] == threads[0])
            total += sum(len(row[1] or b"") for k, row in self.blobs.items() if mine(k))
            for key, bucket in self.writes.items():
                if mine(key):
                    total += sum(len(w[2][1] or b"") for w in bucket.values())
            return total

    def _rekey(self, report: Any) -> None:
        """Reseal every stored value with the serializer's write key, for its own place
        (``threadloom.checkpoint.rekey``): all computed first, then stored at once."""
        # an EncryptedSerializer, or one like it (``rekey`` checked it has ``reseal`` and
        # ``is_current``), as the SQL savers' ``_sql.reseal`` takes it
        serde: Any = self.serde
        current = serde.is_current
        with self._lock:
            metas, blobs, writes, audit, heads = {}, {}, {}, {}, {}
            for thread_id, per_ns in self.storage.items():
                for ns, checkpoints in per_ns.items():
                    for checkpoint_id, (_stored, meta, _parent) in checkpoints.items():
                        if not current(meta[0]):
                            place = metadata_place(thread_id, ns, checkpoint_id)
                            metas[(thread_id, ns, checkpoint_id)] = serde.reseal(meta, place)
            for key, row in self.blobs.items():
                if row[0] != "empty" and not current(row[0]):
                    base, root = (row[2], row[3]) if len(row) > 2 else (None, None)
                    typ, blob = serde.reseal((row[0], row[1]), value_place(*key, base, root))
                    blobs[key] = _Row(typ, blob, base, root) if len(row) > 2 else (typ, blob)
            for (thread_id, ns, checkpoint_id), bucket in self.writes.items():
                for (task_id, idx), (tid, channel, value, path) in bucket.items():
                    if not current(value[0]):
                        place = write_place(thread_id, ns, checkpoint_id, task_id, idx, channel)
                        writes[(thread_id, ns, checkpoint_id, task_id, idx)] = (
                            tid, channel, serde.reseal(value, place), path,
                        )  # fmt: skip
            for thread_id, log in self._audit_log().items():
                for seq, text in log.items():
                    new = reseal_text(serde, text, audit_place(thread_id, seq))
                    if new is not None:
                        audit[(thread_id, seq)] = new
            for thread_id, text in self.__dict__.get("_audit_heads", {}).items():
                new = reseal_text(serde, text, audit_head_place(thread_id))
                if new is not None:
                    heads[thread_id] = new
            for (thread_id, ns, checkpoint_id), meta in metas.items():
                stored, _, parent = self.storage[thread_id][ns][checkpoint_id]
                self.storage[thread_id][ns][checkpoint_id] = (stored, meta, parent)
            self.blobs.update(blobs)
            for (thread_id, ns, checkpoint_id, task_id, idx), entry in writes.items():
                self.writes[(thread_id, ns, checkpoint_id)][(task_id, idx)] = entry
            for (thread_id, seq), text in audit.items():
                self._audit_log()[thread_id][seq] = text
            self.__dict__.get("_audit_heads", {}).update(heads)
            self._values.clear()  # cached rows are the old ciphertexts
        report.count("metadata", sum(len(c) for p in self.storage.values()
                                        for c in p.values()), len(metas))
        report.count("blobs", len(self.blobs), len(blobs))
        report.count("writes", sum(len(b) for b in self.writes.values()), len(writes))
        report.count("audit", sum(len(v) for v in self._audit_log().values()) + len(
            self.__dict__.get("_audit_heads", {})), len(audit) + len(heads))

    # The in-memory operations never block on I/O: run them inline, not in a thread.

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def aget_delta_channel_history(self, *, config: dict[str, Any],
                                         channels: Any) -> Any:
        # in memory nothing waits: the async read is the sync one (a subclass that
        # overrides get_delta_channel_history changes both)
        return self.get_delta_channel_history(config=config, channels=channels)

    async def alist(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def alist_threads(self, limit: int | None = None) -> builtins.list[str]:
        return self.list_threads(limit)

    async def aprune(
        self,
        thread_ids: str | Sequence[str],
        keep_last: int | None = None,
        *,
        strategy: str | None = None,
    ) -> int:
        return self.prune(thread_ids, keep_last, strategy=strategy)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aexpire_paused(
        self, older_than: timedelta, *, now: datetime | None = None
    ) -> builtins.list[str]:
        return self.expire_paused(older_than, now=now)

    async def astored_bytes(self, thread_id: str | None = None) -> int:
        return self.stored_bytes(thread_id)

    # -- audit log (added for threadloom.hitl) --------------------------------------

    def _audit_log(self) -> dict[str, dict[int, str]]:
        # thread -> {seq: record as stored JSON text} in seq order (copies: callers cannot
        # rewrite history; sealed under an encrypting serializer, for their seq)
        log: dict[str, dict[int, str]] | None = self.__dict__.get("_audit")
        if log is None:
            log = self.__dict__.setdefault("_audit", {})
        return log

    def put_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        """Append records (as JSON text, sealed when the serializer encrypts, as the SQL
        savers store them: ``_stored.auditcodec``)."""
        thread_id = str(thread_id)
        serde = self.serde
        with self._lock:
            log = self._audit_log().setdefault(thread_id, {})
            last = None
            if log:
                seq, text = next(reversed(log.items()))
                last = open_text(serde, text, audit_place(thread_id, seq))
            stored = chain_audit_records(
                last, thread_id, records, self.audit_key, salt=binds(serde)
            )
            texts = {  # TypeError on non-JSON values, before anything is stored
                r["seq"]: seal_text(serde, json.dumps(r), audit_place(thread_id, r["seq"]))
                for r in stored
            }
            log.update(texts)
            if stored:
                heads = self.__dict__.setdefault("_audit_heads", {})
                head = {"seq": stored[-1]["seq"], "hash": stored[-1]["hash"]}
                heads[thread_id] = seal_text(serde, json.dumps(head), audit_head_place(thread_id))
        return stored

    def _prune_audit(self, thread_id: str, keep: int) -> None:
        """Keep the ``keep`` newest audit records of the thread; the older ones become
        one anchor record (see ``BaseCheckpointSaver.audit_keep_last``)."""
        log = self._audit_log().get(thread_id)
        if not log:
            return
        entries = list(log.items())
        first = open_text(self.serde, entries[0][1], audit_place(thread_id, entries[0][0]))
        real = len(entries) - (1 if is_prune_marker(first) else 0)
        if real <= keep:
            return
        seq, text = entries[len(entries) - keep - 1]
        last = open_text(self.serde, text, audit_place(thread_id, seq))
        marker = json.dumps(audit_prune_marker(last, self.audit_key))
        log.clear()
        log[seq] = seal_text(self.serde, marker, audit_place(thread_id, seq))
        log.update(entries[len(entries) - keep :])

    def audit_head(self, thread_id: str) -> dict[str, Any] | None:
        thread_id = str(thread_id)
        with self._lock:
            head = self.__dict__.get("_audit_heads", {}).get(thread_id)
            return open_text(self.serde, head, audit_head_place(thread_id)) if head else None

    async def aaudit_head(self, thread_id: str) -> dict[str, Any] | None:
        return self.audit_head(thread_id)

    def list_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        thread_id = str(thread_id)
        with self._lock:
            log = self._audit_log().get(thread_id) or {}
            return [
                open_text(self.serde, text, audit_place(thread_id, seq))
                for seq, text in log.items()
            ]

    async def aput_audit(
        self, thread_id: str, records: Sequence[AuditRecord]
    ) -> builtins.list[AuditRecord]:
        return self.put_audit(thread_id, records)

    async def alist_audit(self, thread_id: str) -> builtins.list[AuditRecord]:
        return self.list_audit(thread_id)


MemorySaver = InMemorySaver


class PersistentDict(defaultdict[Any, Any]):
    """A ``defaultdict`` whose contents can be kept in a file between processes.

    ``PersistentDict(default_factory, filename=path)`` starts with what ``path`` holds for
    its ``section`` (an empty or missing file starts empty); :meth:`sync` writes the table
    back (pickle, through a temporary file renamed into place, so a crash never leaves half
    a file), as does leaving its ``with`` block. Several tables may share one file, each in
    its own section: ``InMemorySaver(factory=partial(PersistentDict, filename=path))`` keeps
    its ``storage``, ``writes`` and ``blobs`` in sections of those names and syncs them when
    the saver is closed (``with`` block or ``saver.stack.close()``).

    The file is read with ``pickle``: only load files this program wrote.
    """

    def __init__(self, *args: Any, filename: str, section: str = "data", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filename = filename
        self.section = section
        self.update(self._read_file().get(section, {}))

    def _read_file(self) -> dict[str, Any]:
        if not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0:
            return {}
        with open(self.filename, "rb") as f:
            sections = pickle.load(f)
        if not isinstance(sections, dict):
            raise ValueError(f"{self.filename!r} is not a file written by PersistentDict.")
        return sections

    def use_section(self, section: str) -> None:
        """Switch to ``section`` of the file: the table now holds what it saved there."""
        self.section = section
        self.clear()
        self.update(self._read_file().get(section, {}))

    def sync(self) -> None:
        """Write the table to its section of ``filename`` atomically."""
        sections = self._read_file()
        sections[self.section] = dict(self)
        directory = os.path.dirname(os.path.abspath(self.filename))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".persistentdict-")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(sections, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, self.filename)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise

    def close(self) -> None:
        """Same as :meth:`sync` (the table stays usable)."""
        self.sync()

    def __enter__(self) -> PersistentDict:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:  # pickles as a plain dict of its items
        return (dict, (dict(self),))
