"""ToolNode's wrap_tool_call hooks, ToolRuntime injection, list results; ValidationNode."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import InjectedToolArg, tool
from pydantic import BaseModel

from threadloom.graph import START, MessagesState, StateGraph
from threadloom.prebuilt import (
    InjectedState,
    ToolCallRequest,
    ToolNode,
    ToolRuntime,
    ValidationNode,
)
from threadloom.prebuilt.tool_node import ToolInvocationError
from threadloom.runtime import ExecutionInfo, Runtime
from threadloom.store.memory import InMemoryStore
from threadloom.types import Command, Send


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def calls(*items: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "messages": [
            AIMessage(
                "",
                tool_calls=[
                    {"name": n, "args": a, "id": f"c{i}"} for i, (n, a) in enumerate(items, 1)
                ],
            )
        ]
    }


def test_wrap_tool_call_can_change_the_request_and_short_circuit() -> None:
    seen: list[ToolCallRequest] = []

    def hook(request: ToolCallRequest, execute: Any) -> Any:
        seen.append(request)
        if request.tool is None:  # a name no registered tool has: answer it here
            return ToolMessage("handled", tool_call_id=request.tool_call["id"])
        doubled = {**request.tool_call, "args": {"a": 10, "b": 20}}
        return execute(request.override(tool_call=doubled))

    node = ToolNode([add], wrap_tool_call=hook)
    out = node.invoke(calls(("add", {"a": 1, "b": 2}), ("x", {})))
    assert [m.content for m in out["messages"]] == ["30", "handled"]
    assert seen[0].tool is add and seen[1].tool is None
    assert seen[0].state == calls(("add", {"a": 1, "b": 2}), ("x", {}))


async def test_awrap_tool_call_and_errors_raised_by_hooks_are_handled() -> None:
    async def hook(request: ToolCallRequest, execute: Any) -> Any:
        if request.tool_call["name"] == "bad":
            raise RuntimeError("hook refused")
        return await execute(request)

    node = ToolNode([add], awrap_tool_call=hook, handle_tool_errors=True)
    out = await node.ainvoke(calls(("add", {"a": 1, "b": 2}), ("bad", {})))
    assert out["messages"][0].content == "3"
    assert out["messages"][1].status == "error"
    assert "hook refused" in out["messages"][1].content
    with pytest.raises(TypeError, match="ainvoke"):
        node.invoke(calls(("add", {"a": 1, "b": 2})))


def test_execute_of_an_unknown_tool_answers_with_an_error_even_without_handling() -> None:
    node = ToolNode([add], wrap_tool_call=lambda r, ex: ex(r), handle_tool_errors=False)
    [message] = node.invoke(calls(("nope", {})))["messages"]
    assert message.status == "error"
    assert message.content == "Error: nope is not a valid tool, try one of [add]."


def test_tool_call_request_override_copies_and_assignment_warns() -> None:
    request = ToolCallRequest(tool_call={"name": "add", "args": {}, "id": "1"}, tool=add,
                              state={}, runtime=None)
    other = request.override(state={"k": 1})
    assert request.state == {} and other.state == {"k": 1} and other.tool is add
    with pytest.warns(DeprecationWarning, match="Setting attribute 'tool' on ToolCallRequest"):
        request.tool = None  # type: ignore[misc]
    with pytest.raises(TypeError, match="unknown field"):
        request.override(nope=1)


def test_tool_runtime_is_injected_with_state_store_call_id_and_tools() -> None:
    store = InMemoryStore()
    info = ExecutionInfo(checkpoint_id="cp", checkpoint_ns="", task_id="t")

    @tool
    def inspect_runtime(x: int, runtime: ToolRuntime) -> str:
        """Report what the runtime holds."""
        names = [t.name for t in runtime.tools]
        has_store = runtime.store is store
        return f"{x}|{runtime.tool_call_id}|{runtime.state['note']}|{has_store}|{names}"

    schema = inspect_runtime.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"x"}
    runtime = Runtime(store=store, execution_info=info)
    node = ToolNode([inspect_runtime, add])
    state = {**calls(("inspect_runtime", {"x": 1})), "note": "hi"}
    out = node.invoke(state, {"configurable": {"__pregel_runtime": runtime}})
    assert out["messages"][0].content == "1|c1|hi|True|['inspect_runtime', 'add']"


def test_a_hook_overriding_the_state_reaches_injected_state_and_runtime() -> None:
    @tool
    def read_note(note: Annotated[str, InjectedState("note")], runtime: ToolRuntime) -> str:
        """Read the note twice."""
        return f"{note}/{runtime.state['note']}"

    def hook(request: ToolCallRequest, execute: Any) -> Any:
        return execute(request.override(state={**request.state, "note": "new"}))

    state = {**calls(("read_note", {})), "note": "old"}
    out = ToolNode([read_note], wrap_tool_call=hook).invoke(state)
    assert out["messages"][0].content == "new/new"


def test_model_supplied_values_for_hidden_arguments_are_dropped() -> None:
    @tool
    def secret(query: str, auth: Annotated[dict, InjectedToolArg()]) -> str:
        """Needs auth from the system, never from the model."""
        return "ADMIN" if auth.get("role") == "admin" else "PUBLIC"

    node = ToolNode([secret], handle_tool_errors=True)
    [message] = node.invoke(calls(("secret", {"query": "q", "auth": {"role": "admin"}})))[
        "messages"
    ]
    assert "ADMIN" not in message.content


def test_a_tool_may_return_commands_with_one_tool_message() -> None:
    @tool
    def several(tool_call_id: Annotated[str, "x"] = "") -> Any:
        """Return updates and the answer."""
        return [Command(update={"foo": "bar"}), ToolMessage("done", tool_call_id="c1")]

    out = ToolNode([several]).invoke(calls(("several", {})))
    assert out[0] == Command(update={"foo": "bar"})
    assert out[1]["messages"][0].content == "done"

    @tool
    def unanswered() -> Any:
        """Forget the answer."""
        return [Command(update={"foo": "bar"})]

    with pytest.raises(ValueError, match="0 messages bound to tool_call_id"):
        ToolNode([unanswered], handle_tool_errors=False).invoke(calls(("unanswered", {})))


def test_list_results_that_are_not_content_blocks_become_json() -> None:
    @tool
    def days() -> list[str]:
        """Days."""
        return ["星期一", "Friday"]

    out = ToolNode([days]).invoke(calls(("days", {})))
    assert out["messages"][0].content == '["星期一", "Friday"]'


def test_missing_state_key_raises_unless_the_argument_has_a_default() -> None:
    @tool
    def needs(city: Annotated[str, InjectedState("city")]) -> str:
        """Needs the city."""
        return city

    @tool
    def optional(city: Annotated[str | None, InjectedState("city")] = None) -> str:
        """City if known."""
        return city or "none"

    node = ToolNode([needs, optional], handle_tool_errors=True)
    with pytest.raises(KeyError, match="city"):
        node.invoke(calls(("needs", {})))
    assert node.invoke(calls(("optional", {})))["messages"][0].content == "none"


def test_validation_errors_leave_out_injected_arguments() -> None:
    @tool
    def typed(value: int, runtime: ToolRuntime) -> str:
        """Typed."""
        return str(value)

    with pytest.raises(ToolInvocationError) as info:
        ToolNode([typed], handle_tool_errors=False).invoke(calls(("typed", {"value": "x"})))
    assert [e["loc"] for e in info.value.filtered_errors or []] == [("value",)]


def test_bare_tool_calls_sent_to_a_graph_node_see_the_graph_state() -> None:
    seen: list[Any] = []

    @tool
    def record(runtime: ToolRuntime) -> str:
        """Record the state."""
        seen.append(runtime.state)
        return "ok"

    @dataclass
    class State:
        messages: list
        foo: str = ""

    call = {"name": "record", "args": {}, "id": "1", "type": "tool_call"}
    graph = (
        StateGraph(State)
        .add_node("tools", ToolNode([record]))
        .add_conditional_edges(START, lambda _: [Send("tools", [call])], ["tools"])
        .compile()
    )
    graph.invoke({"messages": [], "foo": "bar"})
    assert seen == [State(messages=[], foo="bar")]


def test_tools_node_of_a_compiled_graph_can_be_invoked_alone() -> None:
    graph = StateGraph(MessagesState).add_node("tools", ToolNode([add]))
    compiled = graph.add_edge(START, "tools").compile()
    out = compiled.nodes["tools"].invoke(calls(("add", {"a": 2, "b": 2})))
    assert out["messages"][0].content == "4"


class Point(BaseModel):
    x: int
    y: int


def test_validation_node_answers_each_call_with_the_validated_args_or_an_error() -> None:
    message = AIMessage(
        "",
        tool_calls=[
            {"name": "Point", "args": {"x": 1, "y": 2}, "id": "a"},
            {"name": "Point", "args": {"x": "no", "y": 2}, "id": "b"},
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ValidationNode([Point]).invoke({"messages": [message]})["messages"]
    assert out[0].content == '{"x":1,"y":2}' and not out[0].additional_kwargs.get("is_error")
    assert out[1].additional_kwargs["is_error"] is True and "x" in out[1].content


def test_tool_call_transformer_projects_tools_events_into_streams() -> None:
    from langchain_core.messages import ToolMessage as TM

    from threadloom.prebuilt import ToolCallTransformer
    from threadloom.stream.mux import StreamMux

    transformer = ToolCallTransformer()
    mux = StreamMux([transformer], is_async=False)
    transformer._log._subscribed = True  # a reader is attached

    def event(data: dict[str, Any], ns: list[str] | None = None) -> Any:
        return {"type": "event", "method": "tools",
                "params": {"namespace": ns or [], "timestamp": 0, "data": data}}

    mux.push(event({"event": "tool-started", "tool_call_id": "a", "tool_name": "t",
                    "input": {"x": 1}}))
    mux.push(event({"event": "tool-started", "tool_call_id": "b", "tool_name": "t"},
                   ["child:1"]))  # another scope: not projected here
    [stream] = [item for _, item in transformer._log._items]
    assert (stream.tool_call_id, stream.tool_name, stream.input) == ("a", "t", {"x": 1})
    mux.push(event({"event": "tool-finished", "tool_call_id": "a",
                    "output": TM("done", tool_call_id="a")}))
    assert stream.completed and stream.output == "done" and stream.error is None
    assert transformer._active == {}


def test_tool_call_transformer_skips_tools_events_that_name_no_call() -> None:
    """The engine names the call in every ``tools`` event; an event without a string
    ``tool_call_id`` (another producer's) makes no stream rather than one keyed None."""
    from threadloom.prebuilt import ToolCallTransformer
    from threadloom.stream.mux import StreamMux

    transformer = ToolCallTransformer()
    mux = StreamMux([transformer], is_async=False)
    transformer._log._subscribed = True

    def event(data: dict[str, Any]) -> Any:
        return {"type": "event", "method": "tools",
                "params": {"namespace": [], "timestamp": 0, "data": data}}

    mux.push(event({"event": "tool-started", "tool_name": "t", "input": {}}))
    mux.push(event({"event": "tool-started", "tool_call_id": 7, "tool_name": "t"}))
    mux.push(event({"event": "tool-finished", "output": "x"}))
    assert list(transformer._log._items) == [] and transformer._active == {}
    mux.push(event({"event": "tool-started", "tool_call_id": "a", "tool_name": "t"}))
    assert [item.tool_call_id for _, item in transformer._log._items] == ["a"]
