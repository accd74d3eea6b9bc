"""The id index of the lists ``add_messages`` returned, so the next merge need not rebuild it.

Why: a message channel's value is the list the last ``add_messages`` call returned, and
the next call takes it as ``left``. Coercing every message of ``left`` again and indexing
it by id costs O(length) per step, which makes a long conversation's steps grow with its
history. The merge instead remembers, for each list it returned, a copy of the list's
items and the position of each id; the next merge on that very list checks the list is
unchanged - the same item objects in the same places, one C-level list comparison - and
then only coerces and indexes what it adds.

What a remembered index trusts: that an item's ``id`` does not change while the item is
in the list. A lookup that finds an item whose id is no longer the one indexed rebuilds
the index (``add_messages`` checks every hit). A list changed in place - items appended,
removed, replaced or reordered by a node - is not the remembered one: merged the slow way.

Bounded to a few lists (the most recently used), thread-safe. A list may be merged more
than once (the engine merges a node's writes into the channel's value for a conditional
edge to read, then into the channel itself), so a merge never changes an index it was
given: an ``Index`` is a *base* shared by the lists merged from one another, never
changed once remembered, and the entries this list *added* since, which each merge gets
a copy of. The added entries are folded into a new base once they outnumber the square
root of the base's size, so a merge copies O(sqrt(length)) entries, amortized, instead of
the whole index (``entries_copied`` counts them).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["FOLD_MIN", "MAX_LISTS", "MIN_LENGTH", "Index", "recall", "remember"]

MAX_LISTS = 32
"""How many returned lists keep their index (one per live conversation being merged)."""

MIN_LENGTH = 16
"""Shorter lists keep no index: coercing and indexing a few messages again costs less
than remembering the list (a copy, a lock, an LRU entry) and checking it on recall."""

FOLD_MIN = 32
"""Added entries an index keeps apart from its base at least, however short the list."""

entries_copied = 0
"""Index entries copied by ``recall`` and ``remember``, in all (an operation counter:
what reusing an index costs a merge)."""


class Index:
    """The id index of one merged list: id -> position.

    ``base`` may be shared with the lists this one was merged from and is never changed;
    ``added`` holds the entries set since, looked up first. Removing an entry is not
    supported: a merge that removes messages builds a new index.
    """

    __slots__ = ("added", "base")

    def __init__(self, base: dict[str, int], added: dict[str, int] | None = None) -> None:
        self.base = base
        self.added: dict[str, int] = {} if added is None else added

    def get(self, message_id: str) -> int | None:
        """The position of ``message_id``, or None when it is not in the list."""
        found = self.added.get(message_id)
        return self.base.get(message_id) if found is None else found

    def __setitem__(self, message_id: str, position: int) -> None:
        self.added[message_id] = position


_lists: OrderedDict[int, tuple[list[Any], list[Any], Index]] = OrderedDict()
_lock = threading.Lock()


def recall(left: Any) -> Index | None:
    """The id index of ``left`` when it is a list ``remember`` was given and is unchanged
    since (its base shared, its added entries a copy the caller may change); else None."""
    if type(left) is not list or len(left) < MIN_LENGTH:
        return None
    with _lock:
        entry = _lists.get(id(left))
        if entry is not None:
            _lists.move_to_end(id(left))
    if entry is None or entry[0] is not left:
        return None
    _, items, index = entry
    try:
        same = len(items) == len(left) and left == items  # identity first, per item
    except Exception:  # an item's __eq__ failed: take the slow way
        return None
    if not same:
        return None
    global entries_copied
    entries_copied += len(index.added)
    return Index(index.base, dict(index.added))


def remember(merged: list[Any], index: Index) -> None:
    """Keep ``index`` (id -> position in ``merged``) for the next merge on ``merged``
    (a list shorter than ``MIN_LENGTH``: nothing is kept). The caller must not change
    ``index`` afterwards."""
    if len(merged) < MIN_LENGTH:
        return
    if len(index.added) > max(FOLD_MIN, math.isqrt(len(index.base))):
        global entries_copied
        entries_copied += len(index.base) + len(index.added)
        index = Index({**index.base, **index.added})
    entry = (merged, list(merged), index)
    with _lock:
        _lists[id(merged)] = entry
        while len(_lists) > MAX_LISTS:
            _lists.popitem(last=False)
