"""graph.stream_events(version="v3") / astream_events(version="v3"): typed run streams."""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

import pytest
from langchain_core.language_models import BaseChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.config import get_stream_writer
from threadloom.engine.payloads import task_start_payload
from threadloom.graph import END, START, MessagesState, StateGraph
from threadloom.stream import (
    CustomTransformer,
    StreamChannel,
    StreamTransformer,
    UpdatesTransformer,
)
from threadloom.types import interrupt


class State(TypedDict):
    value: str
    items: Annotated[list[str], operator.add]


def _node(tag: str):
    def node(state: State) -> dict[str, Any]:
        return {"value": state["value"] + tag, "items": [tag]}

    return node


def _chain():
    return (
        StateGraph(State)
        .add_node("a", _node("A"))
        .add_node("b", _node("B"))
        .add_edge(START, "a")
        .add_edge("a", "b")
        .add_edge("b", END)
        .compile()
    )


def _nested():
    inner = (
        StateGraph(State).add_node("leaf", _node("!")).add_edge(START, "leaf")
        .add_edge("leaf", END).compile()
    )
    return (
        StateGraph(State).add_node("child", inner).add_edge(START, "child")
        .add_edge("child", END).compile()
    )


def test_values_and_output():
    run = _chain().stream_events({"value": "x", "items": []}, version="v3")
    snapshots = list(run.values)
    assert snapshots[-1] == {"value": "xAB", "items": ["A", "B"]}
    assert run.output == {"value": "xAB", "items": ["A", "B"]}
    assert run.interrupted is False


def test_raw_events_are_numbered_protocol_events():
    run = _chain().stream_events({"value": "x", "items": []}, version="v3")
    events = list(run)
    assert events and all(e["type"] == "event" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {e["method"] for e in events} >= {"values"}


def test_opt_in_projections_and_interleave():
    def writer_node(state: State) -> dict[str, Any]:
        get_stream_writer()({"status": "working"})
        return {"value": "w"}

    graph = (
        StateGraph(State).add_node("w", writer_node).add_edge(START, "w")
        .add_edge("w", END).compile()
    )
    run = graph.stream_events({"value": "", "items": []}, version="v3",
                              transformers=[CustomTransformer, UpdatesTransformer])
    seen = list(run.interleave("custom", "updates"))
    assert ("custom", {"status": "working"}) in seen
    assert ("updates", {"w": {"value": "w"}}) in seen
    with pytest.raises(KeyError):
        list(run.interleave("nope"))


def test_named_channel_of_a_custom_transformer_reaches_the_main_log():
    class Counter(StreamTransformer):
        def __init__(self, scope: tuple[str, ...] = ()) -> None:
            super().__init__(scope)
            self.channel: StreamChannel[int] = StreamChannel("counter")
            self.count = 0

        def init(self) -> dict[str, Any]:
            return {"counter": self.channel}

        def process(self, event: Any) -> bool:
            if event["method"] == "values":
                self.count += 1
                self.channel.push(self.count)
            return True

    run = _chain().stream_events({"value": "x", "items": []}, version="v3",
                                 transformers=[Counter])
    forwarded = [e["params"]["data"] for e in run if e["method"] == "custom:counter"]
    assert forwarded == [1, 2, 3]
    assert not hasattr(run, "counter")  # only built-in projections are attributes


def test_transformer_instances_and_key_conflicts_are_refused():
    class Mine(StreamTransformer):
        def init(self) -> dict[str, Any]:
            return {"values": StreamChannel()}

    with pytest.raises(TypeError, match="pre-built instance"):
        _chain().stream_events({"value": "", "items": []}, version="v3",
                               transformers=[Mine()])
    with pytest.raises(ValueError, match="conflict.*'values'"):
        _chain().stream_events({"value": "", "items": []}, version="v3",
                               transformers=[Mine])


def test_subgraph_handles_and_lifecycle():
    run = _nested().stream_events({"value": "x", "items": []}, version="v3")
    handles = []
    for handle in run.subgraphs:
        values = list(handle.values)
        handles.append((handle.graph_name, handle.status, values[-1]))
    assert handles == [("child", "completed", {"value": "x!", "items": ["!"]})]

    run = _nested().stream_events({"value": "x", "items": []}, version="v3")
    events = [(p["event"], p["graph_name"]) for p in run.lifecycle]
    assert events == [("started", "child"), ("completed", "child")]


def test_errors_reach_every_reader():
    def boom(state: State) -> dict[str, Any]:
        raise ValueError("boom")

    graph = StateGraph(State).add_node("x", boom).add_edge(START, "x").compile()
    run = graph.stream_events({"value": "", "items": []}, version="v3")
    with pytest.raises(ValueError, match="boom"):
        list(run.values)
    with pytest.raises(ValueError, match="boom"):
        _ = run.output


def test_interrupts():
    def ask(state: State) -> dict[str, Any]:
        return {"value": interrupt("approve?")}

    graph = (
        StateGraph(State).add_node("ask", ask).add_edge(START, "ask")
        .compile(checkpointer=InMemorySaver())
    )
    run = graph.stream_events({"value": "", "items": []},
                              {"configurable": {"thread_id": "t"}}, version="v3")
    assert run.interrupted is True
    assert [i.value for i in run.interrupts] == ["approve?"]


def test_messages_projection_streams_model_calls():
    model = GenericFakeChatModel(messages=iter(["hello world"]))

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": model.invoke(state["messages"])}

    def canned(state: MessagesState) -> dict[str, Any]:
        return {"messages": AIMessage(content="canned", id="m-2")}

    graph = (
        StateGraph(MessagesState).add_node("call", call).add_node("canned", canned)
        .add_edge(START, "call").add_edge("call", "canned").compile()
    )
    run = graph.stream_events({"messages": "hi"}, version="v3")
    streams = list(run.messages)
    assert [s.output.text for s in streams] == ["hello world", "canned"]
    assert [s.node for s in streams] == ["call", "canned"]


async def test_async_run_stream_output_and_abort():
    run = await _chain().astream_events({"value": "x", "items": []}, version="v3")
    assert await run.output() == {"value": "xAB", "items": ["A", "B"]}

    calls: list[int] = []

    async def slow(state: State) -> dict[str, Any]:
        calls.append(1)
        await asyncio.sleep(5)
        return {"value": "never"}

    graph = StateGraph(State).add_node("slow", slow).add_edge(START, "slow").compile()
    run = await graph.astream_events({"value": "", "items": []}, version="v3")
    first = await anext(aiter(run))
    assert first["method"] == "values"
    await asyncio.wait_for(run.abort(), timeout=2)
    assert run._exhausted


def test_task_start_payload_keeps_listener_metadata_only():
    class Task:
        id, name, input, triggers = "t1", "tools", [], ["x"]
        config = {
            "metadata": {"lc_agent_name": "a", "langgraph_node": "tools", "thread_id": "1",
                         "checkpoint_ns": ""},
            "tags": ["seq:step:1", "mine"],
        }

    payload = task_start_payload(Task())
    assert payload["metadata"] == {"lc_agent_name": "a", "tags": ["mine"]}


class _Two(StreamTransformer):
    """Two named projections, pushed to by a test-driven pump."""

    _native = True

    def init(self) -> dict[str, Any]:
        self.alpha: StreamChannel[str] = StreamChannel("alpha")
        self.beta: StreamChannel[str] = StreamChannel("beta")
        return {"alpha": self.alpha, "beta": self.beta}

    def process(self, event: Any) -> bool:
        return True


def test_interleave_follows_push_order_with_a_pump_the_caller_binds():
    from threadloom.stream.mux import StreamMux
    from threadloom.stream.run_stream import GraphRunStream

    mux = StreamMux(factories=[_Two], is_async=False)
    run = GraphRunStream(None, mux, wire_pump=False)
    script = iter([("alpha", "a1"), ("alpha", "a2"), ("beta", "b1"), ("alpha", "a3")])

    def pump() -> bool:
        for name, item in script:
            mux.extensions[name].push(item)
            return True
        mux.close()
        return False

    mux.bind_pump(pump)
    assert list(run.interleave("alpha", "beta")) == [
        ("alpha", "a1"), ("alpha", "a2"), ("beta", "b1"), ("alpha", "a3"),
    ]
    # a channel no run wires stamps its items 0; a run's channels count from 1 up
    loose: StreamChannel[str] = StreamChannel()
    loose._bind(is_async=False)
    loose._subscribed = True
    loose.push("x")
    assert list(loose._items) == [(0, "x")]


def test_interleave_that_fails_to_subscribe_releases_what_it_took():
    from threadloom.stream.mux import StreamMux
    from threadloom.stream.run_stream import GraphRunStream

    mux = StreamMux(factories=[_Two], is_async=False)
    run = GraphRunStream(None, mux, wire_pump=False)
    mux.close()
    held = iter(mux.extensions["beta"])  # another reader holds beta
    with pytest.raises(RuntimeError, match="already has a subscriber"):
        list(run.interleave("alpha", "beta"))
    assert mux.extensions["alpha"]._subscribed is False
    assert mux.extensions["beta"]._subscribed is True  # still the other reader's
    del held


def test_v3_refuses_the_modes_it_sets_itself_and_forwards_the_rest():
    graph = _chain()
    with pytest.raises(TypeError, match="stream_mode"):
        graph.stream_events({"value": "x", "items": []}, version="v3", stream_mode="values")
    with pytest.raises(TypeError, match="subgraphs"):
        graph.stream_events({"value": "x", "items": []}, version="v3", subgraphs=False)
    seen: list[dict[str, Any]] = []
    original = graph.stream

    def recording(input: Any, config: Any = None, **kwargs: Any) -> Any:
        seen.append(kwargs)
        yield from original(input, config, **kwargs)

    graph.stream = recording  # type: ignore[method-assign]
    run = graph.stream_events({"value": "x", "items": []}, version="v3",
                              interrupt_after=["a"])
    assert list(run.values)
    assert seen[0]["interrupt_after"] == ["a"]
    assert seen[0]["interrupt_before"] is None and seen[0]["control"] is None


class _WholeAnswerModel(BaseChatModel):
    """A chat model that cannot stream (no ``_stream``): it reports whole messages."""

    answer: str

    @property
    def _llm_type(self) -> str:
        return "whole-answer"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.answer))])


def test_a_model_that_cannot_stream_reaches_the_log_as_one_whole_message():
    """Its message is one ``(message, metadata)`` event, as LangGraph emits it, not a replay
    of protocol events; ``run.messages`` still makes it one complete stream."""
    model = _WholeAnswerModel(answer="whole")

    def call(state: MessagesState) -> dict[str, Any]:
        model.invoke(state["messages"])  # not returned: only the model callback reports it
        return {}

    graph = StateGraph(MessagesState).add_node("call", call).add_edge(START, "call").compile()
    run = graph.stream_events({"messages": "hi"}, version="v3")
    payloads = [e["params"]["data"][0] for e in run if e["method"] == "messages"]
    assert len(payloads) == 1
    assert isinstance(payloads[0], AIMessage) and payloads[0].text == "whole"

    run = graph.stream_events({"messages": "hi"}, version="v3")
    assert [s.output.text for s in run.messages] == ["whole"]
