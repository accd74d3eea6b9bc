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
  (``frozen.state_bytes``, about 0.5 µs a message), not a serialization of each item;
  items that are not plain data are fingerprinted through the saver's serializer instead
  (``serde_fingerprint``).
* Short lists are not followed: up to ``SMALL_LIST`` items a list is stored whole at
  every put, unprinted, until it grows past that (a delta would save next to nothing,
  while printing and keeping the items would cost every put and read).
* The cache may be stale (another process deleted or pruned the thread): savers check,
  in the same transaction as the insert, that every planned base still exists, and store
  the value whole when it does not (``BlobPlan.as_full()``).

Reading a chain back is ``chains`` (``resolve()``, ``needed_keys()``); the values rebuilt
from chains are kept, frozen, by ``cache.ValueCache``. The module is storage-agnostic: the
memory, SQLite and Postgres savers share it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xxhash import xxh3_128, xxh3_128_digest

from threadloom.checkpoint._values.chains import EMPTY, Resolved
from threadloom.checkpoint._values.frozen import item_states, state_bytes
from threadloom.checkpoint.serde.msgpack import MsgpackSerializer

__all__ = [
    "MAX_CHAIN_DEPTH",
    "SMALL_LIST",
    "BlobPlan",
    "ListPrint",
    "DeltaCache",
    "serde_fingerprint",
]

MAX_CHAIN_DEPTH = 2000
"""After this many deltas in a row, store the list whole again, so a read never walks an
unbounded chain. Growth stays linear in practice (one full copy per 2000 appends)."""

SMALL_LIST = 8
"""Lists up to this long that the cache does not follow yet are stored whole, unprinted:
a delta would save next to nothing there, while printing and keeping the items costs
every put and read. A list followed (printed at a longer length) stays followed when it
shrinks, so its deltas and the checks of its stored items go on."""

Fingerprint = Callable[[Any], bytes]


def serde_fingerprint(dumps_typed: Callable[[Any], tuple[str, bytes]]) -> Fingerprint:
    """Fingerprints from a serializer's ``dumps_typed``: what a saver actually stores."""

    def fingerprint(item: Any) -> bytes:
        return row_fingerprint(*dumps_typed(item))

    return fingerprint


def row_fingerprint(tag: str, data: bytes) -> bytes:
    """The fingerprint of a value serialized as ``(tag, data)`` (``serde_fingerprint``):
    also what a saver passes to ``DeltaCache.finish_row`` for a row it serialized."""
    hasher = xxh3_128(tag.encode())
    hasher.update(b"\0")
    hasher.update(data)
    return hasher.digest()


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

    A *row print* (``row``, made by ``DeltaCache.finish_row`` for a list stored whole)
    has for ``digest`` the fingerprint of the row the saver serialized, ``[0, checked)``
    being the whole list, and its first stretch, the tail, begins at ``first`` (inside
    the digested items, so that the next ``put`` checks the newest items again).
    """

    length: int
    digest: bytes
    checked: int
    stretches: tuple[tuple[int, bytes], ...] = ()
    full: int = 0
    first: int = -1  # where the first stretch begins (-1: at ``checked``)
    row: bool = False  # ``digest`` fingerprints the serialized ``[0, checked)``

    @property
    def begin(self) -> int:
        """Where the first stretch begins."""
        return self.checked if self.first < 0 else self.first


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
    # stored whole because it no longer extended the stored list (an item replaced,
    # removed or changed in place); with ``printed`` None: not printed (see ``_replaced``)
    replaced: bool = False

    @property
    def is_delta(self) -> bool:
        return self.base_version is not None

    @property
    def needs_row(self) -> bool:
        """Whether the print waits for the row's fingerprint (``DeltaCache.finish_row``)."""
        return self.printed is not None and self.printed.row and not self.printed.digest

    @property
    def payload(self) -> Any:
        """What to serialize: the new items for a delta, else the whole value."""
        return self.value[self.start :] if self.is_delta else self.value

    def as_full(self) -> BlobPlan:
        """The same version stored whole (used when the delta's base has disappeared)."""
        return BlobPlan(
            self.channel, self.version, self.value, printed=self.printed, items=self.items,
            replaced=self.replaced,
        )


@dataclass(slots=True)
class _ListSnapshot:
    version: str
    printed: ListPrint | None  # None: stored whole and not printed (``DeltaCache._replaced``)
    root: str
    depth: int
    items: list[Any] | None  # the items stored, by reference (None: dropped, see max_item_refs)
    replaced: bool = False  # stored whole as it no longer extended the list stored before


@dataclass(slots=True)
class _Head:
    checkpoint_id: str
    versions: dict[str, str]
    lists: dict[str, _ListSnapshot] = field(default_factory=dict)
    # the lists this checkpoint's own put stored with every item digested (short lists,
    # whole values, full checks): nothing can have changed them since - no node runs
    # between a run's last put and its ``settle`` - so settle skips them
    settled: frozenset[str] = frozenset()
    # the atoms of this checkpoint (``_stored.inline``): the value of each at its version
    # in ``versions``, as stored - what a checkpoint continuing from it carries in its row
    atoms: dict[str, Any] = field(default_factory=dict)


def _cut(states: list[Any] | None, begin: int, end: int) -> list[Any] | None:
    """The ``item_states`` of ``value[begin:end]``, from those of ``value`` (None: not
    made, or not all plain)."""
    return None if states is None else states[begin:end]


def _extends(value: list[Any], items: list[Any] | None) -> bool:
    """Whether ``value`` starts with ``items`` (identical objects, or equal ones: one C-level
    list comparison; an item whose ``__eq__`` fails counts as changed). Only picks how a
    list stored whole anyway is remembered (``DeltaCache._replaced``)."""
    if items is None or len(value) < len(items):
        return False
    try:
        return value[: len(items)] == items
    except Exception:
        return False


_STATES = 1  # ``_digest`` seeds: a print of item states never equals one of fingerprints
_FINGERPRINTS = 2


def _digest(data: bytes, kind: int) -> bytes:
    """The 16-byte digest of a print's ``data`` (``kind``: what the bytes are).

    xxh3-128: a print only tells whether the same items changed in place within this
    process (nothing is stored or compared across processes, no input is adversarial),
    so a fast non-cryptographic hash with 128 bits suffices; it hashes a 10,000-item
    list's 320 kB of state in ~7 µs where blake2b took ~330 µs.
    """
    return xxh3_128_digest(data, seed=kind)


_EMPTY_PRINT: list[ListPrint] = []


def _empty_print() -> ListPrint:
    """The print of no items (the same for every cache: made once)."""
    if not _EMPTY_PRINT:
        data = state_bytes([])
        assert data is not None  # an empty list is plain data
        _EMPTY_PRINT.append(ListPrint(0, _digest(data, _STATES), 0, (), 0))
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

    A list that is not extended but changed (an item replaced or removed: a reducer that
    updates items by id) is stored whole, printed, so that appends after it are deltas
    again. When that happens at two ``put``s in a row, the list is being rewritten, not
    grown: from then on it is stored whole *without* a print (``_replaced``: printing
    cost as much as serializing it), and printed again at the first ``put`` that extends
    it by identity (stored whole once more, its deltas resuming at the next). A list so
    stored is settled only if a later ``put`` did not write it; having no print to
    compare with, ``settle`` then stores it whole again.
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
        row_prints: bool = False,
        small_list: int = SMALL_LIST,
    ) -> None:
        if fingerprint is None:
            fingerprint = serde_fingerprint(MsgpackSerializer(strict=False).dumps_typed)
        self.fingerprint = fingerprint
        self.max_heads = max_heads
        self.max_depth = max_depth
        self.tail_items = tail_items
        self.verify_growth = verify_growth
        self.max_item_refs = max_item_refs
        self.small_list = small_list
        """Lists up to this long, not followed yet, are stored whole (see ``SMALL_LIST``)."""
        self.row_prints = row_prints
        """Whether ``plan`` leaves a list stored whole to be printed from its serialized
        row: the saver then passes every plan whose ``needs_row`` through ``finish_row``."""
        self.items_digested = 0
        """Items whose state this cache digested, in all (an operation counter: what a
        ``put`` costs beyond serializing what it stores)."""
        self.items_copied = 0
        """Item references this cache copied into the lists it keeps, in all (an operation
        counter: a ``put`` that appends to a list it stored copies the appended items, not
        the list; see ``_extend``)."""
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
        if snap is None and len(value) <= self.small_list:
            return BlobPlan(channel, version, value)  # whole, not followed: see SMALL_LIST
        if (
            head is None
            or snap is None
            or snap.version != head.versions.get(channel)
            or snap.version == version
        ):
            return self._whole(channel, version, value, row=True)
        if snap.printed is None:  # stored whole, unprinted: rewritten at every put so far
            if _extends(value, snap.items):  # growing again: print it (deltas follow)
                return self._whole(channel, version, value, row=True)
            return self._replaced(channel, version, value)
        if (
            len(value) < snap.printed.length
            or not snap.printed.length
            or snap.depth >= self.max_depth
        ):
            return self._changed(snap, channel, version, value)
        claimed = self._claim(snap)
        unchanged, printed, copy = self._extend(snap.printed, claimed, value)
        if not unchanged:  # an old item changed (or cannot be printed)
            self._give_back(snap, claimed)
            return self._changed(snap, channel, version, value)
        if printed is not None and copy is None:
            copy = self._copy(value)
        return BlobPlan(
            channel,
            version,
            value,
            base_version=snap.version,
            root_version=snap.root,
            start=snap.printed.length,
            depth=snap.depth + 1,
            printed=printed,
            items=None if printed is None else copy,
        )

    def _whole(
        self, channel: str, version: str, value: list[Any], *, row: bool = False
    ) -> BlobPlan:
        """``value`` stored whole, printed; with ``row`` (and ``row_prints``) only its
        tail is digested now, the rest printed from the row (``finish_row``)."""
        if row and self.row_prints and len(value) > self.tail_items:
            cut = len(value) - self.tail_items
            tail = self.print_of(value[cut:])
            if tail is not None:
                pending = ListPrint(
                    len(value), b"", len(value), ((len(value), tail.digest),), len(value),
                    cut, True,
                )
                return BlobPlan(
                    channel, version, value, printed=pending, items=self._copy(value)
                )
        printed = self._fresh_print(value)
        items = None if printed is None else self._copy(value)
        return BlobPlan(channel, version, value, printed=printed, items=items)

    def finish_row(self, plan: BlobPlan, row: tuple[str, bytes] | None) -> BlobPlan:
        """``plan`` (whose ``needs_row``) with its print complete: the fingerprint of
        ``row``, what the saver serialized for it with the serializer that fingerprints
        (one serialization for the row and the print, instead of a digest of every item
        on top of it), or - ``row`` None: serialized otherwise (encrypted, bound to its
        place) - its items digested now."""
        assert plan.printed is not None
        if row is None:
            printed = self._fresh_print(plan.value)
            if printed is None:
                return BlobPlan(plan.channel, plan.version, plan.value, replaced=plan.replaced)
        else:
            old = plan.printed
            printed = ListPrint(
                old.length, row_fingerprint(*row), old.checked, old.stretches, old.full,
                old.first, True,
            )
        return BlobPlan(
            plan.channel, plan.version, plan.value, printed=printed, items=plan.items,
            replaced=plan.replaced,
        )

    def _changed(
        self, snap: _ListSnapshot, channel: str, version: str, value: list[Any]
    ) -> BlobPlan:
        """The plan for a list that does not extend the one stored (``snap``): whole;
        printed the first time, not when the stored one was not an extension either."""
        if snap.replaced and snap.items is not None:
            return self._replaced(channel, version, value)
        plan = self._whole(channel, version, value, row=True)
        return BlobPlan(
            channel, version, value, printed=plan.printed, items=plan.items, replaced=True
        )

    def _replaced(self, channel: str, version: str, value: list[Any]) -> BlobPlan:
        """Whole, not printed: only its items, kept for the identity comparison that
        tells whether the next value extends it."""
        return BlobPlan(channel, version, value, items=self._copy(value), replaced=True)

    def _copy(self, items: list[Any]) -> list[Any]:
        """A list of ``items`` for the cache to keep (counted in ``items_copied``)."""
        self.items_copied += len(items)
        return list(items)

    def _claim(self, snap: _ListSnapshot) -> list[Any] | None:
        """``snap``'s items, taken from it: the caller may extend the list in place and
        keep it as the next snapshot's (``_extend``). Nobody else holds it then - a
        ``plan`` from the same head meanwhile, or one after this ``put`` failed, checks
        every item's state instead, as when the items were let go (``max_item_refs``)."""
        with self._lock:
            items = snap.items
            if items is not None:
                snap.items = None
                self._item_refs -= len(items)
        return items

    def _give_back(self, snap: _ListSnapshot, items: list[Any] | None) -> None:
        """Return claimed ``items`` to ``snap`` as they were (``_extend`` did not keep
        them: the list is not an extension of them)."""
        if items is None or snap.printed is None:
            return
        del items[snap.printed.length :]
        with self._lock:
            if snap.items is None:
                snap.items = items
                self._item_refs += len(items)

    def _extend(
        self, old: ListPrint, items: list[Any] | None, value: list[Any]
    ) -> tuple[bool, ListPrint | None, list[Any] | None]:
        """Whether ``value`` starts with the items ``old`` printed, unchanged;
        ``value``'s print (None when its new items cannot be printed); and a copy of
        ``value``'s items when comparing them made one (the copy a delta's snapshot
        keeps), else None.

        ``items`` (claimed, see ``_claim``) are extended in place with the new items and
        compared with ``value`` whole: they become that copy without copying the stored
        items again (a slice of a 10,000-item list, and freeing the old one, cost more
        than the rest of the comparison)."""
        start = old.length
        copy = None
        if items is not None:
            if len(items) != start:  # (never: a snapshot's items are its print's)
                return False, None, None
            appended = value[start:]
            self.items_copied += len(appended)
            items += appended
            try:  # identity first (C-level): equal but distinct items are digested below
                same = items == value
            except Exception:  # an item's __eq__ failed: compare states instead
                same = True
                items = None
            if not same:
                return False, None, None
            copy = self._copy(value) if items is None else items
        if (
            items is None
            or self.verify_growth <= 0
            or old.full <= self.tail_items
            or (start - old.full) * self.verify_growth >= old.full
        ):
            states = item_states(value)  # made once for the check and the new print
            if not self._check(value, old, states):
                return False, None, None
            return True, self._fresh_print(value, states), copy
        # The last stretch is the tail: the newest items (``tail_items`` of them once the
        # list is long enough), checked again at every put. The items that leave it are
        # given a stretch of their own; the new tail ends with the appended items.
        stretches = old.stretches
        tail_begin = stretches[-2][0] if len(stretches) > 1 else old.begin
        if stretches:
            got = self.print_of(value[tail_begin:start])
            if got is None or got.digest != stretches[-1][1]:
                return False, None, None
            stretches = stretches[:-1]
        if start == len(value):
            return True, old, copy
        new_begin = max(len(value) - self.tail_items, tail_begin)
        for begin, end in ((tail_begin, new_begin), (new_begin, len(value))):
            if begin < end:
                new = self.print_of(value[begin:end])
                if new is None:
                    return True, None, None
                stretches = (*stretches, (end, new.digest))
        return True, ListPrint(
            len(value), old.digest, old.checked, stretches, old.full, old.first, old.row
        ), copy

    def _check(self, value: list[Any], old: ListPrint, states: list[Any] | None = None) -> bool:
        """Whether every item ``old`` printed still has the state it was printed with
        (``states``: ``value``'s ``item_states`` if already made)."""
        if old.row:  # serialized again, as the row was
            self.items_digested += old.checked
            try:
                same = self.fingerprint(value[: old.checked]) == old.digest
            except Exception:  # cannot be serialized any more: changed
                return False
            if not same:
                return False
        else:
            whole = self.print_of(value[: old.checked], _cut(states, 0, old.checked))
            if whole is None or whole.digest != old.digest:
                return False
        begin = old.begin
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
        kind = _STATES
        if data is None:  # not plain data: through the saver's serializer, item by item
            try:
                data = b"".join([self.fingerprint(item) for item in items])
            except Exception:
                return None
            kind = _FINGERPRINTS
        return ListPrint(len(items), _digest(data, kind), len(items), (), len(items))

    def remember_put(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        channel_versions: Mapping[str, Any],
        plans: Iterable[BlobPlan],
        atoms: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the checkpoint just stored as the head this process knows (``atoms``:
        the values its row carries, see ``carried_atoms``)."""
        versions = {c: str(v) for c, v in channel_versions.items()}
        with self._lock:
            old = self._heads.get((thread_id, ns))
            lists = {}
            settled = set()
            if old is not None:  # unchanged channels keep their snapshot (same version)
                lists = {c: s for c, s in old.lists.items() if versions.get(c) == s.version}
            for plan in plans:
                if type(plan.value) is not list:
                    lists.pop(plan.channel, None)
                elif plan.printed is None and plan.replaced and plan.items is not None:
                    settled.add(plan.channel)  # stored whole by this put: as it is now
                    lists[plan.channel] = _ListSnapshot(
                        plan.version, None, plan.version, 0, plan.items, True
                    )
                elif plan.printed is not None:
                    # stored whole, or short enough that the put digested every item
                    if not plan.is_delta or plan.printed.length <= self.tail_items:
                        settled.add(plan.channel)
                    root = plan.root_version if plan.is_delta else plan.version
                    lists[plan.channel] = _ListSnapshot(
                        plan.version,
                        plan.printed,
                        root or plan.version,
                        plan.depth,
                        plan.items if plan.items is not None else self._copy(plan.value),
                        plan.replaced,
                    )
                else:
                    lists.pop(plan.channel, None)
            self._store((thread_id, ns), _Head(checkpoint_id, versions, lists,
                                               frozenset(settled), dict(atoms or {})))

    def remember_loaded(
        self,
        thread_id: str,
        ns: str,
        checkpoint_id: str,
        channel_versions: Mapping[str, Any],
        resolved: Mapping[str, Resolved],
        atoms: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a checkpoint just read, so a run continuing from it can append deltas
        (``atoms``: its values of the types a row carries, see ``carried_atoms``).

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
            if type(r.value) is list and len(r.value) > self.small_list and channel in versions:
                printed = self._fresh_print(r.value)
                if printed is not None:
                    lists[channel] = _ListSnapshot(
                        versions[channel], printed, r.root, r.depth, self._copy(r.value)
                    )
        with self._lock:
            self._store(key, _Head(checkpoint_id, versions, lists, atoms=dict(atoms or {})))

    def settle(self, thread_id: str, ns: str, checkpoint_id: str) -> list[BlobPlan]:
        """The full check a run ends with: every item of the lists stored at checkpoint
        ``checkpoint_id`` (the head this process wrote) digested again.

        A ``put`` checks only the newest items (see the class docstring); an older item
        changed in place since it was stored is otherwise seen at the next full check,
        which a run that ends first never reaches. Returns one plan per list whose
        stored items changed, or were stored whole without a print (``_replaced``: there
        is nothing to compare them with): the head's version stored *whole*, as the items are now
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
            if snap.printed is not None and self._check(items, snap.printed):
                printed = snap.printed
                if printed.full < printed.length:  # every item checked now
                    snap.printed = ListPrint(
                        printed.length, printed.digest, printed.checked, printed.stretches,
                        printed.length, printed.first, printed.row,
                    )
                continue
            if snap.printed is not None:  # (a put that claimed them may have extended them)
                items = items[: snap.printed.length]
            plan = self._whole(channel, snap.version, self._copy(items))
            if plan.printed is None:  # cannot be printed any more: forget the list
                with self._lock:
                    head.lists.pop(channel, None)
                    if snap.items is not None:  # (not claimed by a put meanwhile)
                        self._item_refs -= len(snap.items)
                        snap.items = None
            else:
                snap.printed, snap.root, snap.depth = plan.printed, snap.version, 0
            plans.append(plan)
        return plans

    def carried_atoms(
        self, thread_id: str, ns: str, parent_id: str, versions: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The atoms of the head ``parent_id`` (when it is the head this process knows)
        whose channels are at the same version in ``versions``: the values stored for
        those versions, which a checkpoint continuing from it carries in its row for the
        channels it did not change (``_stored.inline``) - not the values it was given
        for them, which the saver contract does not store."""
        with self._lock:
            head = self._heads.get((thread_id, ns))
            if head is None or head.checkpoint_id != parent_id or not head.atoms:
                return {}
            known = head.versions
            return {
                channel: value
                for channel, value in head.atoms.items()
                if channel in versions and str(versions[channel]) == known.get(channel)
            }

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
