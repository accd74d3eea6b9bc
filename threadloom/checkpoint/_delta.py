"""Append deltas: store only the items a list channel gained since its previous version.

Why: agent threads keep their history in list channels (``add_messages``,
``operator.add``) that grow by a few items per step. Storing the whole list at every
version makes a thread's storage grow with the square of its length; storing only the
appended items plus a pointer to the version they extend makes it grow linearly.

How, without reading anything back from the database on the write path:

* ``DeltaCache`` remembers, per (thread, namespace), the checkpoint this process last
  wrote or read and, for each list channel stored at that checkpoint's version, the
  items stored (by reference) and their *print*: digests of the items' state, taken
  when they were stored. When ``put`` continues from that checkpoint and a channel's new
  value starts with the very items stored, still in the state printed, ``plan()`` emits
  a delta: the new items, the base version they extend, and the chain's root (the
  version holding a full list). Anything else - an item replaced, removed or changed in
  place, a fork from another checkpoint, a value that is not a plain ``list`` - is
  stored whole.
* What a ``put`` costs stays O(items appended) (``DeltaCache`` has the details): the
  stored items are compared by identity (C-level), the new items and the newest few
  stored ones are digested, and every stored item is digested again only once the list
  has grown by a fraction since the last such check. Why digests at all, rather than
  ``is``/``==`` alone: the same object can change after it was stored. ``add_messages``
  assigns ids *in place* to messages already in the list (a first input written without
  ids, then merged on the next step), LangChain's human-in-the-loop middleware edits the
  last AI message's tool calls in place and returns it; an identity check would keep the
  stored copy forever. A digest is one C-level pickle of the items' state
  (``_frozen.state_bytes``, about 0.5 µs a message), not a serialization of each item;
  items that are not plain data are fingerprinted through the saver's serializer instead
  (``serde_fingerprint``).
* The cache may be stale (another process deleted or pruned the thread): savers check,
  in the same transaction as the insert, that every planned base still exists, and store
  the value whole when it does not (``BlobPlan.as_full()``).
* ``resolve()`` rebuilds values from stored rows iteratively (no recursion, cycle-safe),
  decoding each delta once even when several requested versions share a chain.
* ``needed_keys()`` says which stored rows must survive a prune: everything a kept
  checkpoint references plus every base its chain walks through.
* ``ValueCache`` keeps, per process, the stored rows this saver wrote or read and the
  values rebuilt from them (frozen, see ``threadloom.checkpoint._frozen``), keyed by
  (thread, namespace, channel, version). Those keys are immutable (a version is written
  once and never overwritten, and versions carry a random suffix), so a read of a long
  thread neither fetches nor walks its delta chain again: it thaws one frozen copy.

The module is storage-agnostic: the memory, SQLite and Postgres savers share it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from threadloom.checkpoint._frozen import Frozen, freeze, item_states, state_bytes

__all__ = [
    "EMPTY",
    "MAX_CHAIN_DEPTH",
    "BlobPlan",
    "ListPrint",
    "BrokenChainError",
    "DeltaCache",
    "Resolved",
    "StoredBlob",
    "ValueCache",
    "chain_roots",
    "needed_keys",
    "resolve",
    "serde_fingerprint",
    "shared_copy",
]

MAX_CHAIN_DEPTH = 2000
"""After this many deltas in a row, store the list whole again, so a read never walks an
unbounded chain. Growth stays linear in practice (one full copy per 2000 appends)."""

EMPTY: Any = object()
"""Planned value of a channel listed in ``new_versions`` but absent from the values."""

Fingerprint = Callable[[Any], bytes]


class BrokenChainError(ValueError):
    """A delta's base row is missing or the chain loops: the stored data is damaged."""

    def __init__(self, key: Hashable, reason: str) -> None:
        super().__init__(f"{reason} (at {key!r})")
        self.key = key


def serde_fingerprint(dumps_typed: Callable[[Any], tuple[str, bytes]]) -> Fingerprint:
    """Fingerprints from a serializer's ``dumps_typed``: what a saver actually stores."""

    def fingerprint(item: Any) -> bytes:
        tag, data = dumps_typed(item)
        return hashlib.blake2b(data, digest_size=16, person=tag.encode()[:16]).digest()

    return fingerprint


# -- writing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListPrint:
    """A list value as it was stored, in a few bytes: digests of its items' state.

    ``digest`` covers the items ``[0, checked)`` (checked all at once, see
    ``DeltaCache``); each of ``stretches`` - ``(end, digest)``, oldest first - covers the
    items from the previous end (or ``checked``) up to ``end``: what one ``put``
    appended, digested when it was stored. ``length`` is the last end; ``full`` the
    list's length when every item was last digested. A print of one stretch
    (``DeltaCache.print_of``) has ``checked == full == length`` and no stretches.
    """

    length: int
    digest: bytes
    checked: int
    stretches: tuple[tuple[int, bytes], ...] = ()
    full: int = 0


@dataclass(frozen=True, slots=True)
class BlobPlan:
    """How one channel version will be stored: whole, or as items appended to a base."""

    channel: str
    version: str
    value: Any  # the full value, or EMPTY
    base_version: str | None = None  # set for a delta
    root_version: str | None = None  # first version of the chain (a full row); deltas only
    start: int = 0  # index of the first new item in ``value`` (deltas only)
    depth: int = 0  # number of deltas between this version and its root
    printed: ListPrint | None = None  # a list value's print, for the next delta
    items: list[Any] | None = None  # the list's items as planned (a copy), with ``printed``

    @property
    def is_delta(self) -> bool:
        return self.base_version is not None

    @property
    def payload(self) -> Any:
        """What to serialize: the new items for a delta, else the whole value."""
        return self.value[self.start :] if self.is_delta else self.value

    def as_full(self) -> BlobPlan:
        """The same version stored whole (used when the delta's base has disappeared)."""
        return BlobPlan(
            self.channel, self.version, self.value, printed=self.printed, items=self.items
        )


@dataclass(slots=True)
class _ListSnapshot:
    version: str
    printed: ListPrint
    root: str
    depth: int
    items: list[Any] | None  # the items stored, by reference (None: dropped, see max_item_refs)


@dataclass(slots=True)
class _Head:
    checkpoint_id: str
    versions: dict[str, str]
    lists: dict[str, _ListSnapshot] = field(default_factory=dict)
    # the lists this checkpoint's own put stored with every item digested (short lists,
    # whole values, full checks): nothing can have changed them since - no node runs
    # between a run's last put and its ``settle`` - so settle skips them
    settled: frozenset[str] = frozenset()


def _cut(states: list[Any] | None, begin: int, end: int) -> list[Any] | None:
    """The ``item_states`` of ``value[begin:end]``, from those of ``value`` (None: not
    made, or not all plain)."""
    return None if states is None else states[begin:end]


_EMPTY_PRINT: list[ListPrint] = []


def _empty_print() -> ListPrint:
    """The print of no items (the same for every cache: made once)."""
    if not _EMPTY_PRINT:
        data = state_bytes([])
        assert data is not None  # an empty list is plain data
        digest = hashlib.blake2b(data, digest_size=16, person=b"tl-state").digest()
        _EMPTY_PRINT.append(ListPrint(0, digest, 0, (), 0))
    return _EMPTY_PRINT[0]


class DeltaCache:
    """Per-process memory of the last stored list values: their items and prints.

    Keyed by (thread_id, checkpoint_ns), bounded to ``max_heads`` entries (least recently
    used dropped first); thread-safe. Losing an entry only costs one full write, never
    correctness. ``fingerprint`` digests what the saver stores for an item that is not
    plain data (see ``serde_fingerprint``); an item it cannot fingerprint just disables
    the delta.

    What a ``put`` costs (``plan``), for a list that grew from the stored one:

    * the stored items are compared with the new list's first items by identity (one
      C-level list comparison, no digest): an item replaced by another object, removed
      or moved, or a list changed in place, is seen at once and the list stored whole;
    * the newest ``tail_items`` stored items (the print's last stretch, the *tail*) are
      digested again, and the new tail with the appended items: an item stored lately
      and changed in place since (``add_messages`` assigning an id, a node editing the
      last AI message's tool call and returning it, as LangChain's human-in-the-loop
      middleware does) is seen at the very next ``put``. Three digests a ``put``, of
      about ``2 * tail_items + appended`` items;
    * every item stored is digested again once the list has grown by a
      ``1/verify_growth`` part since the last such check (all of it, at once).

    Digest work is then O(items appended) per ``put``, amortized; ``items_digested``
    counts it. The one thing not seen at once: an *older* item (not among the newest
    ``tail_items``) changed in place - by a node, whether it returns the item or not
    (written back over itself, the object is the one stored, and ``==`` cannot tell a
    copy edited alike from it either). LangGraph stores such an edit at the next
    checkpoint that writes the channel, because it serializes the whole list each time;
    here it is stored whole at the next full check, which comes within
    ``length / verify_growth`` appended items, or when the run ends or pauses, whichever
    comes first: the engine then calls the saver's ``settle``, which checks every item
    once (``settle`` below) and overwrites the head's row with the whole list when one
    changed - later than LangGraph, never lost. To store such an edit at its own step,
    write a *new* message with the same id (a copy made before editing): it replaces the
    old one and differs from what was stored.
    ``verify_growth=0`` checks every item at every ``put`` (the strict, O(length) mode).
    """

    def __init__(
        self,
        fingerprint: Fingerprint | None = None,
        *,
        max_heads: int = 256,
        max_depth: int = MAX_CHAIN_DEPTH,
        tail_items: int = 8,
        verify_growth: int = 8,
        max_item_refs: int = 200_000,
    ) -> None:
        if fingerprint is None:
            from threadloom.checkpoint.serde.msgpack import MsgpackSerializer

            fingerprint = serde_fingerprint(MsgpackSerializer(strict=False).dumps_typed)
        self.fingerprint = fingerprint
        self.max_heads = max_heads
        self.max_depth = max_depth
        self.tail_items = tail_items
        self.verify_growth = verify_growth
        self.max_item_refs = max_item_refs
        self.items_digested = 0
        """Items whose state this cache digested, in all (an operation counter: what a
        ``put`` costs beyond serializing what it stores)."""
        self._heads: OrderedDict[tuple[str, str], _Head] = OrderedDict()
        self._item_refs = 0
        self._lock = threading.Lock()

    def plan(
        self,
        thread_id: str,
        ns: str,
        parent_id: str | None,
        values: Mapping[str, Any],
        new_versions: Mapping[str, Any],
    ) -> list[BlobPlan]:
        """One ``BlobPlan`` per channel in ``new_versions``; deltas where it is safe."""
        with self._lock:
            head = self._heads.get((thread_id, ns))
            if head is not None and (parent_id is None or head.checkpoint_id != parent_id):
                head = None
        plans: list[BlobPlan] = []
        for channel, raw_version in new_versions.items():
            version = str(raw_version)
            if channel not in values:
                plans.append(BlobPlan(channel, version, EMPTY))
            else:
                plans.append(self._plan_one(head, channel, version, values[channel]))
        return plans

    def _plan_one(self, head: _Head | None, channel: str, version: str, value: Any) -> BlobPlan:
        if type(value) is not list:
            return BlobPlan(channel, version, value)
        snap = head.lists.get(channel) if head is not None else None
        if (
            head is None
            or snap is None
            or snap.version != head.versions.get(channel)
            or snap.version == version
            or not snap.printed.length
            or len(value) < snap.printed.length
            or snap.depth >= self.max_depth
        ):
            return self._whole(channel, version, value)
        unchanged, printed = self._extend(snap.printed, snap.items, value)
        if not unchanged:  # an old item changed (or cannot be printed)
            return self._whole(channel, version, value)
        return BlobPlan(
            channel,
            version,
            value,
            base_version=snap.version,
            root_version=snap.root,
            start=snap.printed.length,
            depth=snap.depth + 1,
            printed=printed,
            items=None if printed is None else list(value),
        )

    def _whole(self, channel: str, version: str, value: list[Any]) -> BlobPlan:
        printed = self._fresh_print(value)
        items = None if printed is None else list(value)
        return BlobPlan(channel, version, value, printed=printed, items=items)

    def _extend(
        self, old: ListPrint, items: list[Any] | None, value: list[Any]
    ) -> tuple[bool, ListPrint | None]:
        """Whether ``value`` starts with the items ``old`` printed, unchanged; and
        ``value``'s print (None when its new items cannot be printed)."""
        start = old.length
        if items is not None:
            try:  # identity first (C-level): equal but distinct items are digested below
                same = (value if len(value) == start else value[:start]) == items
            except Exception:  # an item's __eq__ failed: compare states instead
                same = True
                items = None
            if not same:
                return False, None
        if (
            items is None
            or self.verify_growth <= 0
            or old.full <= self.tail_items
            or (start - old.full) * self.verify_growth >= old.full
        ):
            states = item_states(value)  # made once for the check and the new print
            if not self._check(value, old, states):
                return False, None
            return True, self._fresh_print(value, states)
        # The last stretch is the tail: the newest items (``tail_items`` of them once the
        # list is long enough), checked again at every put. The items that leave it are
        # given a stretch of their own; the new tail ends with the appended items.
        stretches = old.stretches
        tail_begin = stretches[-2][0] if len(stretches) > 1 else old.checked
        if stretches:
            got = self.print_of(value[tail_begin:start])
            if got is None or got.digest != stretches[-1][1]:
                return False, None
            stretches = stretches[:-1]
        if start == len(value):
            return True, old
        new_begin = max(len(value) - self.tail_items, tail_begin)
        for begin, end in ((tail_begin, new_begin), (new_begin, len(value))):
            if begin < end:
                new = self.print_of(value[begin:end])
                if new is None:
                    return True, None
                stretches = (*stretches, (end, new.digest))
        return True, ListPrint(len(value), old.digest, old.checked, stretches, old.full)

    def _check(self, value: list[Any], old: ListPrint, states: list[Any] | None = None) -> bool:
        """Whether every item ``old`` printed still has the state it was printed with
        (``states``: ``value``'s ``item_states`` if already made)."""
        whole = self.print_of(value[: old.checked], _cut(states, 0, old.checked))
        if whole is None or whole.digest != old.digest:
            return False
        begin = old.checked
        for end, digest in old.stretches:
            got = self.print_of(value[begin:end], _cut(states, begin, end))
            if got is None or got.digest != digest:
                return False
            begin = end
        return True

    def _fresh_print(
        self, value: list[Any], states: list[Any] | None = None
    ) -> ListPrint | None:
        """``value``'s print, every item digested now: its newest ``tail_items`` items as a
        stretch of their own, so that the next ``put`` checks them again (``states``:
        ``value``'s ``item_states`` if already made)."""
        cut = max(len(value) - self.tail_items, 0)
        head = self.print_of(value[:cut], _cut(states, 0, cut))
        tail = self.print_of(value[cut:], _cut(states, cut, len(value)))
        if head is None or tail is None:
            return None
        stretches = ((len(value), tail.digest),) if cut < len(value) else ()
        return ListPrint(len(value), head.digest, cut, stretches, len(value))

    def print_of(self, items: list[Any], states: list[Any] | None = None) -> ListPrint | None:
        """``items``' print (``states``: their ``item_states`` if already made); None when
        one of them cannot be fingerprinted."""
        self.items_digested += len(items)
        if not items:  # (a short list's print has an empty head)
            return _empty_print()
        if states is None:
            states = item_states(items)
        data = None if states is None else state_bytes(states)
        person = b"tl-state"
        if data is None:  # not plain data: through the saver's serializer, item by item
            try:
                data = b"".join([self.fingerprint(item) for item in items])
            except Exception:
                return None
            person = b"tl-items"
        digest = hashlib.blake2b(data, digest_size=16, person=person).digest()
        return ListPrint(len(items), digest, len(items), (), len(items))

    def remember_put(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        channel_versions: Mapping[str, Any],
        plans: Iterable[BlobPlan],
    ) -> None:
        """Record the checkpoint just stored as the head this process knows."""
        versions = {c: str(v) for c, v in channel_versions.items()}
        with self._lock:
            old = self._heads.get((thread_id, ns))
            lists = {}
            settled = set()
            if old is not None:  # unchanged channels keep their snapshot (same version)
                lists = {c: s for c, s in old.lists.items() if versions.get(c) == s.version}
            for plan in plans:
                if plan.printed is not None and type(plan.value) is list:
                    # stored whole, or short enough that the put digested every item
                    if not plan.is_delta or plan.printed.length <= self.tail_items:
                        settled.add(plan.channel)
                    root = plan.root_version if plan.is_delta else plan.version
                    lists[plan.channel] = _ListSnapshot(
                        plan.version,
                        plan.printed,
                        root or plan.version,
                        plan.depth,
                        plan.items if plan.items is not None else list(plan.value),
                    )
                else:
                    lists.pop(plan.channel, None)
            self._store((thread_id, ns), _Head(checkpoint_id, versions, lists,
                                               frozenset(settled)))

    def remember_loaded(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        channel_versions: Mapping[str, Any],
        resolved: Mapping[str, Resolved],
    ) -> None:
        """Record a checkpoint just read, so a run continuing from it can append deltas.

        Values are printed now, before anyone can change them in place. When the cache
        already holds this checkpoint its prints are exact, but the items it would
        compare by identity are not the ones just read (a run goes on with those): it
        lets them go, and the next ``put`` checks every item's state instead (once per
        run, as loading the values costs O(length) anyway). Holding the objects just read
        instead would keep every ``get_state`` result alive until the next read, which
        costs reads more in garbage collection than that one check costs a run.
        """
        key = (thread_id, ns)
        with self._lock:
            known = self._heads.get(key)
            if known is not None and known.checkpoint_id == checkpoint_id:
                for channel in resolved:
                    snap = known.lists.get(channel)
                    if snap is not None and snap.items is not None:
                        self._item_refs -= len(snap.items)
                        snap.items = None
                self._heads.move_to_end(key)
                return
        versions = {c: str(v) for c, v in channel_versions.items()}
        lists = {}
        for channel, r in resolved.items():
            if type(r.value) is list and r.value and channel in versions:
                printed = self._fresh_print(r.value)
                if printed is not None:
                    lists[channel] = _ListSnapshot(
                        versions[channel], printed, r.root, r.depth, list(r.value)
                    )
        with self._lock:
            self._store(key, _Head(checkpoint_id, versions, lists))

    def settle(self, thread_id: str, ns: str, checkpoint_id: str) -> list[BlobPlan]:
        """The full check a run ends with: every item of the lists stored at checkpoint
        ``checkpoint_id`` (the head this process wrote) digested again.

        A ``put`` checks only the newest items (see the class docstring); an older item
        changed in place since it was stored is otherwise seen at the next full check,
        which a run that ends first never reaches. Returns one plan per list whose
        stored items changed: the head's version stored *whole*, as the items are now
        (the saver overwrites that version's row, see ``settle`` on the savers). Lists
        found unchanged count as fully checked, so the next periodic check moves on.
        Costs O(length) once per run (a run's first read thaws the lists anyway).
        """
        with self._lock:
            head = self._heads.get((thread_id, ns))
            if head is None or head.checkpoint_id != checkpoint_id:
                return []
            snaps = [
                (channel, snap)
                for channel, snap in head.lists.items()
                if snap.items is not None and head.versions.get(channel) == snap.version
                and channel not in head.settled
            ]
        plans: list[BlobPlan] = []
        for channel, snap in snaps:
            items = snap.items
            if items is None:
                continue
            if self._check(items, snap.printed):
                printed = snap.printed
                if printed.full < printed.length:  # every item checked now
                    snap.printed = ListPrint(
                        printed.length, printed.digest, printed.checked, printed.stretches,
                        printed.length,
                    )
                continue
            plan = self._whole(channel, snap.version, list(items))
            if plan.printed is None:  # cannot be printed any more: forget the list
                with self._lock:
                    head.lists.pop(channel, None)
                    self._item_refs -= len(items)
            else:
                snap.printed, snap.root, snap.depth = plan.printed, snap.version, 0
            plans.append(plan)
        return plans

    def head_versions(self, thread_id: str, ns: str) -> dict[str, str]:
        """The channel versions of the newest checkpoint this process knows of the thread
        (empty when it knows none): what its next head read most likely returns."""
        with self._lock:
            head = self._heads.get((thread_id, ns))
            return {} if head is None else dict(head.versions)

    def forget(self, thread_id: str) -> None:
        """Drop everything known about a thread (after delete or prune)."""
        with self._lock:
            for key in [k for k in self._heads if k[0] == thread_id]:
                self._drop(self._heads.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._heads.clear()
            self._item_refs = 0

    def _store(self, key: tuple[str, str], head: _Head) -> None:
        old = self._heads.pop(key, None)
        if old is not None:
            self._drop(old)
        self._heads[key] = head
        self._item_refs += sum(len(s.items or ()) for s in head.lists.values())
        while len(self._heads) > self.max_heads:
            self._drop(self._heads.popitem(last=False)[1])
        self._trim()

    def _drop(self, head: _Head) -> None:
        self._item_refs -= sum(len(s.items or ()) for s in head.lists.values())

    def _trim(self) -> None:
        """Keep at most ``max_item_refs`` stored items referenced: the least recently used
        heads let theirs go (their next ``put`` checks every item's state instead)."""
        if self._item_refs <= self.max_item_refs:
            return
        for head in self._heads.values():
            for snap in head.lists.values():
                if snap.items is not None:
                    self._item_refs -= len(snap.items)
                    snap.items = None
            if self._item_refs <= self.max_item_refs:
                return


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One stored row: a full value, or (``base_version`` set) the items appended to it."""

    type: str
    blob: bytes | None
    base_version: str | None = None
    root_version: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A rebuilt value, with the chain facts a later delta needs."""

    value: Any
    root: str  # version of the chain's full row
    depth: int  # deltas applied on top of it


BlobKey = tuple[Any, ...]  # (..., channel, version): the version is always last


def _base_key(key: BlobKey, base_version: str) -> BlobKey:
    return (*key[:-1], base_version)


def resolve(
    rows: Mapping[BlobKey, StoredBlob],
    targets: Iterable[BlobKey],
    decode: Callable[[BlobKey, StoredBlob], Any],
) -> dict[BlobKey, Resolved]:
    """Rebuild the value of each target key present in ``rows``.

    Targets missing from ``rows`` are left out (an absent blob means an empty channel).
    ``decode(key, row)`` turns a row into a Python value; it is called once per row.
    Raises ``BrokenChainError`` when a base is missing, a chain loops, or a value that
    deltas extend is not a list.
    """
    out: dict[BlobKey, Resolved] = {}
    wanted = {t for t in targets if t in rows}
    for target in wanted:
        if target in out:
            continue
        chain: list[BlobKey] = []
        seen: set[BlobKey] = set()
        key = target
        while True:
            if key in out:
                base = out[key]
                acc_root, acc_depth, acc = base.root, base.depth, base.value
                break
            row = rows.get(key)
            if row is None:
                raise BrokenChainError(key, "the base version of a stored list delta is missing")
            if row.base_version is None:
                acc = decode(key, row)
                acc_root, acc_depth = str(key[-1]), 0
                if key in wanted:
                    out[key] = Resolved(acc, acc_root, 0)
                break
            if key in seen:
                raise BrokenChainError(key, "stored list deltas form a loop")
            seen.add(key)
            chain.append(key)
            key = _base_key(key, row.base_version)
        if chain and type(acc) is not list:
            raise BrokenChainError(key, "a stored list delta extends a value that is not a list")
        acc = list(acc) if chain else acc
        for key in reversed(chain):
            items = decode(key, rows[key])
            if type(items) is not list:
                raise BrokenChainError(key, "a stored list delta does not hold a list")
            acc.extend(items)
            acc_depth += 1
            if key in wanted:
                out[key] = Resolved(list(acc), acc_root, acc_depth)
    return out


def shared_copy(value: Any) -> Any:
    """The value for a second checkpoint of the same read that holds the same version: a
    list of its own over the same items (values rebuilt in one read share the items
    common to them, as ``resolve`` builds them)."""
    return list(value) if type(value) is list else value


def chain_roots(rows: Mapping[BlobKey, StoredBlob]) -> set[BlobKey]:
    """Keys of the chain roots the delta rows in ``rows`` need (to fetch in one query)."""
    return {
        _base_key(k, r.root_version or r.base_version or "")
        for k, r in rows.items()
        if r.base_version is not None
    }


def needed_keys(referenced: Iterable[BlobKey], bases: Mapping[BlobKey, str | None]) -> set[BlobKey]:
    """``referenced`` plus every base their delta chains walk through.

    ``bases`` maps each stored key to its base version (None for a full row). Keys not in
    ``bases`` are ignored (nothing stored for them).
    """
    needed: set[BlobKey] = set()
    for start in referenced:
        key: BlobKey | None = start
        while key is not None and key in bases and key not in needed:
            needed.add(key)
            base = bases[key]
            key = _base_key(key, base) if base is not None else None
    return needed


# -- caching rebuilt values ----------------------------------------------------------

_ENTRY_OVERHEAD = 100  # rough bytes of bookkeeping per cached entry


@dataclass(slots=True)
class _Cached:
    """A stored row and, once read, the value it rebuilds to (with its chain), frozen."""

    row: StoredBlob
    size: int  # estimated bytes held: the row's bytes plus the frozen value's
    frozen: Frozen | None = None
    root: str = ""  # chain facts of the frozen value (see ``Resolved``)
    depth: int = 0
    unfreezable: bool = False  # freeze() refused the value: decode it on every read


class ValueCache:
    """Process-local LRU of channel values, keyed by (thread, namespace, channel, version).

    What it holds: the rows this saver stored (``add_rows``, at ``put``) or fetched, and,
    once read, the value they rebuild to, frozen (``threadloom.checkpoint._frozen``). A
    key is written once and never changes, so an entry can only go stale if its thread is
    deleted or pruned by *another process* and then written again with the very same
    version strings, which the savers' versions (a counter plus 64 random bits) rule out;
    deletes and prunes in this process drop the thread's entries. Damage done to rows
    behind the saver's back (by hand, in SQL) shows only once the cached entries are gone
    (``clear``).

    What readers get: a value of their own, every time - the frozen copy thawed anew, or
    (for values ``freeze`` refuses) the row decoded anew. Changing a returned message in
    place, as human-in-the-loop edits do before ``update_state``, never reaches the cache
    or another reader.

    Bounded by ``max_bytes`` (an estimate of the memory entries hold) and
    ``max_entries``; least recently used first out. ``max_bytes=0`` disables it.
    Thread-safe.
    """

    def __init__(self, max_bytes: int = 64 * 2**20, max_entries: int = 100_000) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[BlobKey, _Cached] = OrderedDict()
        self._by_thread: dict[Any, set[BlobKey]] = {}
        self._bytes = 0
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    # -- filling -------------------------------------------------------------------

    def add_rows(self, rows: Mapping[BlobKey, StoredBlob]) -> None:
        """Remember stored rows (already-known keys are kept: their bytes are the same)."""
        if self.max_bytes <= 0:
            return
        with self._lock:
            for key, row in rows.items():
                if key in self._entries:
                    self._entries.move_to_end(key)
                    continue
                self._insert(key, _Cached(row, _row_size(row)))
            self._evict()

    def add_resolved(
        self, rows: Mapping[BlobKey, StoredBlob], resolved: Mapping[BlobKey, Resolved]
    ) -> None:
        """Remember rows fetched from storage and the values rebuilt from them.

        Call it before handing the values out: they are frozen now, as they were stored.
        """
        if self.max_bytes <= 0:
            return
        with self._lock:
            for key, got in resolved.items():
                row = rows.get(key)
                if row is None:
                    continue
                old = self._entries.get(key)
                if old is not None and old.frozen is not None:
                    self._entries.move_to_end(key)
                    continue
                entry = _Cached(row, _row_size(row))
                self._freeze(entry, got, held=False)
                self._insert(key, entry)
            for key, row in rows.items():  # chain rows: later versions extend them
                if key not in self._entries:
                    self._insert(key, _Cached(row, _row_size(row)))
            self._evict()

    # -- reading -------------------------------------------------------------------

    def lookup(
        self,
        keys: Iterable[BlobKey],
        decode: Callable[[BlobKey, StoredBlob], Any],
        *,
        freeze: bool = True,
    ) -> tuple[dict[BlobKey, Resolved], list[BlobKey]]:
        """Values for ``keys`` rebuilt from the cache, and the keys it cannot serve.

        ``decode(key, row)`` turns a cached row into a value (the saver's decoder). Every
        returned value is the caller's own (see the class docstring). ``freeze=False``
        (listing): values rebuilt from rows are not frozen into the cache - a listing
        reads most versions once, and freezing them would cost more than it saves.
        """
        found: dict[BlobKey, Resolved] = {}
        missing: list[BlobKey] = []
        if self.max_bytes <= 0:
            return found, list(keys)
        with self._lock:
            # Deepest versions first: a shallower version of the same chain is then a
            # prefix of a list already thawed in this call (see ``_prefix``).
            order = sorted(keys, key=self._depth, reverse=True)
            for key in order:
                got = self._prefix(key, found) or self._resolve(key, decode, freeze)
                if got is None:
                    missing.append(key)
                else:
                    found[key] = got
            self._evict()
        return found, missing

    def thawed(self, keys: Iterable[BlobKey]) -> dict[BlobKey, Resolved]:
        """The values of those ``keys`` that are held frozen, each thawed anew - what
        ``lookup`` would return for them - and nothing else (no decoding): for a read to
        prepare while its query is in flight."""
        found: dict[BlobKey, Resolved] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and entry.frozen is not None:
                    self._entries.move_to_end(key)
                    found[key] = Resolved(entry.frozen.thaw(), entry.root, entry.depth)
        return found

    def _depth(self, key: BlobKey) -> int:
        entry = self._entries.get(key)
        return -1 if entry is None or entry.frozen is None else entry.depth

    def _prefix(self, key: BlobKey, found: Mapping[BlobKey, Resolved]) -> Resolved | None:
        """``key``'s value as a slice of a deeper version of its chain thawed in the same
        call, when ``key`` lies on that version's chain.

        Values rebuilt in one read share the items common to them, as ``resolve`` builds
        them from storage; each read still gets items of its own.
        """
        entry = self._entries.get(key)
        if entry is None or entry.frozen is None or entry.frozen.single:
            return None
        for other, got in found.items():
            if other[:-1] != key[:-1] or got.root != entry.root or got.depth <= entry.depth:
                continue
            at: BlobKey | None = other
            for _ in range(got.depth - entry.depth):  # walk back to entry's depth
                cur = self._entries.get(at) if at is not None else None
                if cur is None or cur.row.base_version is None:
                    at = None
                    break
                at = _base_key(at, cur.row.base_version)
            if at == key and type(got.value) is list:
                self._entries.move_to_end(key)
                return Resolved(got.value[: entry.frozen.length], entry.root, entry.depth)
        return None

    def _resolve(
        self, key: BlobKey, decode: Callable[[BlobKey, StoredBlob], Any], freeze: bool = True
    ) -> Resolved | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        if entry.frozen is not None:
            return Resolved(entry.frozen.thaw(), entry.root, entry.depth)
        row = entry.row
        if row.base_version is None:
            got = Resolved(decode(key, row), str(key[-1]), 0)
        else:  # a delta: walk back to a frozen value or a full row, all within the cache
            chain: list[tuple[BlobKey, _Cached]] = []
            seen: set[BlobKey] = set()
            at, cur = key, entry
            while cur.frozen is None and cur.row.base_version is not None:
                if at in seen:
                    return None  # a loop: let the storage path report it
                seen.add(at)
                chain.append((at, cur))
                at = _base_key(at, cur.row.base_version)
                nxt = self._entries.get(at)
                if nxt is None:
                    return None
                cur = nxt
            if cur.frozen is not None:
                base = Resolved(cur.frozen.thaw(), cur.root, cur.depth)
            else:
                base = Resolved(decode(at, cur.row), str(at[-1]), 0)
            if type(base.value) is not list:
                return None
            acc = base.value
            for k, c in reversed(chain):
                items = decode(k, c.row)
                if type(items) is not list:
                    return None
                acc.extend(items)
            got = Resolved(acc, base.root, base.depth + len(chain))
        if freeze and not entry.unfreezable:
            self._freeze(entry, got, held=True)
        return got

    # -- dropping ------------------------------------------------------------------

    def forget(self, thread_id: Any) -> None:
        """Drop every entry of a thread (after a delete or prune)."""
        with self._lock:
            for key in self._by_thread.pop(thread_id, set()):
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self._bytes -= entry.size

    def drop(self, keys: Iterable[BlobKey]) -> None:
        """Drop the entries of ``keys`` (rows a saver overwrote, see ``DeltaCache.settle``)."""
        with self._lock:
            for key in keys:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    self._bytes -= entry.size
                    self._by_thread.get(key[0], set()).discard(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_thread.clear()
            self._bytes = 0

    # -- internals -----------------------------------------------------------------

    def _freeze(self, entry: _Cached, got: Resolved, *, held: bool) -> None:
        """Freeze ``got`` into ``entry``; ``held``: the entry is already counted."""
        frozen = freeze(got.value)
        if frozen is None:
            entry.unfreezable = True
            return
        entry.frozen, entry.root, entry.depth = frozen, got.root, got.depth
        entry.size += frozen.size
        if held:
            self._bytes += frozen.size

    def _insert(self, key: BlobKey, entry: _Cached) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._entries[key] = entry
        self._bytes += entry.size
        self._by_thread.setdefault(key[0], set()).add(key)

    def _evict(self) -> None:
        while self._entries and (
            self._bytes > self.max_bytes or len(self._entries) > self.max_entries
        ):
            key, entry = self._entries.popitem(last=False)
            self._bytes -= entry.size
            keys = self._by_thread.get(key[0])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_thread[key[0]]


def _row_size(row: StoredBlob) -> int:
    return len(row.blob or b"") + _ENTRY_OVERHEAD
