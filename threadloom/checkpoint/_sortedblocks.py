"""Sorted keys, the in-memory stand-in for a SQL index: what ``InMemorySaver`` keeps its
threads (``_threadorder.ThreadOrder``) and its checkpoints (the order ``list`` returns them)
in, so that a page of either costs the page, not the saver.

``SortedBlocks``: distinct keys kept ascending in a list of short sorted blocks (the layout
of ``sortedcontainers.SortedList``). Adding or removing a key costs O(log n) comparisons (a
bisection of the blocks' last keys, then one of the block) and moves at most ``2 * BLOCK``
references; a key greater than every other (a new checkpoint id, which sort in creation
order) is appended after one comparison. Walking k keys from either end costs O(k) and no
comparison; from a bound, O(log n + k).

``add_sorted``, ``remove_sorted`` and ``walk_down`` do the same on one plain sorted list
(one block): for the many small orders, such as each thread's checkpoints, where a
``SortedBlocks`` would cost three more objects apiece (memory and garbage-collector passes),
and whose keys mostly come in ascending order (an append).

The caller serializes access, and does not change the keys while walking them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["BLOCK", "SortedBlocks", "add_sorted", "remove_sorted", "walk_down"]

BLOCK = 128  # keys per block, between BLOCK // 2 and 2 * BLOCK (a lone block: any size)

K = TypeVar("K", bound=tuple[Any, ...])  # keys are tuples, compared as tuples


def add_sorted(keys: list[K], key: K) -> None:
    """Insert ``key`` into the ascending list ``keys`` (nothing when it is there already)."""
    if not keys or keys[-1] < key:
        keys.append(key)
        return
    i = bisect_left(keys, key)
    if not keys[i] == key:
        keys.insert(i, key)


def remove_sorted(keys: list[K], key: K) -> bool:
    """Take ``key`` out of the ascending list ``keys``; whether it was there."""
    i = bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]
        return True
    return False


def walk_down(keys: list[K], below: tuple[Any, ...] | None = None) -> Iterator[K]:
    """The keys of the ascending list ``keys`` less than ``below`` (every key when it is
    None), greatest first."""
    i = len(keys) if below is None else bisect_left(keys, below)
    for j in range(i - 1, -1, -1):
        yield keys[j]


class SortedBlocks(Generic[K]):
    """Distinct keys, ascending. ``add`` of a key already there and ``remove`` of one that
    is not change nothing."""

    __slots__ = ("_blocks", "_maxes")

    def __init__(self, ordered: Sequence[K] = ()) -> None:
        """``ordered``: distinct keys, ascending already (a table read back from a file)."""
        self._blocks: list[list[K]] = []
        self._maxes: list[K] = []  # each block's last key
        if ordered:
            self._blocks = [list(ordered[i : i + BLOCK]) for i in range(0, len(ordered), BLOCK)]
            self._maxes = [block[-1] for block in self._blocks]

    def add(self, key: K) -> None:
        maxes, blocks = self._maxes, self._blocks
        if not maxes:
            blocks.append([key])
            maxes.append(key)
            return
        if maxes[-1] < key:  # the greatest key of all (most puts): the last block's end
            i = len(maxes) - 1
            block = blocks[i]
            block.append(key)
            maxes[i] = key
        else:
            i = bisect_left(maxes, key)  # < len(maxes): key <= the last key
            block = blocks[i]
            add_sorted(block, key)
        if len(block) > 2 * BLOCK:
            blocks[i : i + 1] = [block[:BLOCK], block[BLOCK:]]
            maxes[i : i + 1] = [block[BLOCK - 1], block[-1]]

    def remove(self, key: K) -> None:
        maxes, blocks = self._maxes, self._blocks
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return
        block = blocks[i]
        if not remove_sorted(block, key):
            return
        if block:
            maxes[i] = block[-1]
        if len(block) >= BLOCK // 2 or len(blocks) == 1:
            if not block:
                del blocks[i], maxes[i]
            return
        # too short: joined with a neighbour (and split again when that is too long)
        lo = i if i + 1 < len(blocks) else i - 1
        joined = blocks[lo] + blocks[lo + 1]
        if len(joined) > 2 * BLOCK:
            half = len(joined) // 2
            blocks[lo : lo + 2] = [joined[:half], joined[half:]]
            maxes[lo : lo + 2] = [joined[half - 1], joined[-1]]
        else:
            blocks[lo : lo + 2] = [joined]
            maxes[lo : lo + 2] = [joined[-1]]

    def replace(self, old: K, new: K) -> None:
        """``remove(old)`` then ``add(new)``; O(1) when ``old`` is the greatest key and
        ``new`` greater still (the newest thread moving on: a run's next step)."""
        maxes = self._maxes
        if maxes and maxes[-1] == old and old < new:
            self._blocks[-1][-1] = maxes[-1] = new
            return
        self.remove(old)
        self.add(new)

    def ascending(self) -> Iterator[K]:
        for block in self._blocks:
            yield from block

    def descending(self, below: tuple[Any, ...] | None = None) -> Iterator[K]:
        """The keys less than ``below`` (every key when it is None), greatest first."""
        blocks = self._blocks
        i = len(blocks)
        if below is not None:
            i = bisect_left(self._maxes, below)
            if i < len(blocks):
                yield from walk_down(blocks[i], below)
        for k in range(i - 1, -1, -1):
            yield from reversed(blocks[k])
