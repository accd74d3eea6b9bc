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
edge to read, then into the channel itself): each merge gets a copy of the index (a
C-level copy of the dict, far cheaper than building it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["MAX_LISTS", "MIN_LENGTH", "recall", "remember"]

MAX_LISTS = 32
"""How many returned lists keep their index (one per live conversation being merged)."""

MIN_LENGTH = 16
"""Shorter lists keep no index: coercing and indexing a few messages again costs less
than remembering the list (a copy, a lock, an LRU entry) and checking it on recall."""

_lists: OrderedDict[int, tuple[list[Any], list[Any], dict[str, int]]] = OrderedDict()
_lock = threading.Lock()


def recall(left: Any) -> dict[str, int] | None:
    """A copy of the id index of ``left`` when it is a list ``remember`` was given and is
    unchanged since; else None."""
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
    return dict(index) if same else None


def remember(merged: list[Any], index: dict[str, int]) -> None:
    """Keep ``index`` (id -> position in ``merged``) for the next merge on ``merged``
    (a list shorter than ``MIN_LENGTH``: nothing is kept)."""
    if len(merged) < MIN_LENGTH:
        return
    entry = (merged, list(merged), index)
    with _lock:
        _lists[id(merged)] = entry
        while len(_lists) > MAX_LISTS:
            _lists.popitem(last=False)
