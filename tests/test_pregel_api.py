"""Low-level API: Pregel/NodeBuilder, channels at LangGraph's paths, run config merging,
RunnableCallable injection, graph lifecycle callbacks."""

from __future__ import annotations

import pickle
import warnings
from typing import Any, TypedDict

import pytest

from threadloom.callbacks import GraphCallbackHandler
from threadloom.channels.last_value import LastValue
from threadloom.channels.topic import Topic
from threadloom.checkpoint.memory import MemorySaver
from threadloom.engine.runconfig import DEFAULT_RECURSION_LIMIT, ensure_config, merge_configs
from threadloom.engine.runnable import RunnableCallable
from threadloom.errors import EmptyChannelError
from threadloom.graph import START, StateGraph
from threadloom.pregel import NodeBuilder, Pregel
from threadloom.runtime import Runtime
from threadloom.types import Command, interrupt
from threadloom.warnings import LangGraphDeprecatedSinceV10


def _chain() -> Pregel:
    one = NodeBuilder().subscribe_only("input").do(lambda x: x + 1).write_to("inbox")
    two = NodeBuilder().subscribe_only("inbox").do(lambda x: x * 10).write_to("output")
    return Pregel(
        nodes={"one": one, "two": two},
        channels={"input": LastValue(int), "inbox": LastValue(int), "output": LastValue(int)},
        input_channels="input",
        output_channels="output",
    )


def test_pregel_runs_a_chain_and_streams_values_when_output_is_written() -> None:
    app = _chain()
    assert app.invoke(2) == 30
    assert app.invoke(2, output_keys=["output"]) == {"output": 30}
    assert list(app.stream(2)) == [30]
    assert app.input_schema.model_json_schema() == {"title": "LangGraphInput",
                                                    "type": "integer"}


async def test_pregel_async_and_checkpointed() -> None:
    app = _chain()
    app.checkpointer = MemorySaver()
    config = {"configurable": {"thread_id": "p"}}
    assert await app.ainvoke(1, config) == 20
    # a snapshot shows the stream channels (all of them by default), as LangGraph's does
    assert app.get_state(config).values == {"input": 1, "inbox": 2, "output": 20}


def test_pregel_reads_several_channels_and_writes_mapped_values() -> None:
    node = (
        NodeBuilder().subscribe_to("input").read_from("total").do(
            lambda d: d["input"] + d.get("total", 0)
        ).write_to("output", "total", plus_one=lambda x: x + 1, fixed=5)
    )
    app = Pregel(
        nodes={"n": node},
        channels={"input": LastValue(int), "total": LastValue(int), "output": LastValue(int),
                  "plus_one": LastValue(int), "fixed": LastValue(int)},
        input_channels="input",
        output_channels=["output", "plus_one", "fixed"],
    )
    assert app.invoke(3) == {"output": 3, "plus_one": 4, "fixed": 5}


def test_pregel_rejects_undefined_channels() -> None:
    node = NodeBuilder().subscribe_only("input").write_to("nowhere")
    with pytest.raises(ValueError, match="nowhere"):
        Pregel(nodes={"n": node}, channels={"input": LastValue(int)},
               input_channels="input", output_channels="input")


def test_channels_at_langgraph_paths() -> None:
    topic = Topic(str).from_checkpoint(Topic(str).checkpoint())
    assert topic.update(["a", ["b"]]) and topic.get() == ["a", "b"]
    assert topic.update([])
    with pytest.raises(EmptyChannelError):
        topic.get()
    assert LastValue(int).ValueType is int


def test_ensure_config_merges_and_keeps_an_explicit_recursion_limit() -> None:
    merged = ensure_config({"configurable": {"a": 1}, "tags": ["x"]},
                           {"configurable": {"thread_id": "t"}, "tags": ["y"]})
    assert merged["configurable"] == {"a": 1, "thread_id": "t"}
    assert merged["tags"] == ["x", "y"]
    assert merged["metadata"]["thread_id"] == "t"
    injected = pickle.loads(pickle.dumps(ensure_config()))
    assert merge_configs({"recursion_limit": 5}, injected)["recursion_limit"] == 5
    assert merge_configs({"recursion_limit": 5},
                         {"recursion_limit": int(DEFAULT_RECURSION_LIMIT)})[
        "recursion_limit"] == int(DEFAULT_RECURSION_LIMIT)


def test_runnable_callable_injects_from_the_runtime() -> None:
    def f(x: Any, store: Any) -> Any:
        return (x, store)

    with pytest.raises(ValueError, match="store"):
        RunnableCallable(f).invoke(1)
    config = {"configurable": {"__pregel_runtime": Runtime(store="S")}}
    assert RunnableCallable(f).invoke(1, config) == (1, "S")
    assert RunnableCallable(f).invoke(1, config, store="T") == (1, "T")


def test_graph_callbacks_see_interrupt_and_resume() -> None:
    events: list[str] = []

    class Handler(GraphCallbackHandler):
        def on_interrupt(self, event: Any) -> None:
            events.append(f"interrupt:{event.interrupts[0].value}")

        def on_resume(self, event: Any) -> None:
            events.append(f"resume:{event.resume}")

    class S(TypedDict):
        answer: str

    def ask(state: S) -> S:
        return {"answer": interrupt("q")}

    graph = StateGraph(S).add_node("ask", ask).add_edge(START, "ask").compile(
        checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "cb"}, "callbacks": [Handler()]}
    graph.invoke({"answer": ""}, config)
    assert graph.invoke(Command(resume="yes"), config) == {"answer": "yes"}
    assert events == ["interrupt:q", "resume:yes"]


def test_deprecated_constant_imports_warn() -> None:
    with pytest.warns(LangGraphDeprecatedSinceV10, match="Importing Send"):
        from threadloom.constants import Send  # noqa: F401
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from threadloom.constants import START as _start  # noqa: F401


def _two_steps(checkpointer: Any) -> Pregel:
    one = NodeBuilder().subscribe_only("input").do(lambda x: x + 1).write_to("inbox")
    two = NodeBuilder().subscribe_only("inbox").do(lambda x: x + 1).write_to("output")
    return Pregel(
        nodes={"one": one, "two": two},
        channels={"inbox": LastValue(int), "output": LastValue(int), "input": LastValue(int)},
        input_channels="input", output_channels="output", checkpointer=checkpointer,
        interrupt_after_nodes=["one"],
    )


def test_pregel_input_checkpoint_holds_the_input_and_snapshots_show_every_channel() -> None:
    app = _two_steps(MemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    assert app.invoke(2, config) is None
    assert app.invoke(None, config) == 4
    # the output channel still holds 4, but this run did not write it
    assert app.invoke(20, config) is None
    state = app.get_state(config)
    assert (state.values, state.next) == ({"inbox": 21, "output": 4, "input": 20}, ("two",))
    history = [(h.metadata["source"], h.metadata["step"], h.values, h.next)
               for h in app.get_state_history(config)]
    assert history[-1] == ("input", -1, {"input": 2}, ("one",))
    assert [h[:2] for h in history] == [
        ("loop", 3), ("input", 2), ("loop", 1), ("loop", 0), ("input", -1)]


def test_interrupt_of_a_graph_with_a_root_state_returns_only_the_interrupts() -> None:
    import operator
    from typing import Annotated

    def ask(state: list) -> list:
        return [interrupt("why?")]

    graph = (StateGraph(Annotated[list, operator.add]).add_node("ask", ask)
             .add_edge(START, "ask").compile(checkpointer=MemorySaver()))
    config = {"configurable": {"thread_id": "1"}}
    result = graph.invoke(["0"], config)
    assert list(result) == ["__interrupt__"]
    assert result["__interrupt__"][0].value == "why?"
    assert graph.invoke(Command(resume="because"), config) == ["0", "because"]


def test_a_mock_node_is_not_taken_for_a_subgraph() -> None:
    from unittest import mock

    add_one = mock.Mock(side_effect=lambda x: x + 1)
    app = Pregel(
        nodes={"one": NodeBuilder().subscribe_only("input").do(add_one).write_to("output")},
        channels={"input": LastValue(int), "output": LastValue(int)},
        input_channels="input", output_channels="output", checkpointer=MemorySaver(),
        interrupt_before_nodes=["one"],
    )
    config = {"configurable": {"thread_id": "1"}}
    app.invoke(1, config)
    (task,) = app.get_state(config).tasks
    assert task.state is None  # a plain node has no state of its own


def test_named_stream_channels_are_what_the_values_stream_shows() -> None:
    one = NodeBuilder().subscribe_only("input").do(lambda x: x + 1).write_to("inbox")
    two = NodeBuilder().subscribe_only("inbox").do(lambda x: x + 1).write_to("output")
    app = Pregel(
        nodes={"one": one, "two": two},
        channels={"inbox": LastValue(int), "output": LastValue(int), "input": LastValue(int)},
        input_channels="input", output_channels="output",
        stream_channels=["inbox", "output"],
    )
    assert app.invoke(2) == 4  # the output channel
    # a step that wrote only a stream channel (inbox) emits too
    assert list(app.stream(2)) == [{"inbox": 3}, {"inbox": 3, "output": 4}]
