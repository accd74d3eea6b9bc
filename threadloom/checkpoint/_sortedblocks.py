"""``SortedBlocks``: distinct keys kept ascending in a list of short sorted blocks (the layout
of ``sortedcontainers.SortedList``), the in-memory stand-in for a SQL index: what
``InMemorySaver`` keeps its threads (``_threadorder.ThreadOrder``) and its checkpoints (the
order ``list`` returns them) in, so that a page of either costs the page, not the saver.

Adding or removing a key costs O(log n) comparisons (a bisection of the blocks' last keys,
then one of the block) and moves at most ``2 * BLOCK`` references; a key greater than every
other (a new checkpoint id, which sort in creation order) is appended after one comparison.
Walking k keys from either end costs O(k) and no comparison; from a bound, O(log n + k).
The caller serializes access, and does not change the keys while walking them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["BLOCK", "SortedBlocks"]

BLOCK = 128  # keys per block, between BLOCK // 2 and 2 * BLOCK (a lone block: any size)

K = TypeVar("K", bound=tuple[Any, ...])  # keys are tuples, compared as tuples


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

    def __bool__(self) -> bool:
        return bool(self._maxes)

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
            j = bisect_left(block, key)
            if block[j] == key:
                return
            block.insert(j, key)
        if len(block) > 2 * BLOCK:
            blocks[i : i + 1] = [block[:BLOCK], block[BLOCK:]]
            maxes[i : i + 1] = [block[BLOCK - 1], block[-1]]

    def remove(self, key: K) -> None:
        maxes, blocks = self._maxes, self._blocks
        i = bisect_left(maxes, key)
        if i == len(maxes):
            return
        block = blocks[i]
        j = bisect_left(block, key)
        if not block[j] == key:
            return
        del block[j]
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
                block = blocks[i]
                yield from reversed(block[: bisect_left(block, below)])
        for k in range(i - 1, -1, -1):
            yield from reversed(blocks[k])
