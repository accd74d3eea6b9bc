"""``InMemorySaver.list`` walks the saver's listing indexes (every checkpoint, and each
thread's, by (checkpoint id, thread, namespace): ``_sortedblocks``), kept up to date by
every change of the checkpoints, as the SQL savers walk theirs: the same answers as sorting
every checkpoint (what ``list`` did before), for a cost that follows the page, not the
number of checkpoints.

No timing: the work is counted in comparisons of checkpoint ids and in table entries
walked (``CountedId``, ``CountedTable`` of ``test_memory_thread_listing``).
"""

from __future__ import annotations

import asyncio
import math
import random
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from test_memory_thread_listing import (
    HOURS,
    CountedId,
    CountedTable,
    _put,
    random_operations,
)

from threadloom.checkpoint import _sortedblocks, memory
from threadloom.checkpoint.memory import InMemorySaver, PersistentDict

Listed = list[tuple[str, str, str]]  # (thread, namespace, checkpoint id) of each tuple


def _cfg(thread_id: str | None = None, ns: str | None = None,
         checkpoint_id: str | None = None) -> dict[str, Any] | None:  # fmt: skip
    conf: dict[str, Any] = {}
    if thread_id is not None:
        conf["thread_id"] = thread_id
    if ns is not None:
        conf["checkpoint_ns"] = ns
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf} if conf else None


def _brute_force(saver: InMemorySaver, config: dict[str, Any] | None,
                 **kw: Any) -> Listed:  # fmt: skip
    """What ``list`` returned before its indexes: every matching checkpoint of
    ``storage``, sorted by (checkpoint id, thread, namespace) descending."""
    conf = (config or {}).get("configurable") or {}
    before = kw.get("before")
    before_id = before["configurable"]["checkpoint_id"] if before else None
    found = []
    for thread_id, per_ns in saver.storage.items():
        if "thread_id" in conf and thread_id != conf["thread_id"]:
            continue
        for ns, checkpoints in per_ns.items():
            if conf.get("checkpoint_ns") is not None and ns != conf["checkpoint_ns"]:
                continue
            for checkpoint_id, (_stored, meta, _parent) in checkpoints.items():
                if conf.get("checkpoint_id") and checkpoint_id != conf["checkpoint_id"]:
                    continue
                if before_id and not checkpoint_id < before_id:
                    continue
                metadata = saver.serde.loads_typed(meta)
                if any(metadata.get(k) != v for k, v in (kw.get("filter") or {}).items()):
                    continue
                found.append((checkpoint_id, thread_id, ns))
    found.sort(reverse=True)
    limit = kw.get("limit")
    if limit is not None:
        found = found[: max(limit, 0)]
    return [(thread_id, ns, checkpoint_id) for checkpoint_id, thread_id, ns in found]


def _listed(saver: InMemorySaver, config: dict[str, Any] | None, **kw: Any) -> Listed:
    out = []
    for item in saver.list(config, **kw):
        conf = item.config["configurable"]
        meta = saver.serde.loads_typed(saver.storage[conf["thread_id"]][conf["checkpoint_ns"]][
            conf["checkpoint_id"]][1])  # fmt: skip
        assert item.metadata == meta
        out.append((conf["thread_id"], conf["checkpoint_ns"], conf["checkpoint_id"]))
    return out


def _check_indexes(saver: InMemorySaver) -> None:
    """The listing indexes hold exactly the checkpoints of ``storage``."""
    every = sorted(
        (checkpoint_id, thread_id, ns)
        for thread_id, per_ns in saver.storage.items()
        for ns, checkpoints in per_ns.items()
        for checkpoint_id in checkpoints
    )
    assert list(saver._listed.ascending()) == every
    histories = dict(saver._history)
    want: dict[str, list[tuple[str, str, str]]] = {}
    for key in every:
        want.setdefault(key[1], []).append(key)
    assert histories == want


def _check(saver: InMemorySaver, rng: random.Random) -> None:
    _check_indexes(saver)
    threads = [*saver.storage, "nobody"]
    ids = [f"{rng.randrange(81):03d}" for _ in range(3)]
    calls: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [
        (None, {}),
        (None, {"limit": rng.choice([0, 1, 2, 5, 10**6, -1])}),
        (None, {"before": _cfg("x", "", ids[0]), "limit": rng.choice([None, 3])}),
        (None, {"filter": {"run_id": f"r{rng.randrange(6)}"}, "limit": rng.choice([None, 2])}),
        (_cfg(checkpoint_id=ids[1]), {}),
    ]
    for _ in range(4):
        thread_id = rng.choice(threads)
        config = _cfg(thread_id, rng.choice([None, "", "child:1"]),
                      rng.choice([None, None, None, ids[2]]))  # fmt: skip
        kw: dict[str, Any] = {"limit": rng.choice([None, None, 1, 4])}
        if rng.random() < 0.4:
            kw["before"] = _cfg(thread_id, "", f"{rng.randrange(81):03d}")
        if rng.random() < 0.3:
            kw["filter"] = {"run_id": f"r{rng.randrange(6)}"}
        calls.append((config, kw))
    for config, kw in calls:
        assert _listed(saver, config, **kw) == _brute_force(saver, config, **kw), (config, kw)

    async def alisted() -> Listed:
        return [
            tuple(item.config["configurable"][k]  # type: ignore[misc]
                  for k in ("thread_id", "checkpoint_ns", "checkpoint_id"))
            async for item in saver.alist(config, **kw)
        ]  # fmt: skip

    config, kw = calls[-1]
    assert asyncio.run(alisted()) == _brute_force(saver, config, **kw)


@pytest.mark.parametrize("page", [2, memory.PAGE_SIZE])
@pytest.mark.parametrize("block", [2, 3, _sortedblocks.BLOCK])
@pytest.mark.parametrize("seed", range(3))
def test_list_matches_sorting_every_checkpoint(
    monkeypatch: pytest.MonkeyPatch, seed: int, block: int, page: int
) -> None:
    """Random puts (new ids, repeated ids that replace a checkpoint, old ts, several
    namespaces), deletes, prunes, copies, deletes by run and expiries
    (``test_memory_thread_listing.random_operations``): after each, ``list`` - over all
    threads or one, any namespace or one, with ``before``, ``limit``, a metadata filter,
    a checkpoint id - and ``alist`` give what sorting every stored checkpoint gives, and
    the indexes hold exactly the stored checkpoints. Tiny blocks make the indexes split
    and join their blocks all the time; tiny pages make ``list`` continue from its
    keyset."""
    monkeypatch.setattr(_sortedblocks, "BLOCK", block)
    monkeypatch.setattr(memory, "PAGE_SIZE", page)
    random_operations(InMemorySaver(), random.Random(seed), 400, _check)


def test_pages_continue_below_the_last_checkpoint_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two pages (the lock is not held) the checkpoints may change: the next page
    lists what is stored then below the last checkpoint listed, as the SQL savers' keyset
    pages do - a checkpoint deleted meanwhile is not listed, one added below is, none
    twice."""
    monkeypatch.setattr(memory, "PAGE_SIZE", 3)
    saver = InMemorySaver()
    for i in range(12):
        _put(saver, f"t{i % 3}", f"{i:03d}", hours_ago=1)
    listing = saver.list(None)
    first = [next(listing).config["configurable"]["checkpoint_id"] for _ in range(3)]
    assert first == ["011", "010", "009"]
    saver.delete_thread("t2")  # 008, 005, 002
    _put(saver, "late", "004", hours_ago=1, ns="x")  # below the last listed: listed
    _put(saver, "late", "099", hours_ago=1)  # above it: not
    rest = [(t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_id"])
            for t in listing]  # fmt: skip
    assert rest == [("t1", "007"), ("t0", "006"), ("t1", "004"), ("late", "004"),
                    ("t0", "003"), ("t1", "001"), ("t0", "000")]  # fmt: skip


def test_a_saver_reopened_from_its_file_lists_its_checkpoints(tmp_path: Path) -> None:
    factory = partial(PersistentDict, filename=str(tmp_path / "saver.pickle"))
    rng = random.Random(3)
    with InMemorySaver(factory=factory) as saver:
        for i in range(60):
            _put(saver, f"t{rng.randrange(8)}", f"{i:03d}", rng.choice(HOURS),
                 ns=rng.choice(["", "child:1"]))  # fmt: skip
        saver.copy_thread("t3", "t3-copy")
        expected = _listed(saver, None)
        assert expected == _brute_force(saver, None)
    with InMemorySaver(factory=factory) as again:
        _check_indexes(again)
        assert _listed(again, None) == expected
        assert _listed(again, _cfg("t3-copy"), limit=4) == _brute_force(again, _cfg("t3-copy"),
                                                                         limit=4)  # fmt: skip
        again.delete_thread("t3")
        _put(again, "t3", "100", 0.0)
        _check_indexes(again)
        assert _listed(again, _cfg("t3")) == [("t3", "", "100")]


def _list_costs(threads: int) -> dict[str, int]:
    """Comparisons of checkpoint ids made by each listing (and by one more put), with
    ``threads`` threads of 2 checkpoints and a thread "long" of ``threads`` checkpoints,
    ids in creation order."""
    saver = InMemorySaver()
    for t in range(threads):
        for step in range(2):
            _put(saver, f"t{t:05d}", CountedId(f"{t:05d}-{step}"), 1, run_id=f"r{step}")
        _put(saver, "long", CountedId(f"{t:05d}-2"), 1, run_id=f"r{t % 3}")
    middle = f"{threads // 2:05d}"
    calls: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {
        "list(None, limit=10)": (None, {"limit": 10}),
        "thread, limit=10": (_cfg("long"), {"limit": 10}),
        "thread and namespace, limit=10": (_cfg("long", ""), {"limit": 10}),
        "filter, limit=10": (None, {"filter": {"run_id": "r2"}, "limit": 10}),
        "before, limit=10": (None, {"before": _cfg("x", "", middle), "limit": 10}),
        "thread, before, limit=10": (_cfg("long"), {"before": _cfg("long", "", middle),
                                                    "limit": 10}),  # fmt: skip
        "one checkpoint id": (_cfg(checkpoint_id=f"{middle}-1"), {}),
    }
    costs = {}
    for name, (config, kw) in calls.items():
        CountedId.compared = 0
        got = [t.config["configurable"]["checkpoint_id"] for t in saver.list(config, **kw)]
        costs[name] = CountedId.compared
        assert got == [c for _, _, c in _brute_force(saver, config, **kw)], name
        assert len(got) == (1 if name == "one checkpoint id" else 10), name
    CountedId.compared = 0
    _put(saver, "t00000", CountedId(f"{threads:05d}-9"), 1)
    costs["put"] = CountedId.compared
    return costs


def test_a_page_of_checkpoints_costs_the_page_not_the_checkpoints() -> None:
    """Tenfold the checkpoints (900 -> 9,000; the thread listed 300 -> 3,000): the same
    comparisons for a first page over every thread or one thread's history (also with a
    metadata filter matching a third), O(log n) from a ``before`` bound or for one
    checkpoint id, O(log n) for a put to keep the indexes. Sorting every candidate, as
    ``list`` did, made tens of thousands."""
    small, big = _list_costs(300), _list_costs(3000)
    flat = ["list(None, limit=10)", "thread, limit=10", "thread and namespace, limit=10",
            "filter, limit=10"]  # fmt: skip
    for name in flat:
        assert big[name] == small[name] <= 10, (name, small, big)
    for name in ("before, limit=10", "thread, before, limit=10", "one checkpoint id", "put"):
        assert big[name] <= 8 * math.log2(9000), (name, small, big)


def _walked(threads: int) -> int:
    """Table entries walked by listings over every thread and in one thread."""
    saver = InMemorySaver(factory=CountedTable)
    for t in range(threads):
        for step in range(3):
            _put(saver, f"t{t:05d}", f"{t:05d}-{step}", 1, run_id=f"r{step}")
    CountedTable.walked = 0
    assert len(list(saver.list(None, limit=10))) == 10
    assert len(list(saver.list(None, before=_cfg("x", "", "00005"), limit=10))) == 10
    assert len(list(saver.list(None, filter={"run_id": "r1"}, limit=10))) == 10
    assert len(list(saver.list(_cfg("t00007"), limit=10))) == 3
    return CountedTable.walked


def test_listing_checkpoints_walks_no_table() -> None:
    """A page of ``list`` reads its own checkpoints' entries: no walk of ``storage``,
    ``blobs`` or ``writes`` (which grow with every thread)."""
    assert _walked(300) == _walked(3000) == 0
