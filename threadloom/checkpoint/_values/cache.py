"""``ValueCache``: the channel values a saver stored or read, kept per process, frozen.

Why: a read of a long thread would otherwise fetch its delta chain again and decode
every row of it; keyed by (thread, namespace, channel, version) - immutable keys, a
version is written once - the cache hands each reader a thawed copy of one frozen value
(``frozen``) instead. Shared by the memory and SQL savers; the class docstring says what
it holds and how it is bounded.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.checkpoint._values.chains import (
    EMPTY,
    BlobKey,
    Resolved,
    StoredBlob,
    _base_key,
)
from threadloom.checkpoint._values.frozen import Frozen, freeze

__all__ = ["ValueCache"]

_ENTRY_OVERHEAD = 100  # rough bytes of bookkeeping per cached entry
_NO_ATOM: Any = object()  # ``_Cached.atom`` when the entry holds no atom
_ATOMS = frozenset((type(None), bool, int, float, str, bytes))
"""Types of the values a cache entry keeps as they are (``_Cached.atom``): immutable, so
every reader may be handed the same object - no copy of its own to make."""


@dataclass(slots=True)
class _Cached:
    """A stored row and, once read, the value it rebuilds to (with its chain), frozen -
    or, for a whole row whose value is an immutable scalar (``_ATOMS``), that value itself
    (``atom``)."""

    row: StoredBlob
    size: int  # estimated bytes held: the row's bytes plus the frozen value's (or atom's)
    frozen: Frozen | None = None
    root: str = ""  # chain facts of the frozen value (see ``Resolved``)
    depth: int = 0
    unfreezable: bool = False  # freeze() refused the value: decode it on every read
    atom: Any = _NO_ATOM  # the value of a whole row, when it is of an ``_ATOMS`` type


class ValueCache:
    """Process-local LRU of channel values, keyed by (thread, namespace, channel, version).

    What it holds: the rows this saver stored (``add_rows``, at ``put``) or fetched, and,
    once read, the value they rebuild to, frozen (``threadloom.checkpoint._values.frozen``). A
    key is written once and never changes, so an entry can only go stale if its thread is
    deleted or pruned by *another process* and then written again with the very same
    version strings, which the savers' versions (a counter plus 64 random bits) rule out;
    deletes and prunes in this process drop the thread's entries. Damage done to rows
    behind the saver's back (by hand, in SQL) shows only once the cached entries are gone
    (``clear``).

    What readers get: a value of their own, every time - the frozen copy thawed anew, or
    (for values ``freeze`` refuses) the row decoded anew. Changing a returned message in
    place, as human-in-the-loop edits do before ``update_state``, never reaches the cache
    or another reader. An immutable scalar (``None``, a bool, number, string or bytes: a
    counter, a flag, a routing channel's value) cannot be changed in place, so it is kept
    as it was decoded and handed to every reader as it is.

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
                if old is not None and (old.frozen is not None or old.atom is not _NO_ATOM):
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
        returned value is the caller's own (see the class docstring). ``freeze=False``:
        values rebuilt from rows are not frozen into the cache (see ``listed``).
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
                got = self._prefix(key, found) or self._resolve(key, decode, freeze, found)
                if got is None:
                    missing.append(key)
                else:
                    found[key] = got
            self._evict()
        return found, missing

    def listed(
        self, keys: Sequence[BlobKey], decode: Callable[[BlobKey, StoredBlob], Any]
    ) -> tuple[list[Any], list[BlobKey]]:
        """``lookup`` for a listing: the values alone (no chain facts), in the order of
        ``keys`` (``EMPTY`` for a key not held; a key may come more than once), and the
        keys not held, once each. None is frozen - a listing reads most versions once,
        and freezing them would cost more than it saves and push the hot heads out.

        Keys held as whole rows not yet frozen are decoded in one pass (no chain to
        walk, nothing a ``_prefix`` could share) and, like atoms, left where they are in
        the LRU order: a listing walks history once, and moving every version it reads
        ahead of the heads runs append to would make those the next evicted. The others
        go through ``lookup``.
        """
        if self.max_bytes <= 0:
            return [EMPTY] * len(keys), list(dict.fromkeys(keys))
        values: list[Any] = []
        add = values.append
        missing: list[BlobKey] = []
        entries = self._entries
        rest: list[int] = []  # where the keys ``lookup`` serves are
        atoms = _ATOMS
        kept = 0  # bytes of the atoms kept by this call
        with self._lock:
            for key in keys:
                entry = entries.get(key)
                if entry is None:
                    missing.append(key)
                    add(EMPTY)
                elif (value := entry.atom) is not _NO_ATOM:
                    add(value)
                elif entry.frozen is None and entry.row.base_version is None:
                    add(value := decode(key, entry.row))
                    if type(value) in atoms:
                        kept += _keep_atom(entry, value)
                else:
                    rest.append(len(values))
                    add(EMPTY)
            if kept:
                self._bytes += kept
                self._evict()
            if rest:
                found, unserved = self.lookup(
                    list(dict.fromkeys(keys[at] for at in rest)), decode, freeze=False
                )
                for at in rest:
                    got = found.get(keys[at])
                    if got is not None:
                        values[at] = got.value
                missing += unserved
        if len(missing) > 1:
            missing = list(dict.fromkeys(missing))
        return values, missing

    def thawed(self, keys: Iterable[BlobKey]) -> dict[BlobKey, Resolved]:
        """The values of those ``keys`` that are held frozen (each thawed anew) or as
        atoms - what ``lookup`` would return for them - and nothing else (no decoding): for
        a read to prepare while its query is in flight."""
        found: dict[BlobKey, Resolved] = {}
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                if entry.atom is not _NO_ATOM:
                    self._entries.move_to_end(key)
                    found[key] = Resolved(entry.atom, str(key[-1]), 0)
                elif entry.frozen is not None:
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
                if at is None or cur is None or cur.row.base_version is None:
                    at = None
                    break
                at = _base_key(at, cur.row.base_version)
            if at == key and type(got.value) is list:
                self._entries.move_to_end(key)
                return Resolved(got.value[: entry.frozen.length], entry.root, entry.depth)
        return None

    def _resolve(
        self,
        key: BlobKey,
        decode: Callable[[BlobKey, StoredBlob], Any],
        freeze: bool = True,
        found: Mapping[BlobKey, Resolved] | None = None,
    ) -> Resolved | None:
        """``key``'s value from the cache, or None. A delta walks back to a frozen value or
        a whole row - or to a version ``found`` already holds (rebuilt earlier in the same
        ``lookup``): its list is then copied, the items shared as ``_prefix`` shares them,
        instead of thawing the frozen value below it once more."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        if entry.atom is not _NO_ATOM:
            return Resolved(entry.atom, str(key[-1]), 0)
        if entry.frozen is not None:
            return Resolved(entry.frozen.thaw(), entry.root, entry.depth)
        row = entry.row
        if row.base_version is None:
            got = Resolved(decode(key, row), str(key[-1]), 0)
            if type(got.value) in _ATOMS:
                self._bytes += _keep_atom(entry, got.value)
                return got
        else:  # a delta: walk back to a frozen value or a full row, all within the cache
            chain: list[tuple[BlobKey, _Cached]] = []
            seen: set[BlobKey] = set()
            at, cur = key, entry
            shared: Resolved | None = None
            while cur.frozen is None and cur.row.base_version is not None:
                if at in seen:
                    return None  # a loop: let the storage path report it
                seen.add(at)
                chain.append((at, cur))
                at = _base_key(at, cur.row.base_version)
                if found is not None and (done := found.get(at)) is not None \
                        and type(done.value) is list:
                    shared = done
                    break
                nxt = self._entries.get(at)
                if nxt is None:
                    return None
                cur = nxt
            if shared is not None:
                base = Resolved(list(shared.value), shared.root, shared.depth)
            elif cur.frozen is not None:
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
        if got.depth == 0 and type(got.value) in _ATOMS:
            kept = _keep_atom(entry, got.value)
            if held:
                self._bytes += kept
            return
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


def _keep_atom(entry: _Cached, value: Any) -> int:
    """Keep ``value`` (of an ``_ATOMS`` type) as ``entry``'s atom; the bytes it adds."""
    entry.atom = value
    size = sys.getsizeof(value)
    entry.size += size
    return size


def _row_size(row: StoredBlob) -> int:
    return len(row.blob or b"") + _ENTRY_OVERHEAD
