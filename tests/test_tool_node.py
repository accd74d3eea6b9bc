"""ToolNode and tools_condition, outside a graph (graph-level behaviour: test_react_agent)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    RemoveMessage,
    ToolMessage,
)
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import (
    BaseTool,
    InjectedToolCallId,
    StructuredTool,
    ToolException,
    tool,
)
from pydantic import BaseModel, ValidationError

from threadloom.constants import END
from threadloom.errors import GraphBubbleUp, GraphInterrupt
from threadloom.graph.message import REMOVE_ALL_MESSAGES
from threadloom.prebuilt import InjectedState, InjectedStore, ToolNode, tools_condition
from threadloom.prebuilt.tool_node import ToolInvocationError
from threadloom.types import Command, Interrupt, Send


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def ai(*calls: tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]) -> AIMessage:
    """An AIMessage calling tools; ids default to c1, c2, ..."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": c[0], "args": c[1], "id": c[2] if len(c) > 2 else f"c{i}"}  # type: ignore[misc]
            for i, c in enumerate(calls, start=1)
        ],
    )


def run(node: ToolNode, message: AIMessage) -> list[ToolMessage]:
    return node.invoke({"messages": [HumanMessage("hi"), message]})["messages"]


# -- inputs and outputs ---------------------------------------------------------------------


def test_dict_input_gives_messages_in_call_order() -> None:
    node = ToolNode([add, multiply])
    out = node.invoke({"messages": [ai(("add", {"a": 1, "b": 2}), ("multiply", {"a": 3, "b": 4}))]})
    assert out == {
        "messages": [
            ToolMessage(content="3", name="add", tool_call_id="c1"),
            ToolMessage(content="12", name="multiply", tool_call_id="c2"),
        ]
    }


def test_list_input_gives_list() -> None:
    out = ToolNode([add]).invoke([HumanMessage("x"), ai(("add", {"a": 1, "b": 1}))])
    assert out == [ToolMessage(content="2", name="add", tool_call_id="c1")]


def test_uses_latest_ai_message_even_if_not_last() -> None:
    messages = [
        ai(
            ("add", {"a": 1, "b": 1}),
        ),
        HumanMessage("later"),
    ]
    assert ToolNode([add]).invoke(messages)[0].content == "2"


def test_raw_tool_calls_input() -> None:
    calls = [
        {"name": "add", "args": {"a": 2, "b": 2}, "id": "x", "type": "tool_call"},
        {"name": "add", "args": {"a": 3, "b": 2}, "id": "y"},
    ]
    out = ToolNode([add]).invoke(calls)
    assert [(m.content, m.tool_call_id) for m in out["messages"]] == [("4", "x"), ("5", "y")]


def test_pydantic_and_dataclass_state_input() -> None:
    class PState(BaseModel):
        messages: list[BaseMessage]

    @dataclass
    class DState:
        messages: list[BaseMessage] = field(default_factory=list)

    node = ToolNode([add])
    message = ai(("add", {"a": 1, "b": 2}))
    assert node.invoke(PState(messages=[message]))["messages"][0].content == "3"
    assert node.invoke(DState(messages=[message]))["messages"][0].content == "3"


def test_custom_messages_key() -> None:
    node = ToolNode([add], messages_key="chat")
    out = node.invoke({"chat": [ai(("add", {"a": 1, "b": 2}))]})
    assert out["chat"][0].content == "3"


def test_tool_call_with_context_input() -> None:
    @tool
    def whoami(state: Annotated[dict, InjectedState]) -> str:
        """Return the user."""
        return state["user"]

    payload = {
        "__type": "tool_call_with_context",
        "tool_call": {"name": "whoami", "args": {}, "id": "w1", "type": "tool_call"},
        "state": {"messages": [], "user": "ada"},
    }
    out = ToolNode([whoami]).invoke(payload)
    assert out == {"messages": [ToolMessage(content="ada", name="whoami", tool_call_id="w1")]}


def test_no_tool_calls_gives_empty_update() -> None:
    assert ToolNode([add]).invoke({"messages": [AIMessage("done")]}) == {"messages": []}


def test_missing_messages_or_ai_message_is_an_error() -> None:
    node = ToolNode([add])
    with pytest.raises(ValueError, match="no messages"):
        node.invoke({"messages": []})
    with pytest.raises(ValueError, match="no AIMessage"):
        node.invoke([HumanMessage("hi")])


# -- kinds of tools -------------------------------------------------------------------------


def test_accepts_base_tool_subclass_plain_and_async_callables() -> None:
    class Echo(BaseTool):
        name: str = "echo"
        description: str = "Echo the text."

        def _run(self, text: str) -> str:
            return text

    def no_doc(x: int) -> int:
        return x + 1

    async def shout(text: str) -> str:
        """Upper-case text."""
        return text.upper()

    node = ToolNode([Echo(), no_doc, shout])
    assert set(node.tools_by_name) == {"echo", "no_doc", "shout"}
    out = asyncio.run(
        node.ainvoke(
            {
                "messages": [
                    ai(("echo", {"text": "hi"}), ("no_doc", {"x": 1}), ("shout", {"text": "a"}))
                ]
            }
        )
    )
    assert [m.content for m in out["messages"]] == ["hi", "2", "A"]


def test_rejects_non_callables() -> None:
    with pytest.raises(TypeError, match="BaseTool"):
        ToolNode([42])  # type: ignore[list-item]


def test_is_a_runnable_with_name_and_tags_reaching_tools() -> None:
    seen: dict[str, Any] = {}

    @tool
    def probe(config: RunnableConfig) -> str:
        """Record the config."""
        seen["tags"] = config.get("tags")
        return "ok"

    node = ToolNode([probe], name="my_tools", tags=["t1"])
    assert isinstance(node, Runnable)
    assert node.get_name() == "my_tools"
    run(node, ai(("probe", {})))
    assert "t1" in seen["tags"]


def test_tool_returning_content_and_artifact() -> None:
    @tool(response_format="content_and_artifact")
    def fetch(n: int) -> tuple[str, list[int]]:
        """Fetch n numbers."""
        return f"{n} numbers", list(range(n))

    [message] = run(ToolNode([fetch]), ai(("fetch", {"n": 3})))
    assert message.content == "3 numbers"
    assert message.artifact == [0, 1, 2]


# -- parallel execution ---------------------------------------------------------------------


def test_sync_calls_run_in_parallel_threads() -> None:
    # Each tool waits at the barrier: it only opens if both run at the same time.
    barrier = threading.Barrier(2, timeout=5)
    threads: dict[str, int] = {}

    @tool
    def left() -> str:
        """Left."""
        barrier.wait()
        threads["left"] = threading.get_ident()
        return "L"

    @tool
    def right() -> str:
        """Right."""
        barrier.wait()
        threads["right"] = threading.get_ident()
        return "R"

    out = run(ToolNode([left, right]), ai(("left", {}), ("right", {})))
    assert [m.content for m in out] == ["L", "R"]
    assert threads["left"] != threads["right"]


async def test_async_calls_run_concurrently() -> None:
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def meet(me: str, other: str) -> str:
        started[me].set()
        await asyncio.wait_for(started[other].wait(), timeout=5)
        return me

    @tool
    async def a() -> str:
        """A."""
        return await meet("a", "b")

    @tool
    async def b() -> str:
        """B."""
        return await meet("b", "a")

    out = await ToolNode([a, b]).ainvoke({"messages": [ai(("b", {}), ("a", {}))]})
    assert [m.content for m in out["messages"]] == ["b", "a"]
    assert [m.tool_call_id for m in out["messages"]] == ["c1", "c2"]


def test_parallel_sync_tools_see_graph_context_variables() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("probe", default="unset")

    @tool
    def read_var(i: int) -> str:
        """Read the context variable."""
        return var.get()

    token = var.set("set")
    try:
        out = run(ToolNode([read_var]), ai(("read_var", {"i": 1}), ("read_var", {"i": 2})))
    finally:
        var.reset(token)
    assert [m.content for m in out] == ["set", "set"]


# -- errors ---------------------------------------------------------------------------------


def test_unknown_tool_gives_error_message() -> None:
    [message] = run(ToolNode([add, multiply]), ai(("nope", {})))
    assert message.content == "Error: nope is not a valid tool, try one of [add, multiply]."
    assert message.status == "error"
    assert message.tool_call_id == "c1"
    assert message.name == "nope"


def test_default_handles_bad_arguments() -> None:
    [message] = run(ToolNode([add]), ai(("add", {"a": "x", "b": 2})))
    assert message.status == "error"
    assert message.content.startswith(
        "Error invoking tool 'add' with kwargs {'a': 'x', 'b': 2} with error:\n "
    )
    assert "1 validation error for add" in message.content
    assert message.content.endswith("\n Please fix the error and try again.")


def test_default_reraises_errors_raised_inside_the_tool() -> None:
    with pytest.raises(ValueError, match="boom"):
        run(ToolNode([fail]), ai(("fail", {"reason": "boom"})))


def test_default_reraises_validation_error_from_tool_body() -> None:
    class Other(BaseModel):
        n: int

    @tool
    def parse(text: str) -> str:
        """Parse text as a number."""
        return str(Other(n=text))  # type: ignore[arg-type]

    with pytest.raises(ValidationError):
        run(ToolNode([parse]), ai(("parse", {"text": "nan"})))


def test_handle_true_turns_any_error_into_message() -> None:
    node = ToolNode([fail, add], handle_tool_errors=True)
    [message] = run(node, ai(("fail", {"reason": "boom"})))
    assert message.content == "Error: ValueError('boom')\n Please fix your mistakes."
    assert message.status == "error"
    [bad_args] = run(node, ai(("add", {"a": "x", "b": 1})))
    assert bad_args.content.startswith("Error: ToolInvocationError(")


def test_handle_string() -> None:
    [message] = run(ToolNode([fail], handle_tool_errors="try again"), ai(("fail", {"reason": "x"})))
    assert (message.content, message.status) == ("try again", "error")


def test_handle_exception_types() -> None:
    node = ToolNode([fail], handle_tool_errors=ValueError)
    assert run(node, ai(("fail", {"reason": "x"})))[0].status == "error"
    node = ToolNode([fail], handle_tool_errors=(KeyError, ValueError))
    assert run(node, ai(("fail", {"reason": "x"})))[0].status == "error"
    node = ToolNode([fail], handle_tool_errors=KeyError)
    with pytest.raises(ValueError):
        run(node, ai(("fail", {"reason": "x"})))


def test_handle_callable_limited_by_annotation() -> None:
    def on_value(e: ValueError) -> str:
        return f"handled {e}"

    [message] = run(ToolNode([fail], handle_tool_errors=on_value), ai(("fail", {"reason": "x"})))
    assert (message.content, message.status) == ("handled x", "error")

    def on_key(e: KeyError) -> str:
        return "no"

    with pytest.raises(ValueError):
        run(ToolNode([fail], handle_tool_errors=on_key), ai(("fail", {"reason": "x"})))


def test_handle_callable_with_union_and_without_annotation() -> None:
    def on_union(e: KeyError | ValueError) -> str:
        return "union"

    def on_any(e):  # type: ignore[no-untyped-def]
        return "any"

    class Handler:
        def __call__(self, e: ValueError) -> str:
            return "object"

    for handler, text in ((on_union, "union"), (on_any, "any"), (Handler(), "object")):
        node = ToolNode([fail], handle_tool_errors=handler)
        assert run(node, ai(("fail", {"reason": "x"})))[0].content == text


def test_handle_false_propagates_everything() -> None:
    node = ToolNode([fail, add], handle_tool_errors=False)
    with pytest.raises(ValueError, match="x"):
        run(node, ai(("fail", {"reason": "x"})))
    with pytest.raises(ToolInvocationError):
        run(node, ai(("add", {"a": "x", "b": 1})))


def test_bad_handler_values_are_rejected_at_construction() -> None:
    with pytest.raises(TypeError, match="handle_tool_errors"):
        ToolNode([add], handle_tool_errors=3)  # type: ignore[arg-type]

    def wrong(e: int) -> str:
        return ""

    with pytest.raises(ValueError, match="exception types"):
        ToolNode([add], handle_tool_errors=wrong)


def test_tool_exception_handled_by_the_tool_itself() -> None:
    def flaky() -> str:
        """Flaky."""
        raise ToolException("service down")

    flaky_tool = StructuredTool.from_function(flaky, handle_tool_error=True)
    [message] = run(ToolNode([flaky_tool]), ai(("flaky", {})))
    assert (message.content, message.status) == ("service down", "error")


@pytest.mark.parametrize("handler", [True, "text", Exception, lambda e: "x"])
def test_interrupts_always_propagate(handler: Any) -> None:
    @tool
    def pause() -> str:
        """Pause."""
        raise GraphInterrupt([Interrupt("approve?")])

    @tool
    def bubble() -> str:
        """Bubble."""
        raise GraphBubbleUp()

    with pytest.raises(GraphInterrupt):
        run(ToolNode([pause], handle_tool_errors=handler), ai(("pause", {})))
    with pytest.raises(GraphBubbleUp):
        run(ToolNode([bubble], handle_tool_errors=handler), ai(("bubble", {})))


async def test_async_errors_follow_the_same_rules() -> None:
    node = ToolNode([fail, add])
    out = await node.ainvoke({"messages": [ai(("nope", {}), ("add", {"a": "x", "b": 1}))]})
    assert [m.status for m in out["messages"]] == ["error", "error"]
    with pytest.raises(ValueError, match="boom"):
        await node.ainvoke({"messages": [ai(("fail", {"reason": "boom"}))]})


# -- injection ------------------------------------------------------------------------------


def test_injected_state_whole_and_key_hidden_from_model() -> None:
    @tool
    def count(
        prefix: str,
        state: Annotated[dict, InjectedState],
        user: Annotated[str, InjectedState("user")],
    ) -> str:
        """Count messages."""
        return f"{prefix}{user}:{len(state['messages'])}"

    schema = count.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"prefix"}
    out = ToolNode([count]).invoke(
        {"messages": [HumanMessage("a"), ai(("count", {"prefix": ">"}))], "user": "ada"}
    )
    assert out["messages"][0].content == ">ada:2"


def test_injected_state_from_object_and_list() -> None:
    @tool
    def whole(state: Annotated[Any, InjectedState]) -> str:
        """Whole."""
        return type(state).__name__

    @tool
    def keyed(user: Annotated[str, InjectedState("user")]) -> str:
        """Keyed."""
        return user

    @dataclass
    class S:
        messages: list[BaseMessage]
        user: str = "bob"

    node = ToolNode([whole, keyed])
    out = node.invoke(S(messages=[ai(("whole", {}), ("keyed", {}))]))
    assert [m.content for m in out["messages"]] == ["S", "bob"]
    # As in LangGraph: given bare messages, the whole state is {"messages": [...]}.
    assert node.invoke([ai(("whole", {}))])[0].content == "dict"
    with pytest.raises(ValueError, match="state key 'user'"):
        node.invoke([ai(("keyed", {}))])


def test_injected_state_error_text_does_not_leak_state() -> None:
    @tool
    def lookup(key: int, state: Annotated[dict, InjectedState]) -> str:
        """Look up."""
        return "x"

    [message] = run(ToolNode([lookup]), ai(("lookup", {"key": "secret-free"})))
    assert message.status == "error"
    assert "kwargs {'key': 'secret-free'}" in message.content
    assert "1 validation error for lookup" in message.content
    assert "hi" not in message.content.split("with error:")[1]


def test_injected_tool_call_id() -> None:
    @tool
    def echo_id(tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Echo the call id."""
        return tool_call_id

    assert set(echo_id.tool_call_schema.model_json_schema()["properties"]) == set()  # type: ignore[union-attr]
    [message] = run(ToolNode([echo_id]), ai(("echo_id", {}, "abc")))
    assert message.content == "abc"


def test_injected_store_outside_graph() -> None:
    @tool
    def optional_store(store: Annotated[Any | None, InjectedStore()]) -> str:
        """Optional."""
        return repr(store)

    @tool
    def needs_store(store: Annotated[Store, InjectedStore()]) -> str:
        """Needs."""
        return "x"

    assert optional_store.tool_call_schema.model_json_schema()["properties"] == {}  # type: ignore[union-attr]
    assert run(ToolNode([optional_store]), ai(("optional_store", {})))[0].content == "None"
    with pytest.raises(ValueError, match="compile"):
        run(ToolNode([needs_store]), ai(("needs_store", {})))
    node = ToolNode([needs_store])
    call = {"name": "needs_store", "args": {}, "id": "1", "type": "tool_call"}
    store = Store()
    assert node.inject_tool_args(call, {}, store)["args"] == {"store": store}  # type: ignore[arg-type]


class Store:
    """Stands in for a BaseStore (the annotation must resolve at module level)."""


# -- Command results ------------------------------------------------------------------------


@tool
def set_user(name: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Set the user name."""
    return Command(
        update={
            "user": name,
            "messages": [ToolMessage(content="saved", tool_call_id=tool_call_id)],
        }
    )


def test_command_result_is_combined_in_order() -> None:
    out = ToolNode([set_user, add]).invoke(
        {"messages": [ai(("add", {"a": 1, "b": 1}), ("set_user", {"name": "ada"}))]}
    )
    assert isinstance(out, list) and len(out) == 2
    assert out[0] == {"messages": [ToolMessage(content="2", name="add", tool_call_id="c1")]}
    assert isinstance(out[1], Command)
    assert out[1].update["user"] == "ada"
    [message] = out[1].update["messages"]
    assert (message.tool_call_id, message.name) == ("c2", "set_user")


def test_command_dict_messages_are_converted() -> None:
    @tool
    def t(tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """T."""
        return Command(
            update={"messages": [{"role": "tool", "content": "ok", "tool_call_id": tool_call_id}]}
        )

    [command] = ToolNode([t]).invoke({"messages": [ai(("t", {}))]})
    assert isinstance(command.update["messages"][0], ToolMessage)


def test_command_without_tool_message_is_rejected() -> None:
    @tool
    def bad() -> Command:
        """Bad."""
        return Command(update={"user": "x"})

    with pytest.raises(ValueError, match="without a ToolMessage"):
        ToolNode([bad]).invoke({"messages": [ai(("bad", {}))]})


def test_command_to_parent_or_removing_all_needs_no_tool_message() -> None:
    @tool
    def handoff() -> Command:
        """Hand off."""
        return Command(graph=Command.PARENT, goto=Send("other", {"x": 1}))

    @tool
    def handoff2() -> Command:
        """Hand off too."""
        return Command(graph=Command.PARENT, goto=[Send("other", {"x": 2})])

    @tool
    def clear() -> Command:
        """Clear."""
        return Command(update={"messages": [RemoveMessage(id=REMOVE_ALL_MESSAGES)]})

    out = ToolNode([handoff, handoff2]).invoke(
        {"messages": [ai(("handoff", {}), ("handoff2", {}))]}
    )
    assert out == [
        Command(graph=Command.PARENT, goto=[Send("other", {"x": 1}), Send("other", {"x": 2})])
    ]
    [command] = ToolNode([clear]).invoke({"messages": [ai(("clear", {}))]})
    assert command.update["messages"][0].id == REMOVE_ALL_MESSAGES


def test_command_update_shape_must_match_input_type() -> None:
    with pytest.raises(ValueError, match="dict"):
        ToolNode([set_user]).invoke([ai(("set_user", {"name": "x"}))])

    @tool
    def as_list(tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """List update."""
        return Command(update=[ToolMessage(content="ok", tool_call_id=tool_call_id)])

    out = ToolNode([as_list]).invoke([ai(("as_list", {}))])
    assert out[0].update[0].name == "as_list"
    with pytest.raises(ValueError, match="list"):
        ToolNode([as_list]).invoke({"messages": [ai(("as_list", {}))]})


def test_list_input_with_command_wraps_messages_in_lists() -> None:
    @tool
    def as_list(tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """List update."""
        return Command(update=[ToolMessage(content="ok", tool_call_id=tool_call_id)])

    out = ToolNode([as_list, add]).invoke([ai(("add", {"a": 1, "b": 1}), ("as_list", {}))])
    assert out[0] == [ToolMessage(content="2", name="add", tool_call_id="c1")]
    assert isinstance(out[1], Command)


def test_unexpected_tool_output_type() -> None:
    class Weird(BaseTool):
        name: str = "weird"
        description: str = "Returns a raw object."

        def _run(self) -> Any:
            return 42

        def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
            return 42

    with pytest.raises(TypeError, match="returned int"):
        run(ToolNode([Weird()]), ai(("weird", {})))


# -- tools_condition ------------------------------------------------------------------------


def test_tools_condition() -> None:
    calling = ai(("add", {"a": 1, "b": 1}))
    assert tools_condition({"messages": [calling]}) == "tools"
    assert tools_condition([HumanMessage("x"), calling]) == "tools"
    assert tools_condition({"messages": [AIMessage("done")]}) == END
    assert tools_condition({"messages": [HumanMessage("x")]}) == END
    assert tools_condition({"chat": [calling]}, messages_key="chat") == "tools"

    class S(BaseModel):
        messages: list[BaseMessage]

    assert tools_condition(S(messages=[calling])) == "tools"
    with pytest.raises(ValueError, match="No messages"):
        tools_condition({"messages": []})
    with pytest.raises(ValueError, match="No messages"):
        tools_condition({})


class _Verdict(BaseModel):
    approved: bool


@pytest.mark.parametrize("handle_tool_errors", [True, (ValueError,)])
def test_invalid_resume_answer_is_not_turned_into_a_tool_error(handle_tool_errors: Any) -> None:
    from langchain_core.tools import tool as dec_tool

    from threadloom.checkpoint.memory import InMemorySaver
    from threadloom.graph import START, MessagesState, StateGraph
    from threadloom.types import interrupt

    @dec_tool
    def ask_human() -> str:
        """Ask a human for approval."""
        verdict = interrupt("Approve?", response_schema=_Verdict)
        return f"approved={verdict.approved}"

    graph = (
        StateGraph(MessagesState)
        .add_node("tools", ToolNode([ask_human], handle_tool_errors=handle_tool_errors))
        .add_edge(START, "tools")
        .compile(checkpointer=InMemorySaver())
    )
    config: Any = {"configurable": {"thread_id": "t"}}
    call = {"name": "ask_human", "args": {}, "id": "c1", "type": "tool_call"}
    [pending] = graph.invoke({"messages": [AIMessage("", tool_calls=[call])]}, config)[
        "__interrupt__"
    ]
    with pytest.raises(ValidationError, match="approved"):
        graph.invoke(Command(resume={pending.id: {"approved": "maybe"}}), config)
    assert [i.id for i in graph.get_state(config).interrupts] == [pending.id]
    out = graph.invoke(Command(resume={pending.id: {"approved": True}}), config)
    assert out["messages"][-1].content == "approved=True"
