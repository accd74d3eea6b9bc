"""``InMemorySaver`` specifics beyond the shared conformance suite: how it lays out deltas,
what it copies, how damaged entries are named, and a graph running on it."""

from __future__ import annotations

import asyncio
import datetime as dt
import operator
import re
from typing import Annotated, Any, TypedDict

import pytest
from checkpoint_conformance import Api, Thread, cfg, make_cp
from langchain_core.messages import AIMessage, HumanMessage

from threadloom.checkpoint._values.delta import SMALL_LIST
from threadloom.checkpoint.memory import InMemorySaver, _Row
from threadloom.checkpoint.serde.base import CorruptCheckpointError
from threadloom.errors import CheckpointConflictError
from threadloom.graph import END, START, StateGraph, add_messages


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def grow(saver: InMemorySaver, thread_id: str, n: int, ns: str = "") -> Thread:
    """``n`` loop checkpoints whose ``items`` list gains one item each."""
    t = Thread(Api(saver, use_async=False), thread_id, ns=ns)
    for i in range(n):
        run(t.put(source="input" if i == 0 else "loop", items=[f"i{j}" for j in range(i + 1)]))
    return t


def delta_rows(saver: InMemorySaver, thread_id: str) -> list[Any]:
    return [row for key, row in saver.blobs.items() if key[0] == thread_id and len(row) > 2]


# -- storage layout ---------------------------------------------------------------------------


def test_long_lists_are_stored_as_deltas_and_read_back_whole() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 40)
    deltas = delta_rows(saver, "t")
    # whole while short, whole at its first long write (not planned), whole once more with
    # fingerprints (the chain's root), then one delta per write
    assert len(deltas) == 40 - (SMALL_LIST + 2)
    assert all(type(r) is _Row and r.base_version for r in deltas)
    listed = list(saver.list(cfg("t")))
    assert [len(x.checkpoint["channel_values"]["items"]) for x in listed] == list(range(40, 0, -1))
    got = saver.get_tuple(t.config)
    assert got is not None and got.checkpoint["channel_values"]["items"][-1] == "i39"


def test_short_lists_are_stored_whole() -> None:
    saver = InMemorySaver()
    grow(saver, "t", SMALL_LIST)
    assert delta_rows(saver, "t") == []


def test_a_long_list_written_once_is_not_fingerprinted() -> None:
    saver = InMemorySaver()
    fingerprinted: list[Any] = []
    plain = saver._delta.print_of
    saver._delta.print_of = lambda items, *more: fingerprinted.extend(items) or plain(items, *more)
    t = Thread(Api(saver, use_async=False), "t")
    run(t.put(source="input", sends=list(range(100))))  # e.g. a 100-way Send fan-out
    assert saver.get_tuple(cfg("t")) is not None  # a head read does not fingerprint it
    run(t.put(x=1))
    assert saver.get_tuple(cfg("t")) is not None
    assert fingerprinted == [] and delta_rows(saver, "t") == []
    run(t.put(sends=list(range(101))))  # it is long again: from now on it is planned
    run(t.put(sends=list(range(102))))
    # the first long write digests its newest items (the tail; the rest is printed from
    # the row it stored whole); the next compares those by identity, checks the tail
    # again and prints the new tail, which ends with the item it appends, and the item
    # that left the tail
    tail = saver._delta.tail_items
    assert len(fingerprinted) == tail + tail + 1 + tail and len(delta_rows(saver, "t")) == 1


def test_a_head_read_lets_a_forgetful_cache_append_again() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 20)
    before = len(delta_rows(saver, "t"))
    saver._delta.clear()  # as if evicted (the cache keeps 256 heads)
    saver.get_tuple(cfg("t"))  # the engine reads the head before it continues
    run(t.put(items=[*t.values["items"], "more"]))
    assert len(delta_rows(saver, "t")) == before + 1


def test_a_delta_whose_base_is_gone_is_stored_whole() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 20)
    base = next(k for k in saver.blobs if k[2] == "items" and k[3] == t.versions["items"])
    del saver.blobs[base]  # the head's value disappeared behind the cache's back
    run(t.put(source="update", items=[*t.values["items"], "after"]))
    assert len(saver.blobs[("t", "", "items", t.versions["items"])]) == 2  # whole
    got = saver.get_tuple(cfg("t"))
    assert got is not None and got.checkpoint["channel_values"]["items"][-1] == "after"


def test_prune_keeps_the_chains_of_kept_checkpoints() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 30)
    grow(saver, "other", 30)
    other_bytes = saver.stored_bytes("other")
    assert saver.prune("t", 2) == 28
    kept = list(saver.list(cfg("t")))
    assert [len(x.checkpoint["channel_values"]["items"]) for x in kept] == [30, 29]
    assert saver.stored_bytes("other") == other_bytes
    assert saver.stored_bytes() == saver.stored_bytes("t") + other_bytes
    run(t.put(items=[*t.values["items"], "next"]))  # continues from the pruned head
    assert saver.prune("t", 0) == 3
    assert "t" not in saver.storage and not [k for k in saver.blobs if k[0] == "t"]
    assert saver.list_threads() == ["other"]


# -- copies ---------------------------------------------------------------------------------


def test_reads_are_copies_and_put_takes_the_dict() -> None:
    saver = InMemorySaver()
    cp = make_cp({"items": ["a"], "d": {"k": 1}}, {"items": "1", "d": "1"})
    c = saver.put(cfg("t"), cp, {"source": "input", "step": -1}, {"items": "1", "d": "1"})
    got = saver.get_tuple(c)
    assert got is not None
    got.checkpoint["channel_values"]["items"].append("mine")
    got.checkpoint["channel_values"]["d"]["k"] = 2
    got.checkpoint["channel_versions"]["items"] = "99"
    got.checkpoint["versions_seen"]["x"] = {}
    got.metadata["step"] = 7
    again = saver.get_tuple(c)
    assert again is not None
    assert again.checkpoint["channel_values"] == {"items": ["a"], "d": {"k": 1}}
    assert again.checkpoint["channel_versions"] == {"items": "1", "d": "1"}
    assert again.checkpoint["versions_seen"] == {} and again.metadata["step"] == -1
    stored = saver.storage["t"][""][cp["id"]][0]
    assert stored["channel_versions"] is cp["channel_versions"]  # kept, not copied


def test_listed_checkpoints_sharing_a_version_get_their_own_lists() -> None:
    saver = InMemorySaver()
    t = Thread(Api(saver, use_async=False), "t")
    run(t.put(source="input", items=[1, 2]))
    run(t.put(x=1))  # items unchanged: same version in both checkpoints
    a, b = list(saver.list(cfg("t")))
    assert a.checkpoint["channel_values"]["items"] is not b.checkpoint["channel_values"]["items"]


# -- rules shared with the SQL savers --------------------------------------------------------


def test_conflict_rule_details() -> None:
    saver = InMemorySaver()
    with saver.lock_thread("t"):  # the rule holds within a run
        with pytest.raises(CheckpointConflictError, match="moved on"):  # parent, empty thread
            saver.put(cfg("t", "gone"), make_cp({}, {}), {"source": "loop"}, {})
        c0 = saver.put(cfg("t", ""), make_cp({}, {}), {"source": "loop"}, {})  # "" = no parent
        head = make_cp({}, {})
        saver.put(c0, head, {"source": "loop"}, {})
        saver.put(c0, head, {"source": "loop"}, {})  # the same head again
        with pytest.raises(CheckpointConflictError, match=re.escape(repr(head["id"]))):
            saver.put(c0, make_cp({}, {}), {"source": "loop"}, {})
    assert len(list(saver.list(cfg("t")))) == 2


def test_list_orders_across_threads_like_the_sql_savers() -> None:
    saver = InMemorySaver()
    made = []
    for i in range(3):
        for thread_id in ("b", "a"):
            c = saver.put(cfg(thread_id, ns="n" if i % 2 else ""), make_cp({}, {}),
                          {"source": "update", "step": i}, {})  # fmt: skip
            made.append(c["configurable"]["checkpoint_id"])
    every = [x.config["configurable"]["checkpoint_id"] for x in saver.list(None)]
    assert every == made[::-1]
    assert len(list(saver.list(None, limit=4))) == 4
    odd = list(saver.list(None, filter={"step": 1}, limit=1))
    assert [x.config["configurable"]["checkpoint_id"] for x in odd] == [made[3]]


def test_metadata_filters_compare_like_json() -> None:
    saver = InMemorySaver()
    saver.put(cfg("t"), make_cp({}, {}), {"source": "input", "flag": True, "n": 1}, {})
    assert len(list(saver.list(None, filter={"flag": True}))) == 1
    assert list(saver.list(None, filter={"flag": 1})) == []
    assert list(saver.list(None, filter={"n": True})) == []
    assert len(list(saver.list(None, filter={"n": 1.0}))) == 1
    assert list(saver.list(None, filter={"missing": None})) == []
    with pytest.raises(ValueError, match="filter key"):
        saver.list(None, filter={"a.b": 1})  # raised on the call, before iterating


def test_housekeeping_twins_and_naive_now() -> None:
    saver = InMemorySaver()
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).isoformat()
    saver.put(cfg("old"), make_cp({}, {}, ts=old), {"source": "input"}, {})
    grow(saver, "new", 3)

    async def twins() -> None:
        assert await saver.alist_threads() == ["new", "old"]
        assert await saver.alist_threads(limit=1) == ["new"]
        assert await saver.astored_bytes("new") > 0
        assert await saver.aprune("new", 1) == 2
        naive = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # taken as UTC
        assert await saver.aexpire_paused(dt.timedelta(days=1), now=naive) == ["old"]

    run(twins())
    assert saver.list_threads() == ["new"]


# -- damaged entries ------------------------------------------------------------------------


def test_damaged_pending_write_names_thread_and_checkpoint() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 2)
    saver.put_writes(t.config, [("w", 1)], "task")
    bucket = saver.writes[("t", "", t.checkpoint_id)]
    for key, (task_id, channel, _value, path) in list(bucket.items()):
        bucket[key] = (task_id, channel, ("msgpack", b"\xc1"), path)
    with pytest.raises(CorruptCheckpointError, match=re.escape(repr(t.checkpoint_id))) as info:
        saver.get_tuple(cfg("t"))
    assert "'t'" in str(info.value) and "pending write of task 'task'" in str(info.value)


def test_damaged_chain_rows_name_the_checkpoint_that_needs_them() -> None:
    saver = InMemorySaver()
    t = grow(saver, "t", 20)
    middle = sorted(k for k, r in saver.blobs.items() if len(r) > 2)[3]
    row = saver.blobs[middle]
    saver.blobs[middle] = row._replace(blob=b"\xc1")
    with pytest.raises(CorruptCheckpointError, match="through the list delta chain") as info:
        saver.get_tuple(cfg("t"))
    assert repr(t.checkpoint_id) in str(info.value)
    del saver.blobs[middle]
    with pytest.raises(CorruptCheckpointError, match="cannot be rebuilt"):
        saver.get_tuple(cfg("t"))
    saver.delete_thread("t")
    assert saver.get_tuple(cfg("t")) is None and not saver.blobs


# -- on a graph -------------------------------------------------------------------------------


class ChatState(TypedDict):
    messages: Annotated[list, add_messages]
    log: Annotated[list, operator.add]
    turn: int


def _reply(state: ChatState) -> dict[str, Any]:
    turn = state.get("turn", 0)
    return {"messages": [AIMessage(f"reply {turn}")], "log": [turn], "turn": turn + 1}


def test_a_graph_on_the_memory_saver_stores_deltas() -> None:
    builder = StateGraph(ChatState)
    builder.add_node("reply", _reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "chat"}}
    for i in range(25):
        graph.invoke({"messages": [HumanMessage(f"hi {i}")]}, config)
    state = graph.get_state(config)
    assert [m.content for m in state.values["messages"]][-2:] == ["hi 24", "reply 24"]
    assert state.values["log"] == list(range(25))
    assert len(delta_rows(saver, "chat")) > 30
    history = list(graph.get_state_history(config, limit=3))
    assert [len(s.values["messages"]) for s in history] == [50, 49, 48]
    # nodes that mutate what they read cannot change stored history
    state.values["messages"][0].content = "changed"
    assert graph.get_state(config).values["messages"][0].content == "hi 0"


def test_a_channel_that_grew_elsewhere_is_planned_from_its_first_long_write() -> None:
    """Once a list channel grew by deltas in one thread, a new thread plans it from its
    first long write: a thread started with a long input stores it whole once, then
    appends, instead of storing it whole twice."""
    saver = InMemorySaver()
    grow(saver, "a", SMALL_LIST + 4)
    assert len(delta_rows(saver, "a")) == 4 - 2  # whole, whole with prints, deltas
    grow(saver, "b", SMALL_LIST + 4)
    assert len(delta_rows(saver, "b")) == 4 - 1  # whole with prints, deltas
    got = saver.get_tuple(cfg("b"))
    assert got is not None
    assert got.checkpoint["channel_values"]["items"] == [f"i{j}" for j in range(SMALL_LIST + 4)]
