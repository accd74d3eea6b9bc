"""``InMemorySaver.list_threads`` and ``expire_paused`` read the saver's thread order
(``checkpoint._threadorder``), kept up to date by every change of a thread's checkpoints:
the same answers as recomputing every thread's newest checkpoint, for a cost that follows
the page, not the number of threads.

No timing: the work is counted in comparisons of checkpoint ids (a ``str`` that counts
them), with every thread's ``ts`` the same so that ordering threads has to compare ids.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from threadloom.checkpoint import _sortedblocks
from threadloom.checkpoint._stored.records import timestamp
from threadloom.checkpoint.base import empty_checkpoint
from threadloom.checkpoint.memory import InMemorySaver, PersistentDict

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
HOURS = [0.0, 1.0, 2.0, 30.0, 72.0]  # few distinct ts: threads tie on created_at


def _put(saver: InMemorySaver, thread_id: str, checkpoint_id: str, hours_ago: float,
         *, ns: str = "", run_id: str = "r0") -> None:  # fmt: skip
    checkpoint = empty_checkpoint()
    checkpoint["id"] = checkpoint_id
    checkpoint["ts"] = (NOW - dt.timedelta(hours=hours_ago)).isoformat()
    checkpoint["channel_values"] = {"x": f"{thread_id}/{checkpoint_id}"}
    checkpoint["channel_versions"] = {"x": f"{thread_id}/{checkpoint_id}"}
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
    config = saver.put(config, checkpoint, {"run_id": run_id}, checkpoint["channel_versions"])
    saver.put_writes(config, [("x", checkpoint_id)], f"task-{checkpoint_id}")


def _newest(saver: InMemorySaver) -> dict[str, tuple[float, str]]:
    """Every thread's (newest created_at, newest checkpoint id), from its checkpoints."""
    newest: dict[str, tuple[float, str]] = {}
    for thread_id, per_ns in saver.storage.items():
        for checkpoints in per_ns.values():
            for checkpoint_id, (stored, _meta, _parent) in checkpoints.items():
                pair = (timestamp(stored["ts"]), checkpoint_id)
                old = newest.get(thread_id, pair)
                newest[thread_id] = (max(old[0], pair[0]), max(old[1], pair[1]))
    return newest


def _expected(saver: InMemorySaver) -> list[str]:
    newest = _newest(saver)
    return sorted(sorted(newest), key=newest.__getitem__, reverse=True)


def _rows(saver: InMemorySaver, thread_id: str) -> tuple[set[Any], set[Any]]:
    """The thread's keys in ``blobs`` and ``writes``, without its thread id."""
    return (
        {k[1:] for k in saver.blobs if k[0] == thread_id},
        {k[1:] for k in saver.writes if k[0] == thread_id},
    )


def _check(saver: InMemorySaver, rng: random.Random) -> None:
    expected = _expected(saver)
    assert {k[0] for k in saver.blobs} <= set(expected)  # no rows of deleted threads
    assert {k[0] for k in saver.writes} <= set(expected)
    # the saver's own account of each thread's rows is the tables' (none lost or stale)
    assert {k for keys in saver._blob_keys.values() for k in keys} == set(saver.blobs)
    assert {k for keys in saver._write_keys.values() for k in keys} == set(saver.writes)
    assert saver.list_threads() == expected
    limit = rng.choice([0, 1, 2, 5, 10**6, -1])
    assert saver.list_threads(limit=limit) == expected[:limit]
    assert asyncio.run(saver.alist_threads(3)) == expected[:3]


@pytest.mark.parametrize("block", [2, 3, _sortedblocks.BLOCK])
@pytest.mark.parametrize("seed", range(4))
def test_thread_order_matches_recomputing_every_thread(
    monkeypatch: pytest.MonkeyPatch, seed: int, block: int
) -> None:
    """Random puts (new ids, repeated ids that replace a checkpoint, old ts, several
    namespaces), deletes, prunes, copies, deletes by run and expiries: after each,
    ``list_threads`` (with and without a limit) and ``expire_paused`` give what
    recomputing every thread from its checkpoints gives. Tiny blocks make the order split
    and join its blocks all the time."""
    monkeypatch.setattr(_sortedblocks, "BLOCK", block)
    random_operations(InMemorySaver(), random.Random(seed), 600, _check)


@pytest.mark.parametrize("seed", range(3))
def test_thread_order_after_many_changes_between_reads(seed: int) -> None:
    """The same random changes, read back only now and then: the puts noted between two
    reads (a put only notes its thread's key; the next read places it) come out in the
    order recomputing every thread gives, whatever deletes, prunes, copies and expiries
    came in between."""
    def now_and_then(saver: InMemorySaver, rng: random.Random) -> None:
        if rng.random() < 0.1:
            _check(saver, rng)

    saver = InMemorySaver()
    rng = random.Random(seed)
    random_operations(saver, rng, 800, now_and_then)
    _check(saver, rng)


def random_operations(saver: InMemorySaver, rng: random.Random, steps: int,
                      check: Callable[[InMemorySaver, random.Random], None]) -> None:  # fmt: skip
    """``steps`` random changes of the saver's checkpoints (the operations listed above,
    each checking its own result), ``check`` after each."""
    copies = 0
    for _ in range(steps):
        threads = list(saver.storage)
        op = rng.random()
        if op < 0.6 or not threads:
            thread_id = f"t{rng.randrange(40)}"
            _put(saver, thread_id, f"{rng.randrange(80):03d}", rng.choice(HOURS),
                 ns=rng.choice(["", "", "child:1"]), run_id=f"r{rng.randrange(6)}")  # fmt: skip
        elif op < 0.68:
            thread_id = rng.choice(threads)
            saver.delete_thread(thread_id)
            assert _rows(saver, thread_id) == (set(), set())
        elif op < 0.78:
            saver.prune(rng.sample(threads, min(3, len(threads))), rng.randrange(3))
        elif op < 0.88:
            copies += 1
            source = rng.choice(threads)
            saver.copy_thread(source, f"copy{copies}")
            assert _rows(saver, f"copy{copies}") == _rows(saver, source)
        elif op < 0.94:
            saver.delete_for_runs([f"r{rng.randrange(6)}"])
        else:
            cutoff_hours = rng.choice([1.5, 24.0, 48.0, 100.0])
            newest = _newest(saver)
            cutoff = (NOW - dt.timedelta(hours=cutoff_hours)).timestamp()
            want = sorted(t for t, (at, _) in newest.items() if at < cutoff)
            expire = saver.expire_paused
            if rng.random() < 0.5:
                expire = lambda *a, **k: asyncio.run(saver.aexpire_paused(*a, **k))  # noqa: E731
            assert expire(dt.timedelta(hours=cutoff_hours), now=NOW) == want
        check(saver, rng)


def test_a_saver_reopened_from_its_file_lists_its_threads(tmp_path: Path) -> None:
    factory = partial(PersistentDict, filename=str(tmp_path / "saver.pickle"))
    rng = random.Random(7)
    with InMemorySaver(factory=factory) as saver:
        for i in range(60):
            _put(saver, f"t{rng.randrange(15)}", f"{i:03d}", rng.choice(HOURS))
        saver.copy_thread("t3", "t3-copy")
        expected = saver.list_threads()
        assert expected == _expected(saver)
    with InMemorySaver(factory=factory) as again:
        assert again.list_threads() == expected
        assert again.list_threads(limit=4) == expected[:4]
        newest = _newest(again)
        old = sorted(t for t, (at, _) in newest.items() if at < NOW.timestamp() - 48 * 3600)
        assert again.expire_paused(dt.timedelta(hours=48), now=NOW) == old
        assert again.list_threads() == [t for t in expected if t not in old]


class CountedId(str):
    """A checkpoint id that counts the comparisons made with it."""

    compared = 0

    def _count(self, other: object, op: Any) -> Any:
        CountedId.compared += 1
        return op(str(self), str(other) if isinstance(other, str) else other)

    def __lt__(self, other: object) -> bool:
        return bool(self._count(other, str.__lt__))

    def __le__(self, other: object) -> bool:
        return bool(self._count(other, str.__le__))

    def __gt__(self, other: object) -> bool:
        return bool(self._count(other, str.__gt__))

    def __ge__(self, other: object) -> bool:
        return bool(self._count(other, str.__ge__))

    def __eq__(self, other: object) -> bool:
        return bool(self._count(other, str.__eq__))

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


def _costs(threads: int) -> tuple[int, int, int]:
    """Comparisons of checkpoint ids made by ``expire_paused`` (5 old threads), by
    ``list_threads(limit=10)`` and by one more put, with ``threads`` threads of 2
    checkpoints that all have the same ``ts``."""
    saver = InMemorySaver()
    for t in range(threads):
        for step in range(2):
            _put(saver, f"t{t:05d}", CountedId(f"{t:05d}-{step}"), hours_ago=1)
    for t in range(5):
        _put(saver, f"old{t}", CountedId(f"{t:05d}-0"), hours_ago=72)
    # the puts' keys are placed in the order at its next read (once per thread)
    assert len(saver.list_threads(limit=1)) == 1
    CountedId.compared = 0
    gone = saver.expire_paused(dt.timedelta(days=1), now=NOW)
    expire, CountedId.compared = CountedId.compared, 0
    page = saver.list_threads(limit=10)
    listing, CountedId.compared = CountedId.compared, 0
    _put(saver, "t00000", CountedId(f"{threads:05d}-9"), hours_ago=1)
    assert saver.list_threads(limit=1) == ["t00000"]  # the put, placed by this read
    put = CountedId.compared
    assert gone == [f"old{t}" for t in range(5)]
    assert page == [f"t{t:05d}" for t in range(threads - 1, threads - 11, -1)]
    return expire, listing, put


def test_a_page_of_threads_and_an_expiry_batch_cost_the_page_not_the_threads() -> None:
    """Tenfold the threads, the same comparisons for ``list_threads(limit=10)``; for an
    expiry of 5 threads, the same to find them (among the 5: their ts tie) and O(log n)
    for each of their checkpoints taken out of ``list``'s index (an O(n log n) sort of the
    threads made tens of thousands); a put, placed in the order by the next read, costs
    O(log n) comparisons."""
    small, big = _costs(300), _costs(3000)
    assert small[0] <= big[0] <= 40 + 5 * 4 * math.log2(2 * 3000), (small, big)
    assert big[1] == small[1] <= 10, (small, big)
    assert big[2] <= 8 * math.log2(3000), (small, big)


class CountedTable(defaultdict[Any, Any]):
    """A table (``InMemorySaver(factory=...)``) that counts the entries read by walking
    it (iteration, ``keys``, ``values``, ``items``)."""

    walked = 0

    def _walk(self, entries: Iterable[Any]) -> Iterator[Any]:
        for entry in entries:
            CountedTable.walked += 1
            yield entry

    def __iter__(self) -> Iterator[Any]:
        return self._walk(super().__iter__())

    def keys(self) -> Any:
        return self._walk(super().keys())

    def values(self) -> Any:
        return self._walk(super().values())

    def items(self) -> Any:
        return self._walk(super().items())


def _walked(threads: int) -> tuple[int, int]:
    """Table entries walked by ``expire_paused`` (5 old threads) and by
    ``list_threads(limit=10)``, with ``threads`` threads of 2 checkpoints."""
    saver = InMemorySaver(factory=CountedTable)
    for t in range(threads):
        for step in range(2):
            _put(saver, f"t{t:05d}", f"{t:05d}-{step}", hours_ago=1)
    for t in range(5):
        _put(saver, f"old{t}", f"{t:05d}-0", hours_ago=72)
    CountedTable.walked = 0
    assert saver.expire_paused(dt.timedelta(days=1), now=NOW) == [f"old{t}" for t in range(5)]
    expire, CountedTable.walked = CountedTable.walked, 0
    assert len(saver.list_threads(limit=10)) == 10
    return expire, CountedTable.walked


def test_expiring_and_listing_threads_walk_no_table() -> None:
    """Finding and deleting 5 paused threads and a page of ``list_threads`` read the
    threads' own rows: no walk of ``storage``, ``blobs`` or ``writes`` (which grows with
    every thread)."""
    assert _walked(300) == _walked(3000) == (0, 0)
