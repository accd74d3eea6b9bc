"""The conformance suite every checkpoint saver must pass.

The test functions here are collected by ``tests/test_checkpoint_savers.py``, which
provides the ``saver_kit`` fixture (one per saver kind) and runs each test against every
saver. Tests talk to the saver through ``Api``: sync savers through their sync methods,
async savers through their ``a``-methods (``test_other_api_style`` crosses them over).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import multiprocessing
import os
import pathlib
import pickle
import re
import signal
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from threadloom.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointTuple,
    empty_checkpoint,
)
from threadloom.checkpoint.serde import register_type
from threadloom.checkpoint.serde.types import INTERRUPT as INTERRUPT_CHANNEL
from threadloom.errors import CheckpointConflictError
from threadloom.types import Interrupt, Send

__all__ = [
    "Api",
    "SaverKit",
    "open_sync_saver",
]


# -- how tests reach a saver --------------------------------------------------------------


class Api:
    """Awaitable facade over a saver: sync methods or ``a``-methods, chosen per kind."""

    def __init__(self, saver: BaseCheckpointSaver, use_async: bool) -> None:
        self.saver = saver
        self.use_async = use_async

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self.use_async:
            return await getattr(self.saver, "a" + name)(*args, **kwargs)
        return getattr(self.saver, name)(*args, **kwargs)

    async def put(self, config: dict[str, Any], checkpoint: Checkpoint, metadata: dict[str, Any],
                  new_versions: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
        return await self._call("put", config, checkpoint, metadata, new_versions)

    async def put_writes(self, config: dict[str, Any], writes: list[tuple[str, Any]],
                         task_id: str, task_path: str = "") -> None:  # fmt: skip
        await self._call("put_writes", config, writes, task_id, task_path)

    async def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return await self._call("get_tuple", config)

    async def list(self, config: dict[str, Any] | None, **kwargs: Any) -> list[CheckpointTuple]:
        if self.use_async:
            return [t async for t in self.saver.alist(config, **kwargs)]
        return list(self.saver.list(config, **kwargs))

    async def delete_thread(self, thread_id: str) -> None:
        await self._call("delete_thread", thread_id)

    async def list_threads(self, limit: int | None = None) -> list[str]:
        return await self._call("list_threads", limit)

    async def prune(self, thread_id: str, keep_last: int) -> int:
        return await self._call("prune", thread_id, keep_last)

    async def prune_threads(self, thread_ids: list[str], **kwargs: Any) -> int:
        return await self._call("prune", thread_ids, **kwargs)

    async def delete_for_runs(self, run_ids: list[str]) -> None:
        await self._call("delete_for_runs", run_ids)

    async def copy_thread(self, source: str, target: str) -> None:
        await self._call("copy_thread", source, target)

    async def expire_paused(self, older_than: dt.timedelta, now: dt.datetime | None = None) -> Any:
        return await self._call("expire_paused", older_than, now=now)

    async def stored_bytes(self, thread_id: str | None = None) -> int:
        return await self._call("stored_bytes", thread_id)

    @asynccontextmanager
    async def lock_thread(self, thread_id: str) -> AsyncIterator[None]:
        if self.use_async:
            async with self.saver.alock_thread(thread_id):
                yield
        else:
            with self.saver.lock_thread(thread_id):
                yield


@dataclass
class SaverKit:
    """One saver under test plus what some tests need around it."""

    kind: str
    saver: BaseCheckpointSaver
    api: Api
    spec: tuple[str, str] | None = None  # how another process opens the same storage
    raw_sql: Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]] | None = None
    fresh_spec: Callable[[], tuple[str, str]] | None = None  # new, empty storage
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sql(self) -> bool:
        return self.spec is not None


@contextmanager
def open_sync_saver(spec: tuple[str, str]) -> Iterator[BaseCheckpointSaver]:
    """Open the storage ``spec`` describes with a sync saver (used in child processes)."""
    kind, target = spec
    if kind == "sqlite":
        from threadloom.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(target) as saver:
            yield saver
    else:
        from threadloom.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(target) as saver:
            yield saver


def migrations_of(spec: tuple[str, str]) -> int:
    if spec[0] == "sqlite":
        from threadloom.checkpoint.sqlite import MIGRATIONS
    else:
        from threadloom.checkpoint.postgres import MIGRATIONS
    return len(MIGRATIONS)


# -- building checkpoints -------------------------------------------------------------------


def cfg(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def make_cp(values: dict[str, Any], versions: dict[str, Any], **extra: Any) -> Checkpoint:
    cp = empty_checkpoint()
    cp["channel_values"] = dict(values)
    cp["channel_versions"] = dict(versions)
    cp.update(extra)  # type: ignore[typeddict-item]
    return cp


class Thread:
    """Appends checkpoints to one (thread, namespace), tracking versions like the engine."""

    def __init__(self, api: Api, thread_id: str, ns: str = "") -> None:
        self.api = api
        self.thread_id = thread_id
        self.ns = ns
        self.config = cfg(thread_id, ns=ns)
        self.values: dict[str, Any] = {}
        self.versions: dict[str, Any] = {}
        self.step = -1

    async def put(
        self, source: str = "loop", run_id: str | None = None, **updates: Any
    ) -> dict[str, Any]:
        new_versions = {}
        for channel, value in updates.items():
            version = self.api.saver.get_next_version(self.versions.get(channel), None)
            self.versions[channel] = new_versions[channel] = version
            self.values[channel] = value
        self.step += 1
        cp = make_cp(self.values, self.versions)
        metadata: dict[str, Any] = {"source": source, "step": self.step}
        if run_id is not None:
            metadata["run_id"] = run_id
        self.config = await self.api.put(self.config, cp, metadata, new_versions)
        return self.config

    @property
    def checkpoint_id(self) -> str:
        return self.config["configurable"]["checkpoint_id"]


def tid(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [t.config["configurable"]["checkpoint_id"] for t in tuples]


# -- basic reading and writing ------------------------------------------------------------


async def test_put_and_get_tuple(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid()
    assert await api.get_tuple(cfg(t)) is None
    cp1 = make_cp({"a": 1, "b": "x"}, {"a": "1", "b": "1"})
    c1 = await api.put(cfg(t), cp1, {"source": "input", "step": -1}, {"a": "1", "b": "1"})
    assert c1 == cfg(t, cp1["id"])
    cp2 = make_cp({"a": 2, "b": "x"}, {"a": "2", "b": "1"})
    c2 = await api.put(c1, cp2, {"source": "loop", "step": 0}, {"a": "2"})

    latest = await api.get_tuple(cfg(t))
    assert latest is not None
    assert latest.config == c2
    assert latest.checkpoint["id"] == cp2["id"]
    assert latest.checkpoint["channel_values"] == {"a": 2, "b": "x"}
    assert latest.checkpoint["channel_versions"] == {"a": "2", "b": "1"}
    assert latest.checkpoint["versions_seen"] == {}
    assert latest.metadata == {"source": "loop", "step": 0}
    assert latest.parent_config == c1
    assert latest.pending_writes == []

    first = await api.get_tuple(c1)
    assert first is not None
    assert first.checkpoint["channel_values"] == {"a": 1, "b": "x"}
    assert first.parent_config is None
    assert await api.get_tuple(cfg(t, "no-such-id")) is None
    assert await api.get_tuple(cfg(tid("other"))) is None


async def test_checkpoint_fields_round_trip(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid()
    cp = make_cp(
        {"a": 1},
        {"a": "00000000000000000000000000000001.abc", "n": 3, "f": 2.5},
        versions_seen={"node": {"a": "1"}, "__input__": {}},
        updated_channels=["a"],
    )
    await api.put(cfg(t), cp, {"source": "input", "step": -1, "parents": {"": "x"}}, {"a": "1"})
    got = await api.get_tuple(cfg(t))
    assert got is not None
    for key in ("v", "id", "ts", "channel_versions", "versions_seen", "updated_channels"):
        assert got.checkpoint[key] == cp[key], key
    assert got.metadata == {"source": "input", "step": -1, "parents": {"": "x"}}


async def test_missing_thread_id_is_a_clear_error(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    with pytest.raises(ValueError, match="thread_id"):
        await api.get_tuple({"configurable": {}})
    with pytest.raises(ValueError, match="thread_id"):
        await api.put({"configurable": {}}, make_cp({}, {}), {"source": "input"}, {})
    with pytest.raises(ValueError, match="checkpoint_id"):
        await api.put_writes(cfg(tid()), [("a", 1)], "task")


async def test_list_order_limit_before_filter(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    made = []
    for i in range(6):
        await t.put(source="input" if i == 0 else "loop", x=i)
        made.append(t.checkpoint_id)
    other = Thread(api, tid("other"))
    await other.put(x=99)

    listed = await api.list(cfg(t.thread_id))
    assert ids(listed) == made[::-1]
    assert [x.checkpoint["channel_values"]["x"] for x in listed] == [5, 4, 3, 2, 1, 0]
    assert [x.parent_config for x in listed][-1] is None
    assert ids(await api.list(cfg(t.thread_id), limit=2)) == made[::-1][:2]
    assert ids(await api.list(cfg(t.thread_id), before=cfg(t.thread_id, made[3]))) == [
        made[2],
        made[1],
        made[0],
    ]
    assert ids(
        await api.list(cfg(t.thread_id), before=cfg(t.thread_id, made[3]), limit=1)
    ) == [made[2]]
    assert ids(await api.list(cfg(t.thread_id), filter={"source": "input"})) == [made[0]]
    assert ids(await api.list(cfg(t.thread_id), filter={"step": 3})) == [made[3]]
    assert ids(await api.list(cfg(t.thread_id), filter={"source": "loop", "step": 4})) == [
        made[4]
    ]
    assert await api.list(cfg(t.thread_id), filter={"source": "nope"}) == []
    assert ids(await api.list(cfg(t.thread_id, made[2]))) == [made[2]]


async def test_list_pages_through_many_checkpoints(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    made = []
    for i in range(230):
        await t.put(x=i)
        made.append(t.checkpoint_id)
    listed = await api.list(cfg(t.thread_id))
    assert ids(listed) == made[::-1]
    assert [x.checkpoint["channel_values"]["x"] for x in listed] == list(range(229, -1, -1))
    assert ids(await api.list(cfg(t.thread_id), limit=150)) == made[::-1][:150]
    assert ids(await api.list(cfg(t.thread_id), filter={"step": 200})) == [made[200]]


async def test_list_pages_carry_each_checkpoint_pending_writes(saver_kit: SaverKit) -> None:
    """Every listed checkpoint has its own pending writes - first and last of each page
    included - in a listing over all threads, one thread's, and a filtered one, while
    another thread's checkpoints sit between the listed ones."""
    api = saver_kit.api
    main, other = Thread(api, tid()), Thread(api, tid("other"))
    for i in range(230):
        for t in (main, other):
            await t.put(source="input" if i % 7 == 0 else "loop", x=i)
            if t is main or i % 3 == 0:
                await api.put_writes(t.config, [("w", f"{t.thread_id}-{i}"), ("v", i)], f"k{i}")
    expected = {}
    for t in (main, other):
        for tup in await api.list(cfg(t.thread_id), limit=1000):
            got = await api.get_tuple(tup.config)
            assert got is not None
            expected[tup.config["configurable"]["checkpoint_id"]] = got.pending_writes
    assert sum(1 for w in expected.values() if w) == 230 + 77
    for config, kw in [
        (None, {}),
        (cfg(main.thread_id), {}),
        (None, {"filter": {"source": "input"}}),
        (cfg(other.thread_id), {"filter": {"source": "loop"}}),
    ]:
        listed = await api.list(config, **kw)
        assert listed
        for tup in listed:
            assert tup.pending_writes == expected[tup.config["configurable"]["checkpoint_id"]]

async def test_list_across_namespaces_and_threads(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    main = Thread(api, tid())
    child = Thread(api, main.thread_id, ns="child:1")
    other = Thread(api, tid("other"))
    await main.put(x=1)
    await child.put(y=1)
    await main.put(x=2)
    await child.put(y=2)
    await other.put(z=1)

    every = await api.list({"configurable": {"thread_id": main.thread_id}})
    assert len(every) == 4
    assert {x.config["configurable"]["checkpoint_ns"] for x in every} == {"", "child:1"}
    only_child = await api.list(cfg(main.thread_id, ns="child:1"))
    assert [x.checkpoint["channel_values"] for x in only_child] == [{"y": 2}, {"y": 1}]
    assert all(x.config["configurable"]["checkpoint_ns"] == "child:1" for x in only_child)
    only_root = await api.list(cfg(main.thread_id, ns=""))
    assert [x.checkpoint["channel_values"] for x in only_root] == [{"x": 2}, {"x": 1}]
    everything = await api.list(None)
    assert {x.config["configurable"]["thread_id"] for x in everything} == {
        main.thread_id,
        other.thread_id,
    }
    assert len(everything) == 5
    assert len(await api.list(None, filter={"step": 1})) == 2


async def test_list_limit_across_threads(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    for label in ("a", "b", "c"):
        th = Thread(api, tid(label))
        await th.put(x=1)
        await th.put(x=2)
    assert len(await api.list(None, limit=3)) == 3
    assert len(await api.list(None, limit=1)) == 1


async def test_namespaces_are_kept_separate(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    root = Thread(api, tid())
    child = Thread(api, root.thread_id, ns="sub:abc")
    await root.put(x="root-1")
    await child.put(x="child-1")
    await child.put(x="child-2")
    await root.put(x="root-2")
    got_root = await api.get_tuple(cfg(root.thread_id))
    got_child = await api.get_tuple(cfg(root.thread_id, ns="sub:abc"))
    assert got_root is not None and got_child is not None
    assert got_root.checkpoint["channel_values"] == {"x": "root-2"}
    assert got_child.checkpoint["channel_values"] == {"x": "child-2"}
    assert got_child.config["configurable"]["checkpoint_ns"] == "sub:abc"
    # the same version string in two namespaces holds two different values
    assert root.versions["x"].split(".")[0] == child.versions["x"].split(".")[0]
    assert await api.get_tuple(cfg(root.thread_id, child.checkpoint_id)) is None


# -- pending writes -------------------------------------------------------------------------


async def test_pending_writes_order_and_idempotency(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    c = await t.put(x=1)
    await api.put_writes(c, [("c", 1), ("d", 2)], "t2", "b")
    await api.put_writes(c, [("a", 3)], "t1", "b")
    await api.put_writes(c, [("z", 4)], "t9", "a")
    await api.put_writes(c, [("c", 100), ("d", 200)], "t2", "b")  # same (task, idx): kept
    got = await api.get_tuple(c)
    assert got is not None
    assert got.pending_writes == [
        ("t9", "z", 4),
        ("t1", "a", 3),
        ("t2", "c", 1),
        ("t2", "d", 2),
    ]
    newer = await t.put(x=2)
    got2 = await api.get_tuple(newer)
    assert got2 is not None and got2.pending_writes == []


async def test_special_writes_overwrite(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    c = await t.put(x=1)
    await api.put_writes(c, [("__interrupt__", "first")], "t3")
    await api.put_writes(c, [("__interrupt__", "second")], "t3")
    await api.put_writes(c, [("__error__", ValueError("boom"))], "t4")
    await api.put_writes(c, [("__error__", "replaced")], "t4")
    await api.put_writes(c, [("__resume__", [1]), ("out", 7)], "t5")
    await api.put_writes(c, [("__resume__", [1, 2]), ("out", 8)], "t5")
    got = await api.get_tuple(c)
    assert got is not None and got.pending_writes is not None
    by_task: dict[str, set[tuple[str, Any]]] = {}
    for task, channel, value in got.pending_writes:
        by_task.setdefault(task, set()).add((channel, repr(value)))
    assert by_task == {
        "t3": {("__interrupt__", "'second'")},
        "t4": {("__error__", "'replaced'")},
        "t5": {("__resume__", "[1, 2]"), ("out", "7")},
    }


# -- values -------------------------------------------------------------------------------


@register_type
@dataclass
class Ticket:
    id: int
    title: str
    tags: list[str] = field(default_factory=list)


async def test_only_new_versions_are_stored(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid()
    cp1 = make_cp({"a": "A1", "b": "B1"}, {"a": "1", "b": "1"})
    c1 = await api.put(cfg(t), cp1, {"source": "input"}, {"a": "1", "b": "1"})
    # "b" is not in new_versions: its value here must not be written over version "1"
    cp2 = make_cp({"a": "A2", "b": "not stored"}, {"a": "2", "b": "1"})
    c2 = await api.put(c1, cp2, {"source": "loop"}, {"a": "2"})
    got = await api.get_tuple(c2)
    assert got is not None
    assert got.checkpoint["channel_values"] == {"a": "A2", "b": "B1"}
    # listed in new_versions but absent from the values: the channel is empty
    cp3 = make_cp({"a": "A2"}, {"a": "2", "b": "2"})
    c3 = await api.put(c2, cp3, {"source": "loop"}, {"b": "2"})
    got3 = await api.get_tuple(c3)
    assert got3 is not None
    assert got3.checkpoint["channel_values"] == {"a": "A2"}
    first = await api.get_tuple(c1)
    assert first is not None and first.checkpoint["channel_values"] == {"a": "A1", "b": "B1"}


SERDE_VALUES: dict[str, Any] = {
    "none": None,
    "bool": True,
    "int": -7,
    "bigint": 2**80,
    "float": 1.5,
    "str": "héllo ✓ \x00 end",
    "bytes": b"\x00\xffraw",
    "list": [1, "two", [3.0, None]],
    "dict": {"a": {"b": [1, 2]}, "": 0},
    "int_keys": {1: "one", 2: "two"},
    "tuple": (1, (2, 3)),
    "set": {1, 2, 3},
    "frozenset": frozenset({"x"}),
    "datetime": dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
    "naive_datetime": dt.datetime(2024, 1, 1, 0, 0),
    "zoned": dt.datetime(2024, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),
    "date": dt.date(2024, 2, 29),
    "time": dt.time(23, 59, 1),
    "timedelta": dt.timedelta(days=2, seconds=3, microseconds=4),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": decimal.Decimal("3.14159265358979323846"),
    "deque": deque([1, 2], maxlen=5),
    "complex": complex(1, -2),
    "ordereddict": OrderedDict([("z", 1), ("a", 2)]),
    "path": pathlib.PurePosixPath("/tmp/x"),
    "messages": [
        HumanMessage("hi", id="1"),
        AIMessage("", id="2", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}]),
        ToolMessage("42", tool_call_id="c1", id="3"),
    ],
    "document": Document(page_content="doc", metadata={"k": "v"}),
    "send": Send("node", {"arg": 1}),
    "interrupt": Interrupt(value={"question": "ok?"}, id="abc"),
    "registered": Ticket(1, "title", ["a"]),
}


async def test_values_of_every_serializer_type(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid()
    versions = {k: "1" for k in SERDE_VALUES}
    c = await api.put(cfg(t), make_cp(SERDE_VALUES, versions), {"source": "input"}, versions)
    await api.put_writes(c, list(SERDE_VALUES.items()), "task")
    got = await api.get_tuple(cfg(t))
    assert got is not None
    values = got.checkpoint["channel_values"]
    assert set(values) == set(SERDE_VALUES)
    for key, expected in SERDE_VALUES.items():
        assert values[key] == expected, key
        assert type(values[key]) is type(expected), key
    assert values["deque"].maxlen == 5
    assert list(values["ordereddict"]) == ["z", "a"]
    assert values["zoned"].tzinfo == ZoneInfo("Europe/Paris")
    assert [(ch, v) for _, ch, v in got.pending_writes or []] == list(SERDE_VALUES.items())


# -- delta storage ------------------------------------------------------------------------


async def test_list_deltas_round_trip(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    history: list[tuple[dict[str, Any], list[Any], list[int]]] = []
    msgs: list[Any] = []
    nums: list[int] = []
    for i in range(120):
        msgs = [*msgs, HumanMessage(f"message {i}", id=f"m{i}")]  # add_messages-like
        nums = nums + [i]  # operator.add-like
        if i == 40:  # an item replaced: stored whole
            msgs = [*msgs[:5], AIMessage("replaced", id="m5"), *msgs[6:]]
        if i == 60:  # an item removed
            msgs = msgs[1:]
        if i == 80:  # same length, different last item
            nums = [*nums[:-1], -1]
        await t.put(messages=msgs, nums=nums, counter=i)
        history.append((t.config, list(msgs), list(nums)))
    for config, expected_msgs, expected_nums in history[::7] + history[-3:]:
        got = await api.get_tuple(config)
        assert got is not None
        assert got.checkpoint["channel_values"]["messages"] == expected_msgs
        assert got.checkpoint["channel_values"]["nums"] == expected_nums
    listed = await api.list(cfg(t.thread_id))
    assert len(listed) == 120
    for tup, (config, expected_msgs, expected_nums) in zip(listed, history[::-1], strict=True):
        assert tup.config == config
        assert tup.checkpoint["channel_values"]["messages"] == expected_msgs
        assert tup.checkpoint["channel_values"]["nums"] == expected_nums


async def test_readers_get_values_of_their_own(saver_kit: SaverKit) -> None:
    """Changing a message read from a checkpoint in place (the usual way to edit a tool
    call before ``update_state``) never changes what the saver holds: not the next read,
    not older checkpoints, not another checkpoint of the same read."""
    api = saver_kit.api
    t = Thread(api, tid())
    msgs: list[Any] = []
    for i in range(30):  # long enough to be stored as deltas and cached
        call = {"name": "search", "args": {"q": f"query {i}"}, "id": f"c{i}"}
        msgs = [*msgs, AIMessage("", id=f"a{i}", tool_calls=[call])]
        await t.put(messages=msgs)
    for _ in range(2):  # a cold read, then one the value cache serves
        got = await api.get_tuple(cfg(t.thread_id))
        assert got is not None
        last = got.checkpoint["channel_values"]["messages"][-1]
        last.tool_calls[0]["args"]["q"] = "edited"
        last.content = "edited"
        last.additional_kwargs["note"] = "edited"
        got.checkpoint["channel_values"]["messages"].append("appended")
    again = await api.get_tuple(cfg(t.thread_id))
    assert again is not None
    assert again.checkpoint["channel_values"]["messages"] == msgs
    assert again.checkpoint["channel_values"]["messages"][-1].tool_calls[0]["args"] == {
        "q": "query 29"
    }
    listed = await api.list(cfg(t.thread_id), limit=3)
    assert [tup.checkpoint["channel_values"]["messages"] for tup in listed] == [
        msgs,
        msgs[:-1],
        msgs[:-2],
    ]
    first = listed[0].checkpoint["channel_values"]["messages"]
    first[0].tool_calls[0]["args"]["q"] = "edited"
    assert (await api.list(cfg(t.thread_id), limit=1))[0].checkpoint["channel_values"][
        "messages"
    ] == msgs


async def test_list_deltas_with_forks_and_fresh_readers(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    items: list[str] = []
    configs = []
    for i in range(10):
        items = [*items, f"i{i}"]
        await t.put(items=items)
        configs.append(t.config)
    # fork from checkpoint 4 (update_state on an old checkpoint), then keep going there
    fork = Thread(api, t.thread_id)
    base = await api.get_tuple(configs[4])
    assert base is not None
    fork.config = configs[4]
    fork.values = dict(base.checkpoint["channel_values"])
    fork.versions = dict(base.checkpoint["channel_versions"])
    await fork.put(source="update", items=[*fork.values["items"], "fork-a"])
    await fork.put(items=[*fork.values["items"], "fork-b"])
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None
    assert got.checkpoint["channel_values"]["items"] == [f"i{i}" for i in range(5)] + [
        "fork-a",
        "fork-b",
    ]
    old = await api.get_tuple(configs[9])
    assert old is not None
    assert old.checkpoint["channel_values"]["items"] == [f"i{i}" for i in range(10)]
    if saver_kit.spec is None:
        return
    # another process (a fresh saver, cold cache) continues the thread
    with open_sync_saver(saver_kit.spec) as other:
        head = other.get_tuple(cfg(t.thread_id))
        assert head is not None
        values = head.checkpoint["channel_values"]
        version = other.get_next_version(head.checkpoint["channel_versions"]["items"])
        cp = make_cp(
            {"items": [*values["items"], "elsewhere"]},
            {**head.checkpoint["channel_versions"], "items": version},
        )
        other.put(head.config, cp, {"source": "loop", "step": 99}, {"items": version})
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None
    assert got.checkpoint["channel_values"]["items"][-3:] == ["fork-a", "fork-b", "elsewhere"]


async def test_stale_delta_cache_stores_whole(saver_kit: SaverKit) -> None:
    """Another saver pruned or deleted the thread: a delta planned on a base that is gone
    is stored whole instead (nothing half-written, nothing lost)."""
    if saver_kit.spec is None:
        pytest.skip("needs a second saver on the same storage")
    api = saver_kit.api
    t = Thread(api, tid("stale"))
    for i in range(3):
        await t.put(items=[f"i{j}" for j in range(i + 1)])
    with open_sync_saver(saver_kit.spec) as other:
        other.prune(t.thread_id, 1)  # type: ignore[attr-defined]
        other.delete_thread(t.thread_id)
    await t.put(source="update", items=[*t.values["items"], "after"])
    getattr(saver_kit.saver, "clear_cache", lambda: None)()
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None
    assert got.checkpoint["channel_values"]["items"] == ["i0", "i1", "i2", "after"]


async def test_storage_grows_linearly(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    msgs: list[Any] = []
    sizes = {}
    for i in range(1, 101):
        text = f"turn {i}: " + "lorem ipsum dolor sit amet " * 8
        msgs = [*msgs, HumanMessage(text, id=f"h{i}")]
        await t.put(messages=msgs, step_count=i)
        if i in (25, 50, 100):
            sizes[i] = await api.stored_bytes(t.thread_id)
    assert sizes[25] > 0
    assert sizes[100] / sizes[50] < 2.5, sizes
    assert sizes[50] / sizes[25] < 2.5, sizes
    assert await api.stored_bytes() >= sizes[100]
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None and got.checkpoint["channel_values"]["messages"] == msgs


# -- concurrency: one writer per thread -------------------------------------------------------


async def test_stale_loop_checkpoint_conflicts(saver_kit: SaverKit) -> None:
    """Within a run (the thread's run lock held), a loop checkpoint must continue from the
    head: the thread changed outside the run otherwise."""
    api = saver_kit.api
    t = tid()
    c0 = await api.put(cfg(t), make_cp({"x": 0}, {"x": "1"}), {"source": "input"}, {"x": "1"})
    async with api.lock_thread(t):
        c1 = await api.put(c0, make_cp({"x": 1}, {"x": "2"}), {"source": "loop"}, {"x": "2"})
        stale = make_cp({"x": "stale"}, {"x": "3"})
        with pytest.raises(CheckpointConflictError):
            await api.put(c0, stale, {"source": "loop", "step": 1}, {"x": "3"})
        assert await api.get_tuple(cfg(t, stale["id"])) is None
        assert len(await api.list(cfg(t))) == 2
        with pytest.raises(CheckpointConflictError):  # no parent while the thread has a head
            await api.put(cfg(t), make_cp({}, {}), {"source": "loop"}, {})
        # forks are allowed from anywhere
        c2 = await api.put(c0, make_cp({"x": "fork"}, {"x": "4"}), {"source": "update"}, {"x": "4"})
        with pytest.raises(CheckpointConflictError):
            await api.put(c1, make_cp({"x": 9}, {"x": "5"}), {"source": "loop"}, {"x": "5"})
        c3 = await api.put(c2, make_cp({"x": 3}, {"x": "6"}), {"source": "loop"}, {"x": "6"})
        for source in ("fork", "input"):
            await api.put(c0, make_cp({}, {}), {"source": source}, {})
        # the namespaces of a thread have independent heads
        await api.put(cfg(t, ns="child:1"), make_cp({}, {}), {"source": "loop"}, {})
        # re-putting the head itself is not a conflict
        head = await api.get_tuple(c3)
        assert head is not None
        got = await api.get_tuple(cfg(t, ns="child:1"))
        assert got is not None
    # Outside a run, put is plain storage (the saver contract): any parent is accepted.
    free = tid()
    f0 = await api.put(cfg(free), make_cp({}, {}), {"source": "loop"}, {})
    f1 = await api.put(f0, make_cp({}, {}), {"source": "loop"}, {})
    f2 = await api.put(f0, make_cp({}, {}), {"source": "loop"}, {})
    f3 = await api.put(cfg(free), make_cp({}, {}), {"source": "loop"}, {})
    listed = [tup.config["configurable"]["checkpoint_id"] for tup in await api.list(cfg(free))]
    assert listed == [c["configurable"]["checkpoint_id"] for c in (f3, f2, f1, f0)]


@dataclass
class _Race:
    spec: tuple[str, str]
    thread_id: str
    parent_id: str


def _race_put(race: _Race, barrier: Any, results: Any) -> None:
    try:
        with open_sync_saver(race.spec) as saver:
            cp = make_cp({"x": os.getpid()}, {"x": "2"})
            barrier.wait(timeout=30)
            try:  # as a run does: under the run lock (the loser: busy, or a stale head)
                with saver.lock_thread(race.thread_id):  # type: ignore[attr-defined]
                    saver.put(
                        cfg(race.thread_id, race.parent_id), cp, {"source": "loop", "step": 1},
                        {"x": "2"},
                    )  # fmt: skip
                results.put("ok")
            except CheckpointConflictError:
                results.put("conflict")
    except Exception as exc:  # pragma: no cover - reported to the parent
        results.put(f"error: {exc!r}")


def _concurrent_setup(spec: tuple[str, str], barrier: Any, results: Any) -> None:
    try:
        barrier.wait(timeout=30)
        with open_sync_saver(spec) as saver:
            saver.setup()  # type: ignore[attr-defined]
            saver.setup()  # type: ignore[attr-defined]
        results.put("ok")
    except Exception as exc:  # pragma: no cover - reported to the parent
        results.put(f"error: {exc!r}")


def _run_processes(target: Callable[..., None], args: tuple[Any, ...], n: int = 2) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    out = [results.get(timeout=5) for _ in procs]
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return sorted(out)


def _needs_processes(kit: SaverKit) -> tuple[str, str]:
    if kit.kind not in ("sqlite", "postgres"):
        pytest.skip("multi-process storage test: run on the sync saver of each database")
    assert kit.spec is not None
    return kit.spec


async def test_two_processes_racing_put_one_wins(saver_kit: SaverKit) -> None:
    spec = _needs_processes(saver_kit)
    api = saver_kit.api
    for _ in range(3):
        t = tid("race")
        c0 = await api.put(cfg(t), make_cp({"x": 0}, {"x": "1"}), {"source": "input"}, {"x": "1"})
        outcome = _run_processes(_race_put, (_Race(spec, t, c0["configurable"]["checkpoint_id"]),))
        assert outcome == ["conflict", "ok"], outcome
        assert len(await api.list(cfg(t))) == 2


async def test_concurrent_setup_from_two_processes(saver_kit: SaverKit) -> None:
    _needs_processes(saver_kit)
    assert saver_kit.fresh_spec is not None
    spec = saver_kit.fresh_spec()
    outcome = _run_processes(_concurrent_setup, (spec,))
    assert outcome == ["ok", "ok"], outcome
    with open_sync_saver(spec) as saver:
        saver.setup()  # type: ignore[attr-defined]
        c = saver.put(cfg("t"), make_cp({"a": 1}, {"a": "1"}), {"source": "input"}, {"a": "1"})
        got = saver.get_tuple(c)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


# -- one run per thread: lock_thread ----------------------------------------------------------

BUSY = "is being run by another"


async def test_one_run_per_thread(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid("run")
    async with api.lock_thread(t):
        with pytest.raises(CheckpointConflictError, match=BUSY):
            async with api.lock_thread(t):
                pytest.fail("a second run of the thread got in")
        async with api.lock_thread(tid("other")):  # other threads are not held
            pass
        if saver_kit.spec is not None:  # another saver on the same storage sees it too
            with open_sync_saver(saver_kit.spec) as other:
                with pytest.raises(CheckpointConflictError, match=BUSY), other.lock_thread(t):
                    pytest.fail("another saver got in")
    async with api.lock_thread(t):  # released at exit ...
        pass
    with pytest.raises(RuntimeError, match="boom"):
        async with api.lock_thread(t):
            raise RuntimeError("boom")
    async with api.lock_thread(t):  # ... and when the run fails
        pass
    if saver_kit.spec is not None:
        with open_sync_saver(saver_kit.spec) as other, other.lock_thread(t):
            with pytest.raises(CheckpointConflictError, match=BUSY):
                async with api.lock_thread(t):
                    pytest.fail("got in while another saver held the thread")
    crossed = Api(saver_kit.saver, use_async=True)  # sync savers' async twin too
    if not api.use_async:
        async with crossed.lock_thread(t):
            with pytest.raises(CheckpointConflictError, match=BUSY):
                async with api.lock_thread(t):
                    pytest.fail("the sync and async locks are not the same lock")
        async with api.lock_thread(t):
            pass


def _hold_run_lock(spec: tuple[str, str], thread_id: str, ready: Any) -> None:
    with open_sync_saver(spec) as saver, saver.lock_thread(thread_id):  # type: ignore[attr-defined]
        ready.set()
        time.sleep(600)  # until killed


async def test_run_lock_dies_with_its_process(saver_kit: SaverKit) -> None:
    """A process killed by SIGKILL while holding a thread leaves it free."""
    spec = _needs_processes(saver_kit)
    t = tid("killed")
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_run_lock, args=(spec, t, ready))
    holder.start()
    try:
        assert ready.wait(timeout=30), "the child never took the lock"
        with open_sync_saver(spec) as saver:
            with pytest.raises(CheckpointConflictError, match=BUSY):
                with saver.lock_thread(t):  # type: ignore[attr-defined]
                    pytest.fail("got in while another process held the thread")
            os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
            holder.join(timeout=30)
            assert holder.exitcode == -signal.SIGKILL
            deadline = time.monotonic() + 10  # Postgres ends the session on the EOF
            while True:
                try:
                    with saver.lock_thread(t):  # type: ignore[attr-defined]
                        break
                except CheckpointConflictError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


async def test_setup_twice(saver_kit: SaverKit) -> None:
    if not saver_kit.is_sql:
        pytest.skip("the memory saver has no schema")
    saver: Any = saver_kit.saver
    result = saver.setup()
    if asyncio.iscoroutine(result):
        await result
        await saver.setup()
    else:
        saver.setup()
    assert saver_kit.raw_sql is not None and saver_kit.spec is not None
    rows = saver_kit.raw_sql("SELECT v FROM threadloom_migrations ORDER BY v", ())
    assert [r[0] for r in rows] == list(range(migrations_of(saver_kit.spec)))
    t = Thread(saver_kit.api, tid())
    await t.put(x=1)
    assert await saver_kit.api.get_tuple(t.config) is not None
    if saver_kit.kind == "postgres":  # setup inside the caller's transaction
        import psycopg

        from threadloom.checkpoint.postgres import PostgresSaver

        assert saver_kit.fresh_spec is not None
        url = saver_kit.fresh_spec()[1]
        with psycopg.connect(url) as conn:  # not autocommit: a transaction opens
            conn.execute("SELECT 1")
            PostgresSaver(conn).setup()
            conn.rollback()  # ... and the schema goes with it
            assert conn.execute("SELECT to_regclass('threadloom_migrations')").fetchone() == (
                None,
            )
            conn.rollback()
            PostgresSaver(conn).setup()
            conn.commit()
        with open_sync_saver(("postgres", url)) as again:
            assert again.get_tuple(cfg("nothing")) is None


# -- hostile input ----------------------------------------------------------------------------

HOSTILE_IDS = [
    "x'); DROP TABLE threadloom_checkpoints; --",
    'x" OR 1=1 --',
    "' OR '1'='1",
    "%s %(x)s {0} ? $1 :name",
    "$.source",
    "a\\b/c\nd\te",
    "日本語 🧵",
    "",
    " ",
]


async def test_hostile_filter_keys_are_rejected(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    await t.put(x=1)
    for key in [
        "x') OR 1=1 --",
        "source' OR '1'='1",
        "$.source",
        "a.b",
        'a"b',
        "a b",
        "",
        "k" * 65,
        "ключ",
    ]:
        with pytest.raises(ValueError, match=re.escape(repr(key))):
            await api.list(cfg(t.thread_id), filter={key: "loop"})
    for key in ["source", "step", "user-id", "a_b", "X" * 64]:
        await api.list(cfg(t.thread_id), filter={key: 1})


async def test_injection_looking_input_is_stored_verbatim(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    made: dict[str, str] = {}
    for thread_id in HOSTILE_IDS:
        th = Thread(api, thread_id, ns=thread_id)
        await th.put(x=thread_id)
        made[thread_id] = th.checkpoint_id
        await api.put_writes(th.config, [("w", thread_id)], task_id=thread_id, task_path=thread_id)
    for thread_id, checkpoint_id in made.items():
        got = await api.get_tuple(cfg(thread_id, ns=thread_id))
        assert got is not None
        assert got.config == cfg(thread_id, checkpoint_id, ns=thread_id)
        assert got.checkpoint["channel_values"] == {"x": thread_id}
        assert got.pending_writes == [(thread_id, "w", thread_id)]
        assert len(await api.list({"configurable": {"thread_id": thread_id}})) == 1
    assert len(await api.list(None)) == len(HOSTILE_IDS)
    # hostile filter *values* are just values
    assert await api.list(None, filter={"source": "' OR '1'='1"}) == []
    assert await api.list(None, filter={"source": "loop') OR 1=1 --"}) == []
    await api.delete_thread(HOSTILE_IDS[0])
    assert await api.get_tuple(cfg(HOSTILE_IDS[0], ns=HOSTILE_IDS[0])) is None
    assert len(await api.list(None)) == len(HOSTILE_IDS) - 1


async def test_metadata_filters(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = tid()
    rows = [
        {"source": "input", "step": -1, "user": "ann", "flag": True, "score": 1.5},
        {"source": "loop", "step": 0, "user": "bob", "flag": False, "nested": {"a": 1, "b": [1]}},
        {"source": "loop", "step": 1, "user": "ann", "flag": True, "parents": {"": "p"}},
    ]
    made = []
    config = cfg(t)
    for md in rows:
        cp = make_cp({}, {})
        config = await api.put(config, cp, md, {})
        made.append(cp["id"])

    async def found(**filter: Any) -> list[str]:
        return ids(await api.list(cfg(t), filter=filter))

    assert await found(user="ann") == [made[2], made[0]]
    assert await found(user="ann", step=1) == [made[2]]
    assert await found(flag=True) == [made[2], made[0]]
    assert await found(flag=False) == [made[1]]
    assert await found(score=1.5) == [made[0]]
    assert await found(step=-1) == [made[0]]
    assert await found(nested={"b": [1], "a": 1}) == [made[1]]
    assert await found(nested={"a": 1}) == []  # equality, not containment
    assert await found(nested={"b": [], "a": 1}) == []
    assert await found(parents={"": "p"}) == [made[2]]
    assert await found(user="carl") == []
    assert await found(step="1") == []  # a string is not the number
    listed = await api.list(cfg(t), filter={"user": "bob"})
    assert listed[0].metadata == rows[1]


# -- damaged storage --------------------------------------------------------------------------


class _Boom:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def _damage(kit: SaverKit, thread_id: str, what: str, marker: str) -> None:
    evil = pickle.dumps(_Boom(marker))
    if kit.raw_sql is None:  # memory saver: edit its dicts
        saver: Any = kit.saver
        if what == "blob":
            for key in [k for k in saver.blobs if k[0] == thread_id]:
                saver.blobs[key] = ("msgpack", b"\xc1\xc1garbage")
        elif what == "pickle":
            for key in [k for k in saver.blobs if k[0] == thread_id]:
                saver.blobs[key] = ("pickle", evil)
        elif what == "checkpoint":
            for cps in saver.storage[thread_id].values():
                for cid, (stored, _metadata, parent) in list(cps.items()):
                    cps[cid] = (stored, ("msgpack", b"\xc1"), parent)
        elif what == "write":
            for key, bucket in saver.writes.items():
                if key[0] == thread_id:
                    for k, (task, channel, _value, path) in list(bucket.items()):
                        bucket[k] = (task, channel, ("msgpack", b"\xc1"), path)
        return
    sql = kit.raw_sql
    if what == "blob":
        sql(
            "UPDATE threadloom_blobs SET type = 'msgpack', blob = ? WHERE thread_id = ?",
            (b"\xc1\xc1garbage", thread_id),
        )
    elif what == "pickle":
        sql(
            "UPDATE threadloom_blobs SET type = 'pickle', blob = ? WHERE thread_id = ?",
            (evil, thread_id),
        )
    elif what == "checkpoint":
        sql(
            "UPDATE threadloom_checkpoints SET checkpoint = ? WHERE thread_id = ?",
            (b"\xc1", thread_id),
        )
    elif what == "metadata":
        sql("UPDATE threadloom_checkpoints SET metadata = '{not json' WHERE thread_id = ?",
            (thread_id,))  # fmt: skip
    elif what == "write":
        sql("UPDATE threadloom_writes SET blob = ? WHERE thread_id = ?", (b"\xc1", thread_id))


async def test_corrupted_rows_raise_clear_errors(saver_kit: SaverKit, tmp_path: Any) -> None:
    api = saver_kit.api
    kinds = ["blob", "pickle", "checkpoint", "write"]
    if saver_kit.kind.startswith("sqlite"):
        kinds.append("metadata")  # Postgres jsonb cannot hold bad JSON
    for what in kinds:
        t = Thread(api, tid(f"damaged-{what}"))
        await t.put(items=["a"], x=1)
        await t.put(items=["a", "b"])
        await api.put_writes(t.config, [("w", 1)], "task")
        marker = str(tmp_path / f"pwned-{what}")
        _damage(saver_kit, t.thread_id, what, marker)
        # The SQL savers serve values they wrote from their process cache: damage done
        # behind their back shows on the next read from storage.
        getattr(saver_kit.saver, "clear_cache", lambda: None)()
        with pytest.raises(ValueError, match=re.escape(repr(t.thread_id))) as info:
            await api.get_tuple(cfg(t.thread_id))
        assert "checkpoint" in str(info.value), str(info.value)
        with pytest.raises(ValueError, match=re.escape(repr(t.thread_id))):
            await api.list(cfg(t.thread_id))
        assert not os.path.exists(marker), "stored bytes ran code"
        await api.delete_thread(t.thread_id)  # a damaged thread can still be removed
        assert await api.get_tuple(cfg(t.thread_id)) is None


# -- housekeeping -----------------------------------------------------------------------------


async def test_delete_thread(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    a, b = Thread(api, tid("a")), Thread(api, tid("b"))
    a_child = Thread(api, a.thread_id, ns="child:1")
    for th in (a, b, a_child):
        await th.put(x=[1])
        await th.put(x=[1, 2])
        await api.put_writes(th.config, [("w", 1)], "task")
    await api.delete_thread(a.thread_id)
    assert await api.get_tuple(cfg(a.thread_id)) is None
    assert await api.get_tuple(cfg(a.thread_id, ns="child:1")) is None
    assert await api.list(cfg(a.thread_id)) == []
    got = await api.get_tuple(cfg(b.thread_id))
    assert got is not None and got.checkpoint["channel_values"] == {"x": [1, 2]}
    assert got.pending_writes == [("task", "w", 1)]
    await api.delete_thread("never-existed")
    # the deleted thread id can be reused from scratch
    again = Thread(api, a.thread_id)
    await again.put(source="input", x=["new"])
    await again.put(x=["new", "more"])
    got = await api.get_tuple(cfg(a.thread_id))
    assert got is not None and got.checkpoint["channel_values"] == {"x": ["new", "more"]}


async def test_list_threads(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    names = [tid(f"lt{i}") for i in range(3)]
    threads = [Thread(api, n) for n in names]
    for th in threads:
        await th.put(x=1)
    await threads[0].put(x=2)  # most recent activity
    assert await api.list_threads() == [names[0], names[2], names[1]]
    assert await api.list_threads(limit=2) == [names[0], names[2]]
    await api.delete_thread(names[2])
    assert await api.list_threads() == [names[0], names[1]]


def _by_activity(tuples: list[CheckpointTuple]) -> list[str]:
    """What ``list_threads()`` must return, worked out from every stored checkpoint: by
    the newest ``ts`` of each thread, newest first, then by its newest checkpoint id
    (the largest, whichever checkpoint has the newest ``ts``), then by thread id."""
    newest: dict[str, tuple[float, str]] = {}
    for tup in tuples:
        thread_id = tup.config["configurable"]["thread_id"]
        at = dt.datetime.fromisoformat(tup.checkpoint["ts"]).timestamp()
        checkpoint_id = tup.checkpoint["id"]
        old_at, old_id = newest.get(thread_id, (at, checkpoint_id))
        newest[thread_id] = (max(at, old_at), max(checkpoint_id, old_id))
    by_id = sorted(newest)
    return sorted(by_id, key=lambda t: newest[t], reverse=True)  # stable: ties by id


async def test_list_threads_follows_every_change(saver_kit: SaverKit) -> None:
    """``list_threads`` (whole and in pages) and ``expire_paused`` agree with the stored
    checkpoints after puts in several namespaces, ties, prunes, deletes of runs, copies
    and deletes of threads."""
    api = saver_kit.api
    now = dt.datetime.now(dt.UTC)

    def at(hours: float) -> str:
        return (now - dt.timedelta(hours=hours)).isoformat()

    async def put(thread_id: str, ts: str, ns: str = "", run_id: str = "r") -> None:
        cp = make_cp({"x": 1}, {"x": "1"}, ts=ts)
        meta = {"source": "input", "run_id": run_id}
        await api.put(cfg(thread_id, ns=ns), cp, meta, {"x": "1"})

    async def check() -> list[str]:
        expected = _by_activity(await api.list(None))
        assert await api.list_threads() == expected
        for limit in (0, 1, 2, 3):
            assert await api.list_threads(limit=limit) == expected[:limit]
        return expected

    a, b, c, e = (tid(n) for n in ("a", "b", "c", "e"))
    await put(a, at(5))
    await put(b, at(5))  # the same newest ts as ``a``: the newer checkpoint id first
    await put(c, at(9))
    await put(c, at(1), ns="child:1")  # a namespace's checkpoint is the thread's newest
    await put(e, at(2))
    await put(e, at(30), run_id="late")  # the newest id, but not the newest ts
    assert (await check())[:2] == [c, e]
    assert await api.prune(e, 1) == 1  # keeps the newest id: e's newest ts is now 30 h ago
    assert (await check())[-1] == e
    await put(a, at(0.5), run_id="gone")
    assert (await check())[0] == a
    await api.delete_for_runs(["gone"])  # a's newest checkpoint goes again
    assert (await check())[0] == c
    copy = tid("a")
    await api.copy_thread(a, copy)  # the same newest ts and id as ``a``: by thread id
    order = await check()
    assert order.index(copy) - order.index(a) == (1 if a < copy else -1)
    await api.delete_thread(b)
    assert b not in await check()
    # a put refused by the conflict rule leaves the thread where it was
    async with api.lock_thread(e):  # (no parent while the thread has a head)
        stale = make_cp({"x": 2}, {"x": "2"}, ts=at(0))
        with pytest.raises(CheckpointConflictError):
            await api.put(cfg(e), stale, {"source": "loop"}, {"x": "2"})
    assert (await check())[-1] == e  # e's newest ts is still 30 h ago
    # expiry takes exactly the threads whose newest checkpoint is older than the cutoff
    assert await api.expire_paused(dt.timedelta(hours=4), now=now) == sorted([a, copy, e])
    assert await check() == [c]
    assert await api.prune(c, 0) == 2
    assert await check() == []


async def test_expire_paused_checks_each_thread_again(saver_kit: SaverKit) -> None:
    """A thread whose listing row is out of date (here made so by hand) is checked
    against its checkpoints before it is deleted, and the row is set right."""
    if saver_kit.raw_sql is None:
        pytest.skip("the memory saver keeps no listing rows")
    api = saver_kit.api
    now = dt.datetime.now(dt.UTC)
    fresh, old = tid("fresh"), tid("old")
    for thread_id, age in ((fresh, dt.timedelta(minutes=1)), (old, dt.timedelta(days=3))):
        cp = make_cp({"x": 1}, {"x": "1"}, ts=(now - age).isoformat())
        await api.put(cfg(thread_id), cp, {"source": "input"}, {"x": "1"})
    saver_kit.raw_sql("UPDATE threadloom_threads SET created_at = 0 WHERE thread_id = ?", (fresh,))
    assert await api.list_threads() == [old, fresh]
    assert await api.expire_paused(dt.timedelta(days=1), now=now) == [old]
    assert await api.get_tuple(cfg(fresh)) is not None
    assert await api.list_threads() == [fresh]


async def test_prune_keeps_newest_and_their_chains(saver_kit: SaverKit) -> None:
    api = saver_kit.api
    t = Thread(api, tid())
    child = Thread(api, t.thread_id, ns="child:1")
    other = Thread(api, tid("other"))
    msgs: list[Any] = []
    for i in range(30):
        msgs = [*msgs, HumanMessage(f"m{i} " * 20, id=str(i))]
        await t.put(messages=msgs, n=i)
        await api.put_writes(t.config, [("w", i)], "task")
        if i < 5:
            await child.put(c=[i])
    await other.put(messages=msgs)
    before = await api.stored_bytes(t.thread_id)
    other_before = await api.stored_bytes(other.thread_id)

    assert await api.prune(t.thread_id, 3) == 27 + 2
    kept = await api.list(cfg(t.thread_id, ns=""))
    assert len(kept) == 3
    for offset, tup in enumerate(kept):
        i = 29 - offset
        assert tup.checkpoint["channel_values"]["messages"] == msgs[: i + 1]
        assert tup.checkpoint["channel_values"]["n"] == i
        assert tup.pending_writes == [("task", "w", i)]
    assert len(await api.list(cfg(t.thread_id, ns="child:1"))) == 3
    after = await api.stored_bytes(t.thread_id)
    assert after < before
    assert await api.stored_bytes(other.thread_id) == other_before
    # the run goes on from the pruned head, appending to the kept chain
    msgs = [*msgs, HumanMessage("after prune", id="ap")]
    await t.put(messages=msgs)
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None and got.checkpoint["channel_values"]["messages"] == msgs
    assert await api.prune(t.thread_id, 3) == 1
    assert await api.prune(t.thread_id, 0) == 3 + 3
    assert await api.list(cfg(t.thread_id)) == []
    with pytest.raises(ValueError, match="keep_last"):
        await api.prune(t.thread_id, -1)


async def test_every_operation_is_the_savers_own(saver_kit: SaverKit) -> None:
    """Sync and async methods of the whole interface are defined by the saver's class,
    not inherited defaults (LangGraph's conformance spec detects capabilities so)."""
    kind = type(saver_kit.saver)
    for name in ("put", "put_writes", "get_tuple", "list", "delete_thread",
                 "delete_for_runs", "copy_thread", "prune"):  # fmt: skip
        for method in (name, "a" + name):
            assert getattr(kind, method) is not getattr(BaseCheckpointSaver, method), method


async def test_prune_threads_by_strategy(saver_kit: SaverKit) -> None:
    """prune(thread_ids, strategy=...): LangGraph's form (one call, several threads)."""
    api = saver_kit.api
    a, b, c = Thread(api, tid("a")), Thread(api, tid("b")), Thread(api, tid("c"))
    child = Thread(api, a.thread_id, ns="child:1")
    msgs: list[Any] = []
    for i in range(12):  # long lists: stored as delta chains
        msgs = [*msgs, HumanMessage(f"m{i}", id=str(i))]
        for t in (a, b, c):
            await t.put(messages=msgs)
        if i < 2:
            await child.put(n=i)
    await api.put_writes(a.config, [("w", 1)], "task")
    pruned = await api.prune_threads([a.thread_id, b.thread_id], strategy="keep_latest")
    assert pruned == 11 + 1 + 11
    for t in (a, b):
        [kept] = await api.list(cfg(t.thread_id, ns=""))
        assert kept.checkpoint["channel_values"]["messages"] == msgs
    [kept] = await api.list(cfg(a.thread_id, ns="child:1"))
    assert kept.checkpoint["channel_values"] == {"n": 1}
    got = await api.get_tuple(cfg(a.thread_id))
    assert got is not None and got.pending_writes == [("task", "w", 1)]
    assert len(await api.list(cfg(c.thread_id))) == 12  # not named: untouched
    assert await api.prune_threads([c.thread_id], strategy="delete") == 12
    assert await api.list(cfg(c.thread_id)) == []
    assert await api.prune_threads([], strategy="delete") == 0
    assert await api.prune_threads([tid("missing")]) == 0  # keep_latest by default
    with pytest.raises(ValueError, match="strategy"):
        await api.prune_threads([a.thread_id], strategy="keep_oldest")
    with pytest.raises(ValueError, match="not both"):
        await api.prune_threads([a.thread_id], keep_last=2, strategy="delete")


async def test_prune_drops_finished_subgraph_calls_with_their_parents(
    saver_kit: SaverKit,
) -> None:
    """A subgraph call's namespace (``node:task_id``) goes with the parent checkpoints it
    belongs to (metadata ``parents``); an interrupted call under the kept head, a
    persistent subgraph's namespace and checkpoints naming no parent stay."""
    api = saver_kit.api
    t = tid()
    roots = []
    parent = cfg(t)
    for step in range(3):
        parent = await api.put(parent, make_cp({}, {}), {"source": "loop", "step": step}, {})
        roots.append(parent["configurable"]["checkpoint_id"])

    async def child(ns: str, parent_id: str | None, n: int = 2) -> None:
        config = cfg(t, ns=ns)
        for step in range(n):
            metadata: dict[str, Any] = {"source": "loop", "step": step}
            if parent_id is not None:
                metadata["parents"] = {"": parent_id}
            config = await api.put(config, make_cp({}, {}), metadata, {})

    await child("call:finished", roots[0])
    await child("sub:interrupted", roots[2])
    await child("sub:interrupted|inner:finished", roots[0])
    await child("memory", roots[0])
    await child("child:1", None)
    assert await api.prune_threads([t]) == 2 + 2 + 1 + 2 + 1 + 1
    everything = {"configurable": {"thread_id": t}}  # all namespaces
    left = sorted(tup.config["configurable"]["checkpoint_ns"] for tup in await api.list(everything))
    assert left == ["", "child:1", "memory", "sub:interrupted"]


async def test_delete_for_runs(saver_kit: SaverKit) -> None:
    """The checkpoints (and writes) of the named runs go; the rest reads back whole, even
    when its values were stored as deltas on a deleted run's rows."""
    api = saver_kit.api
    t = Thread(api, tid())
    child = Thread(api, t.thread_id, ns="child:1")
    other = Thread(api, tid("other"))
    msgs: list[Any] = []
    history = []
    for i in range(24):
        run = "run-1" if i < 12 else "run-2"
        msgs = [*msgs, HumanMessage(f"m{i} " * 5, id=str(i))]
        await t.put(run_id=run, messages=msgs, n=i)
        history.append(list(msgs))
        await api.put_writes(t.config, [("w", i)], "task")
    await child.put(run_id="run-1", x=1)
    await other.put(run_id="run-1", x=2)
    await other.put(run_id="run-3", x=3)
    await api.delete_for_runs(["run-1", "nobody"])
    kept = await api.list(cfg(t.thread_id, ns=""))
    assert [tup.metadata["run_id"] for tup in kept] == ["run-2"] * 12
    for offset, tup in enumerate(kept):
        i = 23 - offset
        assert tup.checkpoint["channel_values"] == {"messages": history[i], "n": i}
        assert tup.pending_writes == [("task", "w", i)]
    getattr(saver_kit.saver, "clear_cache", lambda: None)()
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None and got.checkpoint["channel_values"]["messages"] == msgs
    assert await api.list(cfg(t.thread_id, ns="child:1")) == []
    [left] = await api.list(cfg(other.thread_id))
    assert left.metadata["run_id"] == "run-3"
    assert left.checkpoint["channel_values"] == {"x": 3}
    await api.delete_for_runs([])
    # the thread goes on from its (kept) head
    msgs = [*msgs, HumanMessage("after", id="after")]
    await t.put(run_id="run-4", messages=msgs)
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None and got.checkpoint["channel_values"]["messages"] == msgs


async def test_copy_thread(saver_kit: SaverKit) -> None:
    """Every checkpoint, namespace, value and write, under the same ids; the copy and
    the source then go their own ways."""
    api = saver_kit.api
    src = Thread(api, tid("src"))
    child = Thread(api, src.thread_id, ns="child:1")
    msgs: list[Any] = []
    for i in range(12):
        msgs = [*msgs, AIMessage(f"m{i}", id=str(i))]
        await src.put(messages=msgs)
    await child.put(x=1)
    await api.put_writes(src.config, [("w", "v"), (INTERRUPT_CHANNEL, {"why": 1})], "task")
    dst = tid("dst")
    await api.copy_thread(src.thread_id, dst)
    for ns in ("", "child:1"):
        a = await api.list(cfg(src.thread_id, ns=ns))
        b = await api.list(cfg(dst, ns=ns))
        assert ids(a) == ids(b) and len(a) == (12 if ns == "" else 1)
        for x, y in zip(a, b, strict=True):
            assert y.config["configurable"]["thread_id"] == dst
            assert x.checkpoint == y.checkpoint and x.metadata == y.metadata
            assert x.pending_writes == y.pending_writes
            if x.parent_config is None:
                assert y.parent_config is None
            else:
                parent = x.parent_config["configurable"]["checkpoint_id"]
                assert y.parent_config == cfg(dst, parent, ns=ns)
    # both go on independently
    copy = Thread(api, dst)
    copy.config = cfg(dst, src.checkpoint_id)
    copy.values, copy.versions = dict(src.values), dict(src.versions)
    await copy.put(messages=[*msgs, AIMessage("dst", id="d")])
    await src.put(messages=[*msgs, AIMessage("src", id="s")])
    getattr(saver_kit.saver, "clear_cache", lambda: None)()
    got_dst = await api.get_tuple(cfg(dst))
    got_src = await api.get_tuple(cfg(src.thread_id))
    assert got_dst is not None and got_dst.checkpoint["channel_values"]["messages"][-1].id == "d"
    assert got_src is not None and got_src.checkpoint["channel_values"]["messages"][-1].id == "s"
    await api.delete_thread(src.thread_id)
    got_dst = await api.get_tuple(cfg(dst))
    assert got_dst is not None and len(got_dst.checkpoint["channel_values"]["messages"]) == 13
    # a target that has checkpoints is refused; a missing source copies nothing
    again = tid("again")
    await api.copy_thread(dst, again)
    with pytest.raises(ValueError, match="already has"):
        await api.copy_thread(dst, again)
    assert len(await api.list(cfg(again, ns=""))) == 13
    empty = tid("empty")
    await api.copy_thread(tid("missing"), empty)
    assert await api.list(cfg(empty)) == []


async def test_expire_paused(saver_kit: SaverKit, monkeypatch: pytest.MonkeyPatch) -> None:
    api = saver_kit.api
    if saver_kit.is_sql:  # small batches, so several transactions are needed
        monkeypatch.setattr("threadloom.checkpoint._sql.housekeeping.EXPIRE_BATCH", 2)
    now = dt.datetime.now(dt.UTC)
    fresh = tid("fresh")
    old = sorted(tid(f"old{i}") for i in range(5))
    ages = [(t, dt.timedelta(days=3)) for t in old] + [(fresh, dt.timedelta(minutes=1))]
    for thread_id, age in ages:
        cp = make_cp({"x": 1}, {"x": "1"}, ts=(now - age).isoformat())
        await api.put(cfg(thread_id), cp, {"source": "input"}, {"x": "1"})
    assert sorted(await api.expire_paused(dt.timedelta(days=1))) == old
    for thread_id in old:
        assert await api.get_tuple(cfg(thread_id)) is None
    assert await api.get_tuple(cfg(fresh)) is not None
    assert await api.expire_paused(dt.timedelta(days=1)) == []
    later = now + dt.timedelta(hours=2)
    assert await api.expire_paused(dt.timedelta(hours=1), now=later) == [fresh]
    assert await api.list(None) == []


# -- API styles -----------------------------------------------------------------------------


async def test_other_api_style(saver_kit: SaverKit) -> None:
    """Sync savers through their async twins; async savers through their sync methods."""
    saver = saver_kit.saver
    if not saver_kit.api.use_async:
        api = Api(saver, use_async=True)
        await _core_scenario(api)
        return
    sync_api = Api(saver, use_async=False)

    def in_thread() -> None:
        asyncio.run(_core_scenario(sync_api))

    await asyncio.to_thread(in_thread)
    if saver_kit.kind == "postgres_async":  # on the loop's own thread it must refuse
        with pytest.raises(RuntimeError, match="event loop"):
            saver.get_tuple(cfg("x"))


async def _core_scenario(api: Api) -> None:
    t = Thread(api, tid())
    await t.put(source="input", items=["a"])
    await t.put(items=["a", "b"])
    await api.put_writes(t.config, [("w", 1)], "task")
    got = await api.get_tuple(cfg(t.thread_id))
    assert got is not None
    assert got.checkpoint["channel_values"] == {"items": ["a", "b"]}
    assert got.pending_writes == [("task", "w", 1)]
    assert len(await api.list(cfg(t.thread_id))) == 2
    assert len(await api.list(cfg(t.thread_id), filter={"source": "input"})) == 1
    await api.delete_thread(t.thread_id)
    assert await api.get_tuple(cfg(t.thread_id)) is None
