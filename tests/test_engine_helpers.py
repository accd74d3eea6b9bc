"""Small engine helpers: subgraph detection, the futures waiter, task status from writes."""

from __future__ import annotations

import concurrent.futures
import functools
import operator
import threading
import weakref
from typing import Annotated, Any

from typing_extensions import TypedDict

from threadloom.engine.futures import FuturesDict, should_stop_others
from threadloom.engine.subgraphs import function_references
from threadloom.engine.task_status import task_statuses
from threadloom.graph import START, StateGraph
from threadloom.types import Interrupt


class S(TypedDict):
    log: Annotated[list, operator.add]


def _leaf(name: str) -> Any:
    builder = StateGraph(S)
    builder.add_node("x", lambda s: {"log": [name]})
    builder.add_edge(START, "x")
    graph = builder.compile()
    graph.name = name
    return graph


class _Box:
    def __init__(self, payload: Any) -> None:
        self.payload = payload


GLOBAL_CHAIN = _Box(_Box(_leaf("chain")))


def _detected(fn: Any) -> list[str]:
    builder = StateGraph(S)
    builder.add_node("n", fn)
    builder.add_edge(START, "n")
    return [g.name for g in builder.compile().nodes["n"].subgraphs]


def test_subgraphs_reached_by_closure_global_chain_and_nested_closure() -> None:
    sub = _leaf("closure")
    holder = _Box(_leaf("nested"))

    def by_closure(state: S) -> Any:
        return sub.invoke(state)

    def by_chain(state: S) -> Any:
        return GLOBAL_CHAIN.payload.payload.invoke(state)

    def by_nested(state: S) -> Any:
        def inner() -> Any:
            return holder.payload.invoke(state)

        return inner()

    def nothing(state: S) -> Any:
        local = _Box("x")
        return {"log": [GLOBAL_CHAIN.payload, local.payload]}  # never .payload.payload

    assert _detected(by_closure) == ["closure"]
    assert _detected(by_chain) == ["chain"]
    assert _detected(by_nested) == ["nested"]
    assert _detected(nothing) == []
    assert _detected(sub) == ["closure"]
    assert function_references(functools.partial(by_closure)) == []
    assert function_references(len) == []


def test_futures_dict_wakes_on_unhandled_failure_or_when_all_done() -> None:
    def on_done(task: Any, exc: BaseException | None) -> None:
        return None

    handled: set[int] = set()
    futures = FuturesDict(
        event=threading.Event(), callback=weakref.ref(on_done),
        should_stop=functools.partial(should_stop_others, handled_exception_ids=handled),
        future_type=concurrent.futures.Future,
    )
    a, b, c = (concurrent.futures.Future() for _ in range(3))
    for fut in (a, b, c):
        futures[fut] = object()
    a.set_result(None)
    assert not futures.event.is_set()
    exc = ValueError("handled")
    handled.add(id(exc))
    b.set_exception(exc)
    assert not futures.event.is_set()
    c.set_exception(RuntimeError("boom"))
    assert futures.event.is_set()


def test_task_statuses_from_pending_writes() -> None:
    asked = Interrupt("q", id="i")
    statuses = task_statuses([
        ("done", "__interrupt__", (asked,)), ("done", "__resume__", ["a"]), ("done", "log", [1]),
        ("waiting", "__interrupt__", (asked,)),
        ("failed", "__error__", "boom"),
    ])
    assert statuses["done"].finished and statuses["done"].pending_interrupts == ()
    assert statuses["done"].output == (("log", [1]),)
    assert statuses["waiting"].pending_interrupts == (asked,)
    assert not statuses["failed"].finished and statuses["failed"].error == "boom"


def test_message_graph_is_deprecated_and_merges_messages() -> None:
    import pytest
    from langchain_core.messages import AIMessage, HumanMessage

    from threadloom.graph.message import MessageGraph
    from threadloom.warnings import LangGraphDeprecatedSinceV10

    with pytest.warns(LangGraphDeprecatedSinceV10, match="MessageGraph is deprecated"):
        graph = MessageGraph()
    graph.add_node("reply", lambda messages: [AIMessage("hi", id="2")])
    graph.add_edge(START, "reply")
    result = graph.compile().invoke([HumanMessage("hello", id="1")])
    assert [m.content for m in result] == ["hello", "hi"]


def test_saver_overriding_put_writes_without_task_path() -> None:
    from threadloom.checkpoint.memory import MemorySaver

    seen: list[str] = []

    class OldSaver(MemorySaver):
        def put_writes(self, config, writes, task_id):  # type: ignore[no-untyped-def,override]
            seen.append(task_id)
            return super().put_writes(config, writes, task_id)

    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")  # two tasks in a step: their writes are saved as pending
    graph = builder.compile(checkpointer=OldSaver())
    assert graph.invoke({"log": []}, {"configurable": {"thread_id": "t"}}) == {"log": ["a", "b"]}
    assert len(seen) == 3  # the input task's writes, then a's and b's


def test_savers_with_the_current_signature_get_the_task_path() -> None:
    """A saver whose put_writes / aput_writes takes ``task_path`` is given each task's path
    (the older three-argument signature above is called without it)."""
    import asyncio

    from threadloom.checkpoint.memory import MemorySaver

    paths: list[str] = []

    class PathSaver(MemorySaver):
        def put_writes(self, config: Any, writes: Any, task_id: str,
                       task_path: str = "") -> None:
            paths.append(task_path)
            return super().put_writes(config, writes, task_id, task_path)

        async def aput_writes(self, config: Any, writes: Any, task_id: str,
                              task_path: str = "") -> None:
            paths.append(task_path)
            return super().put_writes(config, writes, task_id, task_path)

    builder = StateGraph(S)
    builder.add_node("a", lambda s: {"log": ["a"]})
    builder.add_node("b", lambda s: {"log": ["b"]})
    builder.add_edge(START, "a")
    builder.add_edge(START, "b")
    graph = builder.compile(checkpointer=PathSaver())
    graph.invoke({"log": []}, {"configurable": {"thread_id": "t"}})
    assert sorted(paths) == ["~__pregel_pull, __start__", "~__pregel_pull, a",
                            "~__pregel_pull, b"]
    paths.clear()
    asyncio.run(graph.ainvoke({"log": []}, {"configurable": {"thread_id": "u"}}))
    assert sorted(paths) == ["~__pregel_pull, __start__", "~__pregel_pull, a",
                            "~__pregel_pull, b"]


def test_checkpoint_id_bytes_reads_what_uuid_reads() -> None:
    import uuid

    from threadloom.checkpoint.base import create_checkpoint_id
    from threadloom.engine.task import checkpoint_id_bytes

    cid = create_checkpoint_id()
    for form in (cid, cid.upper(), cid.replace("-", ""), "{" + cid + "}", "urn:uuid:" + cid):
        assert checkpoint_id_bytes(form) == uuid.UUID(cid).bytes
    # an id that is no UUID contributes its text (32 characters that are not all hex too)
    assert checkpoint_id_bytes("not-a-uuid") == b"not-a-uuid"
    assert checkpoint_id_bytes("g" * 32) == b"g" * 32
    assert checkpoint_id_bytes("ab cd" + "0" * 27) == ("ab cd" + "0" * 27).encode()
