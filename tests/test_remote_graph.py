"""RemoteGraph: a graph deployed on an Agent Server, used like a local graph.

There is no Agent Server in this repository yet, so these tests drive ``RemoteGraph``
with small in-process fakes of the ``langgraph-sdk`` client objects (``runs.stream``
returning scripted server events, ``threads.get_state`` returning a ``ThreadState``
body): they check the mapping between the server's payloads and threadloom's types,
not HTTP. The SDK itself is not needed (``RemoteGraph`` imports it only for ``url=``).
"""

from __future__ import annotations

import sys
from collections import namedtuple
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessageChunk

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.errors import GraphInterrupt, RemoteException
from threadloom.graph import END, START, StateGraph
from threadloom.pregel.protocol import StreamProtocol
from threadloom.pregel.remote import RemoteGraph
from threadloom.types import Command, Interrupt, PregelTask, Send, StateSnapshot

# the SDK's StreamPart shape (event, data, id)
Part = namedtuple("Part", "event data id", defaults=(None,))

IID = "a" * 32


class FakeRuns:
    """``client.runs``: records each run request and answers with scripted events."""

    def __init__(self, script: Any) -> None:
        self.script = script
        self.calls: list[dict[str, Any]] = []

    def stream(self, **request: Any) -> list[Part]:
        self.calls.append(request)
        return list(self.script(request))


class FakeAsyncRuns(FakeRuns):
    def stream(self, **request: Any) -> Any:
        parts = super().stream(**request)

        async def gen() -> Any:
            for part in parts:
                yield part

        return gen()


class FakeClient:
    def __init__(self, script: Any, *, is_async: bool = False) -> None:
        self.runs = FakeAsyncRuns(script) if is_async else FakeRuns(script)


def pausing_agent(request: dict[str, Any]) -> list[Part]:
    """A deployed graph that asks a question, then answers with the resume value."""
    if request["command"] is None:
        return [
            Part("metadata", {"run_id": "r1", "attempt": 1}),
            Part("values", {"text": "draft"}),
            Part("updates|inner:1", {"inner": {"text": "draft"}}),
            Part("updates", {"__interrupt__": [{"value": "approve?", "id": IID}]}),
        ]
    answer = request["command"]["resume"]
    return [
        Part("values", {"text": f"sent ({answer})"}),
        Part("updates", {"send": {"text": f"sent ({answer})"}}),
    ]


class S(TypedDict):
    text: str


def parent_with(remote: RemoteGraph) -> Any:
    return (
        StateGraph(S)
        .add_node("remote", remote)
        .add_edge(START, "remote")
        .add_edge("remote", END)
        .compile(checkpointer=InMemorySaver())
    )


# -- stream / invoke mapping --------------------------------------------------------------


def test_stream_modes_and_shapes():
    def script(request):
        return [
            Part("metadata", {"run_id": "r"}),
            Part("values", {"n": 1}),
            Part("updates", {"node": {"n": 1}}),
            Part("messages", [{"type": "AIMessageChunk", "content": "hi"}, {"step": 1}]),
            Part("updates|sub:1", {"inner": {"n": 2}}),
        ]

    client = FakeClient(script)
    remote = RemoteGraph("agent", sync_client=client)
    config = {"configurable": {"thread_id": "t"}}

    assert list(remote.stream({"n": 0}, config)) == [{"node": {"n": 1}}]
    request = client.runs.calls[-1]
    assert request["stream_mode"] == ["updates"]
    assert request["stream_subgraphs"] is False
    assert request["thread_id"] == "t" and request["config"] == {"configurable": {}}

    assert list(remote.stream({"n": 0}, config, stream_mode="messages")) == [
        ({"type": "AIMessageChunk", "content": "hi"}, {"step": 1})
    ]
    # "messages" is the server's "messages-tuple"; updates are always asked for (pauses)
    assert client.runs.calls[-1]["stream_mode"] == ["messages-tuple", "updates"]

    parts = list(remote.stream({"n": 0}, config, stream_mode=["values", "updates"]))
    assert [(p.event, p.data) for p in parts] == [
        ("values", {"n": 1}),
        ("updates", {"node": {"n": 1}}),
    ]
    assert list(remote.stream({"n": 0}, config, subgraphs=True)) == [
        ((), {"node": {"n": 1}}),
        (("sub:1",), {"inner": {"n": 2}}),
    ]
    assert remote.invoke({"n": 0}, config) == {"n": 1}


def test_command_input_is_sent_as_command():
    client = FakeClient(lambda request: [Part("values", {"done": True})])
    remote = RemoteGraph("agent", sync_client=client)
    remote.invoke(Command(resume="yes"), {"configurable": {"thread_id": "t"}})
    assert client.runs.calls[-1]["command"] == {"resume": "yes"}
    assert client.runs.calls[-1]["input"] is None
    remote.invoke(Command(update={"a": 1}, goto=[Send("n", {"x": 1}), "m"]))
    assert client.runs.calls[-1]["command"] == {
        "update": {"a": 1},
        "goto": [{"node": "n", "input": {"x": 1}}, "m"],
    }
    assert client.runs.calls[-1]["thread_id"] is None  # stateless run


def test_error_event_raises_remote_exception():
    client = FakeClient(
        lambda request: [Part("error", {"error": "ValueError", "message": "bad input"})]
    )
    remote = RemoteGraph("agent", sync_client=client)
    with pytest.raises(RemoteException, match="ValueError: bad input"):
        remote.invoke({"x": 1})


def test_pause_raises_graph_interrupt_only_inside_a_parent():
    remote = RemoteGraph("agent", sync_client=FakeClient(pausing_agent))
    top = remote.invoke({"text": "x"}, {"configurable": {"thread_id": "t"}})
    assert top == {"text": "draft"}  # a root caller reads the pause from the thread
    with pytest.raises(GraphInterrupt) as exc:
        remote.invoke({"text": "x"}, {"configurable": {"thread_id": "t", "checkpoint_ns": "n:1"}})
    assert exc.value.interrupts == (Interrupt(value="approve?", id=IID),)


def test_sanitize_config_keeps_only_json():
    remote = RemoteGraph("agent")
    sanitized = remote._sanitize_config(
        {
            "tags": ["a", 1],
            "metadata": {"ok": (1, 2), "bad": object()},
            "callbacks": object(),
            "configurable": {
                "thread_id": "t",
                "user": "u",
                "checkpoint_id": "c",
                "__pregel_scratchpad": "x",
                "__threadloom_task": "task",
                "saver": object(),
                7: "int key",
            },
        }
    )
    assert sanitized == {
        "tags": ["a"],
        "metadata": {"ok": [1, 2]},
        "configurable": {"thread_id": "t", "user": "u"},
    }


def test_missing_client_and_missing_sdk_errors(monkeypatch):
    remote = RemoteGraph("agent")
    with pytest.raises(ValueError, match="no sync client"):
        remote.invoke({"x": 1})
    monkeypatch.setitem(sys.modules, "langgraph_sdk", None)
    with pytest.raises(ImportError, match=r"threadloom\[remote\]"):
        RemoteGraph("agent", url="http://localhost:2024")


def test_with_config_merges_a_copy():
    remote = RemoteGraph("agent", config={"configurable": {"a": 1}})
    other = remote.with_config({"configurable": {"b": 2}})
    assert other is not remote
    assert other.config == {"configurable": {"a": 1, "b": 2}}
    assert remote.config == {"configurable": {"a": 1}}


# -- state mapping ------------------------------------------------------------------------


class FakeThreads:
    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.calls: list[dict[str, Any]] = []

    def get_state(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return self.state

    def get_history(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(kwargs)
        return [self.state]

    def update_state(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        return {"checkpoint": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}}


def test_thread_state_maps_to_state_snapshot():
    checkpoint = {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c1"}
    state = {
        "values": {"text": "draft"},
        "next": ["review"],
        "checkpoint": checkpoint,
        "parent_checkpoint": None,
        "metadata": {"step": 1},
        "created_at": "2026-01-01T00:00:00+00:00",
        "tasks": [
            {
                "id": "task1",
                "name": "review",
                "path": ["__pregel_pull", "review"],
                "error": None,
                "interrupts": [{"value": "approve?", "id": IID}],
                "checkpoint": None,
                "state": None,
                "result": None,
            }
        ],
        "interrupts": [{"value": "approve?", "id": IID}],
    }
    client = type("C", (), {})()
    client.threads = FakeThreads(state)
    remote = RemoteGraph("agent", sync_client=client)
    config = {"configurable": {"thread_id": "t", "checkpoint_id": "c1"}}

    pending = Interrupt(value="approve?", id=IID)
    expected = StateSnapshot(
        values={"text": "draft"},
        next=("review",),
        config={"configurable": checkpoint},
        metadata={"step": 1},
        created_at="2026-01-01T00:00:00+00:00",
        parent_config=None,
        tasks=(PregelTask("task1", "review", ("__pregel_pull", "review"), None, (pending,)),),
        interrupts=(pending,),
    )
    assert remote.get_state(config) == expected
    assert client.threads.calls[-1]["checkpoint"] == {"checkpoint_id": "c1", "checkpoint_ns": ""}
    assert list(remote.get_state_history(config, limit=5)) == [expected]
    assert client.threads.calls[-1]["limit"] == 5
    assert remote.update_state(config, {"text": "edited"}, as_node="review") == {
        "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c2"}
    }
    with pytest.raises(ValueError, match="thread_id"):
        remote.get_state({})


# -- as a node of a StateGraph -------------------------------------------------------------


def test_remote_node_pauses_and_resumes_the_parent():
    client = FakeClient(pausing_agent)
    parent = parent_with(RemoteGraph("agent", sync_client=client))
    config = {"configurable": {"thread_id": "t1"}}

    chunks = list(parent.stream({"text": "x"}, config, stream_mode="updates", subgraphs=True))
    request = client.runs.calls[0]
    assert request["thread_id"] == "t1" and request["if_not_exists"] == "create"
    assert request["stream_subgraphs"] is True  # asked for on behalf of the parent stream
    assert "__threadloom_task" not in request["config"]["configurable"]
    # the remote run's events reach the parent's stream under the node's namespace
    namespaces = [ns for ns, _ in chunks]
    assert namespaces[0][0].startswith("remote:") and namespaces[0][1:] == ("inner:1",)
    assert chunks[-1] == ((), {"__interrupt__": (Interrupt(value="approve?", id=IID),)})

    state = parent.get_state(config)
    assert state.next == ("remote",)
    assert state.interrupts == (Interrupt(value="approve?", id=IID),)

    assert parent.invoke(Command(resume="yes"), config) == {"text": "sent (yes)"}
    assert client.runs.calls[1]["command"] == {"resume": "yes"}
    assert client.runs.calls[1]["input"] is None


async def test_remote_node_in_async_parent_streams_messages_as_objects():
    def script(request):
        return [
            Part("messages", [{"type": "AIMessageChunk", "content": "to", "id": "m1"}, {}]),
            Part("values", {"text": "done"}),
        ]

    client = FakeClient(script, is_async=True)
    parent = parent_with(RemoteGraph("agent", client=client))
    config = {"configurable": {"thread_id": "t2"}}
    seen = [
        chunk
        async for chunk in parent.astream(
            {"text": "x"}, config, stream_mode="messages", subgraphs=True
        )
    ]
    messages = [msg for _, (msg, _meta) in seen]
    assert isinstance(messages[0], AIMessageChunk) and messages[0].content == "to"
    assert (await parent.aget_state(config)).values == {"text": "done"}


def test_stream_protocol_in_config_receives_subgraph_events():
    def script(request):
        return [
            Part("updates|sub:1", {"inner": 1}),
            Part("updates", {"outer": 2}),
        ]

    client = FakeClient(script)
    remote = RemoteGraph("agent", sync_client=client)
    received: list[Any] = []
    config = {
        "configurable": {
            "thread_id": "t",
            "checkpoint_ns": "node:1",
            "__pregel_stream": StreamProtocol(received.append, {"updates"}),
        }
    }
    assert list(remote.stream({}, config)) == [{"outer": 2}]
    assert received == [
        (("node:1", "sub:1"), "updates", {"inner": 1}),
        (("node:1",), "updates", {"outer": 2}),
    ]


def test_get_graph_draws_the_server_graph():
    graph = {
        "nodes": [
            {"id": "__start__", "type": "schema", "data": "__start__"},
            {"id": "agent", "type": "runnable", "data": {"id": ["x"], "name": "agent_1"}},
            {"id": "__end__", "type": "schema", "data": "__end__"},
        ],
        "edges": [
            {"source": "__start__", "target": "agent"},
            {"source": "agent", "target": "__end__", "conditional": True},
        ],
    }
    client = type("C", (), {})()
    client.assistants = type("A", (), {"get_graph": lambda self, **kw: graph})()
    drawn = RemoteGraph("agent", sync_client=client).get_graph()
    assert drawn.nodes["agent"].name == "agent_1"
    assert [(e.source, e.target, e.conditional) for e in drawn.edges] == [
        ("__start__", "agent", False),
        ("agent", "__end__", True),
    ]


# -- v3 run streams ----------------------------------------------------------------------


def test_stream_events_v3_refuses_what_the_server_cannot_take():
    remote = RemoteGraph("agent", sync_client=object())
    with pytest.raises(NotImplementedError, match="interrupt_before"):
        remote.stream_events({}, version="v3", interrupt_before=["a"])
    with pytest.raises(NotImplementedError, match="goto"):
        remote.stream_events(Command(goto="a"), version="v3")
    with pytest.raises(NotImplementedError, match="not implemented"):
        remote.stream_events({}, version="v2")

