"""``ThreadOrder``: ``InMemorySaver``'s threads in the order ``list_threads`` returns
them, kept up to date as checkpoints come and go - what the SQL savers' index of
``threadloom_threads`` is to them (schema v4) - so that a page of ``list_threads`` and the
candidates of ``expire_paused`` cost their own threads, not every thread.

A thread's key is ``(newest created_at, newest checkpoint id)``, each the maximum over the
thread's checkpoints in every namespace (created_at: the checkpoint's ``ts`` in seconds).
``newest()`` yields threads by key, newest first, ties by thread id ascending;
``older_than(cutoff)`` yields the threads whose created_at is below ``cutoff``, oldest
first.

The distinct keys are kept ascending in a ``_sortedblocks.SortedBlocks``: adding or
removing a key costs O(log n) comparisons, walking k keys from either end O(k). Threads
sharing a key (a copied thread and its copies) are one sorted list under it.

``add`` (every put) only notes the thread's new key (the greater of each part, merged with
what it noted before); the order takes the noted keys when next read or changed otherwise.
A run's steps then move its thread once in the order, not once per checkpoint.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator

from threadloom.checkpoint._sortedblocks import SortedBlocks

__all__ = ["Activity", "ThreadOrder"]

Activity = tuple[float, str]  # (newest created_at, newest checkpoint id)


class ThreadOrder:
    """Threads by ``Activity``; the caller serializes access (the saver's lock)."""

    __slots__ = ("_groups", "_keys", "_order", "_noted")

    def __init__(self) -> None:
        self._keys: dict[str, Activity] = {}  # thread -> its key
        self._groups: dict[Activity, list[str]] = {}  # key -> its threads, ascending
        self._order: SortedBlocks[Activity] = SortedBlocks()  # the distinct keys
        # thread -> the greatest (created_at, checkpoint id) added since the order was
        # last brought up to date (see ``_settle``)
        self._noted: dict[str, Activity] = {}

    def __len__(self) -> int:
        self._settle()
        return len(self._keys)

    def get(self, thread_id: str) -> Activity | None:
        self._settle()
        return self._keys.get(thread_id)

    def add(self, thread_id: str, created_at: float, checkpoint_id: str) -> None:
        """The thread gained a checkpoint: its key takes the greater of each part (noted
        now, placed in the order when it is next read)."""
        noted = self._noted
        old = noted.get(thread_id)
        if old is None:
            noted[thread_id] = (created_at, checkpoint_id)
        else:
            at, newest = old
            noted[thread_id] = (created_at if created_at > at else at,
                                checkpoint_id if checkpoint_id > newest else newest)

    def _settle(self) -> None:
        """Place the keys ``add`` noted: each merged with the thread's key in the order."""
        noted = self._noted
        if not noted:
            return
        self._noted = {}
        keys = self._keys
        for thread_id, (created_at, checkpoint_id) in noted.items():
            old = keys.get(thread_id)
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
        self._settle()
        self._place(thread_id, key, self._keys.get(thread_id))

    def _place(self, thread_id: str, key: Activity, old: Activity | None) -> None:
        gone: Activity | None = None  # the thread's old key, when no other thread has it
        if old is not None:
            if old == key:
                return
            group = self._groups[old]
            if len(group) == 1:
                del self._groups[old]
                gone = old
            else:
                del group[bisect_left(group, thread_id)]
        self._keys[thread_id] = key
        sharing = self._groups.get(key)
        if sharing is None:
            self._groups[key] = [thread_id]
            if gone is not None:  # O(1) for the newest thread moving on (a run's next step)
                self._order.replace(gone, key)
            else:
                self._order.add(key)
        else:
            insort(sharing, thread_id)
            if gone is not None:
                self._order.remove(gone)

    def discard(self, thread_id: str) -> None:
        """Forget the thread (no error when it is not there)."""
        self._settle()
        old = self._keys.pop(thread_id, None)
        if old is not None:
            self._leave(thread_id, old)

    def newest(self) -> Iterator[str]:
        """Thread ids, newest key first (ties: by thread id). Do not change the order
        while walking it."""
        self._settle()
        groups = self._groups
        for key in self._order.descending():
            yield from groups[key]

    def older_than(self, cutoff: float) -> Iterator[str]:
        """Thread ids whose created_at is below ``cutoff``, oldest first. Do not change
        the order while walking it."""
        self._settle()
        groups = self._groups
        for key in self._order.ascending():
            if not key[0] < cutoff:
                return
            yield from groups[key]

    def _leave(self, thread_id: str, key: Activity) -> None:
        group = self._groups[key]
        if len(group) == 1:
            del self._groups[key]
            self._order.remove(key)
        else:
            del group[bisect_left(group, thread_id)]
