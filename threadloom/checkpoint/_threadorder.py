"""``ThreadOrder``: ``InMemorySaver``'s threads in the order ``list_threads`` returns
them, kept up to date as checkpoints come and go - what the SQL savers' index of
``threadloom_threads`` is to them (schema v4) - so that a page of ``list_threads`` and the
candidates of ``expire_paused`` cost their own threads, not every thread.

A thread's key is ``(newest created_at, newest checkpoint id)``, each the maximum over the
thread's checkpoints in every namespace (created_at: the checkpoint's ``ts`` in seconds).
``newest()`` yields threads by key, newest first, ties by thread id ascending;
``older_than(cutoff)`` yields the threads whose created_at is below ``cutoff``, oldest
first.

The distinct keys are kept ascending in a list of short sorted blocks (the layout of
``sortedcontainers.SortedList``): adding or removing a key costs O(log n) comparisons (a
bisection of the blocks' last keys, then one of the block) and moves at most
``2 * BLOCK`` references; walking k keys from either end costs O(k). Threads sharing a key
(a copied thread and its copies) are one sorted list under it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

__all__ = ["Activity", "ThreadOrder"]

Activity = tuple[float, str]  # (newest created_at, newest checkpoint id)
BLOCK = 128  # keys per block, between BLOCK // 2 and 2 * BLOCK (a lone block: any size)


class ThreadOrder:
    """Threads by ``Activity``; the caller serializes access (the saver's lock)."""

    __slots__ = ("_blocks", "_groups", "_keys", "_maxes")

    def __init__(self) -> None:
        self._keys: dict[str, Activity] = {}  # thread -> its key
        self._groups: dict[Activity, list[str]] = {}  # key -> its threads, ascending
        self._blocks: list[list[Activity]] = []  # the distinct keys, ascending
        self._maxes: list[Activity] = []  # each block's last key

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, thread_id: str) -> Activity | None:
        return self._keys.get(thread_id)

    def add(self, thread_id: str, created_at: float, checkpoint_id: str) -> None:
        """The thread gained a checkpoint: its key takes the greater of each part."""
        old = self._keys.get(thread_id)
        if old is None:
            self._place(thread_id, (created_at, checkpoint_id), None)
        else:
            at, newest = old
            self._place(
                thread_id,
                (created_at if created_at > at else at,
                 checkpoint_id if checkpoint_id > newest else newest),
                old,
            )  # fmt: skip

    def set(self, thread_id: str, key: Activity) -> None:
        """Give the thread ``key`` (in place of the one it had)."""
        self._place(thread_id, key, self._keys.get(thread_id))

    def _place(self, thread_id: str, key: Activity, old: Activity | None) -> None:
        if old is not None:
            if old == key:
                return
            maxes = self._maxes
            if maxes[-1] is old and key > old and len(self._groups[old]) == 1:
                # the newest thread moves on (a run's next step): it stays the last key
                self._blocks[-1][-1] = maxes[-1] = self._keys[thread_id] = key
                del self._groups[old]
                self._groups[key] = [thread_id]
                return
            self._leave(thread_id, old)
        self._keys[thread_id] = key
        group = self._groups.get(key)
        if group is None:
            self._groups[key] = [thread_id]
            self._insert(key)
        else:
            insort(group, thread_id)

    def discard(self, thread_id: str) -> None:
        """Forget the thread (no error when it is not there)."""
        old = self._keys.pop(thread_id, None)
        if old is not None:
            self._leave(thread_id, old)

    def newest(self) -> Iterator[str]:
        """Thread ids, newest key first (ties: by thread id). Do not change the order
        while walking it."""
        groups = self._groups
        for block in reversed(self._blocks):
            for key in reversed(block):
                yield from groups[key]

    def older_than(self, cutoff: float) -> Iterator[str]:
        """Thread ids whose created_at is below ``cutoff``, oldest first. Do not change
        the order while walking it."""
        groups = self._groups
        for block in self._blocks:
            for key in block:
                if not key[0] < cutoff:
                    return
                yield from groups[key]

    def _leave(self, thread_id: str, key: Activity) -> None:
        group = self._groups[key]
        if len(group) == 1:
            del self._groups[key]
            self._remove(key)
        else:
            del group[bisect_left(group, thread_id)]

    def _insert(self, key: Activity) -> None:
        maxes, blocks = self._maxes, self._blocks
        if not maxes:
            blocks.append([key])
            maxes.append(key)
            return
        i = bisect_left(maxes, key)
        if i == len(maxes):  # the newest key of all (most puts): the last block's end
            i -= 1
            block = blocks[i]
            block.append(key)
            maxes[i] = key
        else:
            block = blocks[i]
            insort(block, key)
        if len(block) > 2 * BLOCK:
            blocks[i : i + 1] = [block[:BLOCK], block[BLOCK:]]
            maxes[i : i + 1] = [block[BLOCK - 1], block[-1]]

    def _remove(self, key: Activity) -> None:
        maxes, blocks = self._maxes, self._blocks
        i = bisect_left(maxes, key)
        block = blocks[i]
        del block[bisect_left(block, key)]
        if block:
            maxes[i] = block[-1]
        if len(block) >= BLOCK // 2 or len(blocks) == 1:
            if not block:
                del blocks[i], maxes[i]
            return
        # too short: joined with a neighbour (and split again when that is too long)
        j = i + 1 if i + 1 < len(blocks) else i - 1
        lo = min(i, j)
        joined = blocks[lo] + blocks[lo + 1]
        if len(joined) > 2 * BLOCK:
            half = len(joined) // 2
            blocks[lo : lo + 2] = [joined[:half], joined[half:]]
            maxes[lo : lo + 2] = [joined[half - 1], joined[-1]]
        else:
            blocks[lo : lo + 2] = [joined]
            maxes[lo : lo + 2] = [joined[-1]]
