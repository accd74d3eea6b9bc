"""create_react_agent and ToolNode inside graphs: the seed's tool-approval flows and more.

The chat model is ``ScriptedChatModel``, so every run is deterministic and offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, NotRequired, TypedDict

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import BaseTool, InjectedToolCallId, tool
from pydantic import BaseModel

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.managed import RemainingSteps
from threadloom.prebuilt import (
    InjectedState,
    InjectedStore,
    ScriptedChatModel,
    ToolNode,
    create_react_agent,
    tools_condition,
)
from threadloom.prebuilt.chat_agent_executor import AgentState
from threadloom.types import Command, interrupt

SORRY = "Sorry, need more steps to process this request."


def file_tools() -> tuple[list[BaseTool], list[tuple[str, str]]]:
    """The seed's two tools, recording what they actually did."""
    log: list[tuple[str, str]] = []

    @tool
    def delete_file(path: str) -> str:
        """Delete a file from the filesystem."""
        log.append(("delete", path))
        return f"Deleted {path}"

    @tool
    def read_file(path: str) -> str:
        """Read a file from the filesystem."""
        log.append(("read", path))
        return f"Contents of {path}: ..."

    return [delete_file, read_file], log


def call(tool_name: str, /, **args: Any) -> dict[str, Any]:
    return {"name": tool_name, "args": args}


def kinds(messages: list[BaseMessage]) -> list[str]:
    return [type(m).__name__ for m in messages]


CFG = {"configurable": {"thread_id": "approval-demo-1"}}
DELETE = "Delete the file /tmp/old_data.csv"


def paused_agent(version: str, *replies: Any) -> tuple[Any, ScriptedChatModel, list]:
    tools, log = file_tools()
    model = ScriptedChatModel(
        [{"content": "", "tool_calls": [call("delete_file", path="/tmp/old_data.csv")]}, *replies]
    )
    agent = create_react_agent(
        model, tools, checkpointer=MemorySaver(), interrupt_before=["tools"], version=version
    )
    agent.invoke({"messages": [HumanMessage(DELETE)]}, CFG)
    return agent, model, log


# -- the basic loop -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_agent_loop_state_shape(version: str) -> None:
    tools, log = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a.txt")]}, "It says ..."])
    agent = create_react_agent(model, tools, version=version)
    result = agent.invoke({"messages": [HumanMessage("read a.txt")]})
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert result["messages"][2].tool_call_id == result["messages"][1].tool_calls[0]["id"]
    assert result["messages"][2].content == "Contents of a.txt: ..."
    assert result["messages"][-1].content == "It says ..."
    assert "remaining_steps" not in result
    assert log == [("read", "a.txt")]
    assert [t["function"]["name"] for t in model.bound_tools] == ["delete_file", "read_file"]
    # the second model call saw the tool result
    assert kinds(model.calls[1]) == ["HumanMessage", "AIMessage", "ToolMessage"]


def test_agent_without_tools_is_a_single_model_call() -> None:
    agent = create_react_agent(ScriptedChatModel(["hello"]), [])
    assert agent.invoke({"messages": [HumanMessage("hi")]})["messages"][-1].content == "hello"


def test_name_is_set_on_model_messages() -> None:
    agent = create_react_agent(ScriptedChatModel(["hello"]), [], name="helper")
    assert agent.invoke({"messages": [HumanMessage("hi")]})["messages"][-1].name == "helper"


async def test_async_run() -> None:
    tools, log = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    agent = create_react_agent(model, tools)
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    assert result["messages"][-1].content == "done"
    assert log == [("read", "a")]


# -- the seed's tool-approval flow ------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pause_before_tools_and_approve(version: str) -> None:
    agent, model, log = paused_agent(version, "Deleted it.")
    snapshot = agent.get_state(CFG)
    assert snapshot.next == ("tools",)
    assert log == []
    pending = snapshot.values["messages"][-1].tool_calls
    assert [c["name"] for c in pending] == ["delete_file"]

    final = agent.invoke(None, CFG)
    assert log == [("delete", "/tmp/old_data.csv")]
    assert kinds(final["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert final["messages"][-1].content == "Deleted it."
    assert agent.get_state(CFG).next == ()


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_edit_arguments_by_replacing_the_message(version: str) -> None:
    agent, model, log = paused_agent(version, "Deleted the other file.")
    old = agent.get_state(CFG).values["messages"][-1]
    edited = AIMessage(
        content="",
        id=old.id,
        tool_calls=[
            {
                "id": old.tool_calls[0]["id"],
                "name": "delete_file",
                "args": {"path": "/tmp/other.csv"},
            }
        ],
    )
    agent.update_state(CFG, {"messages": [edited]}, as_node="agent")
    snapshot = agent.get_state(CFG)
    assert snapshot.next == ("tools",)
    assert len(snapshot.values["messages"]) == 2  # replaced, not appended

    final = agent.invoke(None, CFG)
    assert log == [("delete", "/tmp/other.csv")]
    assert kinds(final["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_replace_call_with_read_file_as_in_the_seed(version: str) -> None:
    agent, model, log = paused_agent(version, "Here is the content.")
    pending_calls = agent.get_state(CFG).values["messages"][-1].tool_calls
    corrected_msg = AIMessage(
        content="",
        tool_calls=[
            {
                "id": pending_calls[0]["id"],
                "name": "read_file",
                "args": {"path": "/tmp/old_data.csv"},
            }
        ],
    )
    agent.update_state(CFG, {"messages": [corrected_msg]}, as_node="agent")
    assert agent.get_state(CFG).next == ("tools",)

    final = agent.invoke(None, CFG)
    assert log == [("read", "/tmp/old_data.csv")]  # the delete never ran
    # no id on the corrected message: it was appended, and the last one was executed
    assert kinds(final["messages"]) == [
        "HumanMessage",
        "AIMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert final["messages"][-1].content == "Here is the content."


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_reject_by_answering_the_call_as_tools(version: str) -> None:
    agent, model, log = paused_agent(version, "OK, I will not delete it.")
    pending = agent.get_state(CFG).values["messages"][-1].tool_calls
    rejection = ToolMessage(
        content="The user rejected this action.",
        tool_call_id=pending[0]["id"],
        name="delete_file",
        status="error",
    )
    agent.update_state(CFG, {"messages": [rejection]}, as_node="tools")
    assert agent.get_state(CFG).next == ("agent",)

    final = agent.invoke(None, CFG)
    assert log == []
    assert kinds(final["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert final["messages"][-1].content == "OK, I will not delete it."
    assert model.calls[-1][-1].content == "The user rejected this action."


def test_v2_has_one_task_per_tool_call_and_v1_one_task() -> None:
    for version, expected in (("v2", ("tools", "tools")), ("v1", ("tools",))):
        tools, log = file_tools()
        model = ScriptedChatModel(
            [{"tool_calls": [call("read_file", path="a"), call("read_file", path="b")]}, "both"]
        )
        agent = create_react_agent(
            model, tools, checkpointer=MemorySaver(), interrupt_before=["tools"], version=version
        )
        agent.invoke({"messages": [HumanMessage("read a and b")]}, CFG)
        snapshot = agent.get_state(CFG)
        assert snapshot.next == expected, version
        assert len(snapshot.tasks) == len(expected)
        final = agent.invoke(None, CFG)
        assert sorted(log) == [("read", "a"), ("read", "b")]
        tool_messages = [m for m in final["messages"] if isinstance(m, ToolMessage)]
        ids = [c["id"] for c in final["messages"][1].tool_calls]
        assert [m.tool_call_id for m in tool_messages] == ids  # tool-call order


def test_new_input_while_calls_are_pending_is_refused() -> None:
    agent, model, log = paused_agent("v2", "unused")
    with pytest.raises(ValueError, match="do not have a corresponding ToolMessage"):
        agent.invoke({"messages": [HumanMessage("never mind")]}, CFG)


def test_seed_hand_built_graph_with_tool_node() -> None:
    tools, log = file_tools()
    llm = ScriptedChatModel(
        [{"tool_calls": [call("delete_file", path="/tmp/old_data.csv")]}, "Done."]
    ).bind_tools(tools)

    class ToolApprovalState(TypedDict):
        messages: Annotated[list, add_messages]

    def agent(state: ToolApprovalState) -> dict:
        return {"messages": [llm.invoke(state["messages"])]}

    def should_continue(state: ToolApprovalState) -> str:
        if state["messages"][-1].tool_calls:
            return "tools"
        return END

    builder = StateGraph(ToolApprovalState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", should_continue)
    builder.add_edge("tools", "agent")
    approved_agent = builder.compile(checkpointer=MemorySaver(), interrupt_before=["tools"])

    approved_agent.invoke({"messages": [HumanMessage(content=DELETE)]}, config=CFG)
    snapshot = approved_agent.get_state(CFG)
    pending_calls = snapshot.values["messages"][-1].tool_calls
    corrected_msg = AIMessage(
        content="",
        tool_calls=[
            {
                "id": pending_calls[0]["id"],
                "name": "read_file",
                "args": {"path": "/tmp/old_data.csv"},
            }
        ],
    )
    approved_agent.update_state(CFG, {"messages": [corrected_msg]}, as_node="agent")
    assert approved_agent.get_state(CFG).next == ("tools",)
    final = approved_agent.invoke(None, config=CFG)
    assert final["messages"][-1].content == "Done."
    assert log == [("read", "/tmp/old_data.csv")]


def test_tools_condition_in_a_graph() -> None:
    tools, log = file_tools()
    llm = ScriptedChatModel([{"tool_calls": [call("read_file", path="x")]}, "ok"])

    class S(TypedDict):
        messages: Annotated[list, add_messages]

    builder = StateGraph(S)
    builder.add_node("agent", lambda s: {"messages": [llm.invoke(s["messages"])]})
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    result = builder.compile().invoke({"messages": [HumanMessage("go")]})
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


# -- interrupts inside tools ------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_interrupt_inside_a_tool(version: str) -> None:
    from threadloom.types import Interrupt

    ran: list[str] = []

    @tool
    def risky(path: str) -> str:
        """Delete after asking."""
        answer = interrupt({"action": "delete", "path": path})
        ran.append(answer)
        return "deleted" if answer == "yes" else "cancelled"

    model = ScriptedChatModel([{"tool_calls": [call("risky", path="/x")]}, "finished"])
    agent = create_react_agent(model, [risky], checkpointer=MemorySaver(), version=version)
    paused = agent.invoke({"messages": [HumanMessage("go")]}, CFG)
    [pending] = paused["__interrupt__"]
    assert isinstance(pending, Interrupt)
    assert pending.value == {"action": "delete", "path": "/x"}
    assert ran == []
    final = agent.invoke(Command(resume="yes"), CFG)
    assert ran == ["yes"]
    assert final["messages"][-2].content == "deleted"
    assert final["messages"][-1].content == "finished"


# -- prompts ----------------------------------------------------------------------------------


class UserState(AgentState):
    user: str


@pytest.mark.parametrize(
    "prompt",
    [
        "You are terse.",
        SystemMessage("You are terse."),
        lambda state: [SystemMessage("You are terse."), *state["messages"]],
        RunnableLambda(lambda state: [SystemMessage("You are terse."), *state["messages"]]),
        ChatPromptTemplate.from_messages(
            [("system", "You are terse."), ("placeholder", "{messages}")]
        ),
    ],
    ids=["str", "system_message", "callable", "runnable", "prompt_template"],
)
def test_prompt_forms(prompt: Any) -> None:
    model = ScriptedChatModel(["ok"])
    agent = create_react_agent(model, [], prompt=prompt)
    result = agent.invoke({"messages": [HumanMessage("hi")]})
    sent = model.calls[0]
    assert isinstance(sent[0], SystemMessage) and sent[0].content == "You are terse."
    assert sent[1].content == "hi"
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage"]  # prompt not stored


def test_callable_prompt_sees_custom_state() -> None:
    model = ScriptedChatModel(["ok"])

    def prompt(state: UserState) -> list[BaseMessage]:
        return [SystemMessage(f"The user is {state['user']}."), *state["messages"]]

    agent = create_react_agent(model, [], prompt=prompt, state_schema=UserState)
    agent.invoke({"messages": [HumanMessage("hi")], "user": "Ada"})
    assert model.calls[0][0].content == "The user is Ada."


def test_bad_prompt_type() -> None:
    with pytest.raises(ValueError, match="prompt"):
        create_react_agent(ScriptedChatModel(["x"]), [], prompt=42)  # type: ignore[arg-type]


# -- limits, return_direct, structured output ------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_out_of_steps_answer(version: str) -> None:
    tools, log = file_tools()
    model = ScriptedChatModel(
        [{"tool_calls": [call("read_file", path="again")]}], when_exhausted="cycle"
    )
    agent = create_react_agent(model, tools, version=version)
    result = agent.invoke({"messages": [HumanMessage("loop")]}, {"recursion_limit": 6})
    assert result["messages"][-1].content == SORRY
    assert not result["messages"][-1].tool_calls
    assert len(log) == 2


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_return_direct_ends_after_the_tool(version: str) -> None:
    @tool(return_direct=True)
    def lookup(q: str) -> str:
        """Look up an answer; the result goes straight to the user."""
        return f"answer to {q}"

    tools, _ = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("lookup", q="x")]}])
    agent = create_react_agent(model, [*tools, lookup], version=version)
    result = agent.invoke({"messages": [HumanMessage("q")]})
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage"]
    assert result["messages"][-1].content == "answer to x"
    assert len(model.calls) == 1


class Weather(BaseModel):
    city: str
    degrees: int


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_response_format(version: str) -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel(
        [
            {"tool_calls": [call("read_file", path="weather.txt")]},
            "It is 21 degrees in Paris.",
            {"tool_calls": [call("Weather", city="Paris", degrees=21)]},
        ]
    )
    agent = create_react_agent(model, tools, response_format=Weather, version=version)
    result = agent.invoke({"messages": [HumanMessage("weather?")]})
    assert result["structured_response"] == Weather(city="Paris", degrees=21)
    assert result["messages"][-1].content == "It is 21 degrees in Paris."
    assert kinds(model.calls[-1]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


def test_response_format_with_its_own_prompt() -> None:
    model = ScriptedChatModel(
        ["Paris, 21", {"tool_calls": [call("Weather", city="Paris", degrees=21)]}]
    )
    agent = create_react_agent(model, [], response_format=("Extract the weather.", Weather))
    result = agent.invoke({"messages": [HumanMessage("weather?")]})
    assert result["structured_response"].degrees == 21
    assert model.calls[-1][0] == SystemMessage("Extract the weather.")


# -- hooks and models ---------------------------------------------------------------------------


def test_pre_model_hook_with_llm_input_messages() -> None:
    model = ScriptedChatModel(["ok"])

    def keep_last(state: dict) -> dict:
        return {"llm_input_messages": state["messages"][-1:]}

    agent = create_react_agent(model, [], pre_model_hook=keep_last)
    result = agent.invoke({"messages": [HumanMessage("old"), HumanMessage("new")]})
    assert [m.content for m in model.calls[0]] == ["new"]
    assert [m.content for m in result["messages"]] == ["old", "new", "ok"]
    assert "llm_input_messages" not in result


def test_pre_model_hook_runs_before_every_model_call() -> None:
    tools, _ = file_tools()
    seen: list[int] = []

    def hook(state: dict) -> dict:
        seen.append(len(state["messages"]))
        return {}

    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    create_react_agent(model, tools, pre_model_hook=hook).invoke({"messages": [HumanMessage("x")]})
    assert seen == [1, 3]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_post_model_hook(version: str) -> None:
    tools, log = file_tools()
    seen: list[str] = []

    def hook(state: dict) -> dict:
        seen.append(type(state["messages"][-1]).__name__)
        return {}

    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    agent = create_react_agent(model, tools, post_model_hook=hook, version=version)
    result = agent.invoke({"messages": [HumanMessage("x")]})
    assert seen == ["AIMessage", "AIMessage"]
    assert result["messages"][-1].content == "done"
    assert log == [("read", "a")]


def test_dynamic_model() -> None:
    from threadloom.runtime import Runtime

    seen: list[Any] = []
    fast = ScriptedChatModel(["fast answer"])

    def pick(state: dict, runtime: Runtime) -> Any:
        seen.append(runtime)
        return fast

    agent = create_react_agent(pick, [])
    assert agent.invoke({"messages": [HumanMessage("hi")]})["messages"][-1].content == "fast answer"
    assert isinstance(seen[0], Runtime)
    one_arg = create_react_agent(lambda state: ScriptedChatModel(["one"]), [])
    assert one_arg.invoke({"messages": [HumanMessage("hi")]})["messages"][-1].content == "one"


def test_pre_bound_model_is_accepted_and_checked() -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    agent = create_react_agent(model.bind_tools(tools), tools)
    assert agent.invoke({"messages": [HumanMessage("x")]})["messages"][-1].content == "done"
    with pytest.raises(ValueError, match="differ in number"):
        create_react_agent(model.bind_tools(tools[:1]), tools)
    with pytest.raises(ValueError, match="read_file"):
        create_react_agent(model.bind_tools([tools[0], tools[0]]), tools)


def test_model_string_is_refused_with_a_hint() -> None:
    with pytest.raises(NotImplementedError, match="Pass a chat model object"):
        create_react_agent("openai:gpt-4o-mini", [])


def test_state_schema_must_have_agent_keys() -> None:
    class Bad(TypedDict):
        messages: Annotated[list, add_messages]

    with pytest.raises(ValueError, match="remaining_steps"):
        create_react_agent(ScriptedChatModel(["x"]), [], state_schema=Bad)
    with pytest.raises(ValueError, match="structured_response"):
        create_react_agent(
            ScriptedChatModel(["x"]), [], state_schema=AgentState, response_format=Weather
        )
    with pytest.raises(ValueError, match="version"):
        create_react_agent(ScriptedChatModel(["x"]), [], version="v3")  # type: ignore[arg-type]


# -- tools that touch the graph ---------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_tool_command_updates_state(version: str) -> None:
    @tool
    def remember(name: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
        """Remember the user's name."""
        return Command(
            update={"user": name, "messages": [ToolMessage("saved", tool_call_id=tool_call_id)]}
        )

    model = ScriptedChatModel([{"tool_calls": [call("remember", name="Ada")]}, "Nice to meet you"])
    agent = create_react_agent(model, [remember], state_schema=UserState, version=version)
    result = agent.invoke({"messages": [HumanMessage("I am Ada")], "user": "?"})
    assert result["user"] == "Ada"
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert result["messages"][2].name == "remember"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_injected_state_in_agent(version: str) -> None:
    @tool
    def whoami(
        user: Annotated[str, InjectedState("user")], state: Annotated[dict, InjectedState]
    ) -> str:
        """Tell who the user is."""
        return f"{user} after {len(state['messages'])} messages"

    model = ScriptedChatModel([{"tool_calls": [call("whoami")]}, "done"])
    agent = create_react_agent(model, [whoami], state_schema=UserState, version=version)
    result = agent.invoke({"messages": [HumanMessage("who am I")], "user": "Ada"})
    assert result["messages"][2].content == "Ada after 2 messages"
    assert model.bound_tools[0]["function"]["parameters"]["properties"] == {}


def test_injected_store_in_agent() -> None:
    from threadloom.store.memory import InMemoryStore

    @tool
    def save_note(text: str, store: Annotated[Any, InjectedStore()]) -> str:
        """Save a note."""
        store.put(("notes",), "latest", {"text": text})
        return "saved"

    store = InMemoryStore()
    model = ScriptedChatModel([{"tool_calls": [call("save_note", text="buy milk")]}, "ok"])
    agent = create_react_agent(model, [save_note], store=store)
    agent.invoke({"messages": [HumanMessage("note: buy milk")]})
    assert store.get(("notes",), "latest").value == {"text": "buy milk"}


# -- streaming ----------------------------------------------------------------------------------


def test_stream_messages_shows_model_tokens() -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel(
        [{"tool_calls": [call("read_file", path="a")]}, "The file says hello world"]
    )
    agent = create_react_agent(model, tools)
    items = list(agent.stream({"messages": [HumanMessage("x")]}, stream_mode="messages"))
    chunks = [
        (m, meta)
        for m, meta in items
        if isinstance(m, AIMessageChunk) and meta.get("langgraph_node") == "agent"
    ]
    text = [m.content for m, _ in chunks if m.content]
    assert text == ["The", " file", " says", " hello", " world"]
    assert any(m.tool_call_chunks for m, _ in chunks)


def test_stream_updates_names_the_nodes() -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    agent = create_react_agent(model, tools)
    nodes = [next(iter(u)) for u in agent.stream({"messages": [HumanMessage("x")]})]
    assert nodes == ["agent", "tools", "agent"]


# -- state schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_pydantic_state_schema_survives_a_checkpointed_pause(version: str) -> None:
    from threadloom.prebuilt.chat_agent_executor import AgentStatePydantic

    tools, log = file_tools()
    model = ScriptedChatModel([{"tool_calls": [call("read_file", path="a")]}, "done"])
    agent = create_react_agent(
        model,
        tools,
        state_schema=AgentStatePydantic,
        checkpointer=MemorySaver(),
        interrupt_before=["tools"],
        version=version,
    )
    agent.invoke({"messages": [HumanMessage("x")]}, CFG)
    assert agent.get_state(CFG).next == ("tools",)
    result = agent.invoke(None, CFG)
    assert kinds(result["messages"]) == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert log == [("read", "a")]


class DocState(TypedDict):
    messages: Annotated[Sequence[BaseMessage], add_messages]
    remaining_steps: NotRequired[RemainingSteps]


def test_remaining_steps_declared_not_required_as_in_langgraph_docs() -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel(
        [{"tool_calls": [call("read_file", path="x")]}], when_exhausted="cycle"
    )
    agent = create_react_agent(model, tools, state_schema=DocState)
    result = agent.invoke({"messages": [HumanMessage("loop")]}, {"recursion_limit": 6})
    assert result["messages"][-1].content == SORRY


async def test_async_dynamic_model_and_async_prompt() -> None:
    async def pick(state: dict, runtime: Any) -> Any:
        return ScriptedChatModel(["async answer"])

    async def prompt(state: dict) -> list[BaseMessage]:
        return [SystemMessage("be async"), *state["messages"]]

    agent = create_react_agent(pick, [], prompt=prompt)
    result = await agent.ainvoke({"messages": [HumanMessage("hi")]})
    assert result["messages"][-1].content == "async answer"
    with pytest.raises(RuntimeError, match="ainvoke"):
        agent.invoke({"messages": [HumanMessage("hi")]})


def test_provider_builtin_tools_are_bound_but_not_run() -> None:
    tools, _ = file_tools()
    model = ScriptedChatModel(["searched"])
    agent = create_react_agent(model, [*tools, {"type": "web_search_preview"}])
    assert agent.invoke({"messages": [HumanMessage("x")]})["messages"][-1].content == "searched"
    assert model.bound_tools[-1] == {"type": "web_search_preview"}
    assert set(agent.builder.nodes) == {"agent", "tools"}
    only_builtin = ScriptedChatModel(["ok"])
    create_react_agent(only_builtin, [{"type": "web_search_preview"}])
    assert only_builtin.bound_tools == [{"type": "web_search_preview"}]


# -- LangGraph-compatible extras ------------------------------------------------------------


def test_unknown_keyword_arguments_are_refused_and_config_schema_is_deprecated() -> None:
    from threadloom.warnings import LangGraphDeprecatedSinceV10

    with pytest.raises(TypeError, match=r"unexpected keyword arguments: \{'extra': 1\}"):
        create_react_agent(ScriptedChatModel(["x"]), [], extra=1)
    with pytest.warns(LangGraphDeprecatedSinceV10, match="context_schema"):
        create_react_agent(ScriptedChatModel(["x"]), [], config_schema=dict)


def test_prompt_callable_may_take_the_store() -> None:
    from threadloom.store.memory import InMemoryStore

    store = InMemoryStore()
    store.put(("users",), "me", {"name": "Ada"})

    def prompt(state: Any, config: Any, *, store: Any) -> list[BaseMessage]:
        name = store.get(("users",), config["configurable"]["user"]).value["name"]
        return [SystemMessage(f"User is {name}"), *state["messages"]]

    model = ScriptedChatModel(["hi"])
    agent = create_react_agent(model, [], prompt=prompt, store=store)
    agent.invoke({"messages": [HumanMessage("hello")]}, {"configurable": {"user": "me"}})
    assert model.calls[0][0].content == "User is Ada"


def test_pydantic_agent_state_takes_dict_messages() -> None:
    from threadloom.prebuilt.chat_agent_executor import AgentStatePydantic

    class State(AgentStatePydantic):
        foo: int = 0

    agent = create_react_agent(ScriptedChatModel(["ok"]), [], state_schema=State)
    out = agent.invoke({"messages": [{"role": "user", "content": "hi"}], "foo": 2})
    assert kinds(out["messages"]) == ["HumanMessage", "AIMessage"]
    assert out["foo"] == 2


def test_drawing_lists_edges_sorted_with_plain_end_edges_last() -> None:
    @tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    agent = create_react_agent(ScriptedChatModel(["x"]), [echo])
    lines = agent.get_graph().draw_mermaid(with_styles=False).splitlines()[1:]
    assert [line.strip() for line in lines if line.strip()] == [
        "__start__ --> agent;",
        "agent -.-> __end__;",
        "agent -.-> tools;",
        "tools --> agent;",
    ]


def test_checkpoint_leaves_out_channels_never_written() -> None:
    saver = MemorySaver()
    agent = create_react_agent(ScriptedChatModel(["hi"]), [], checkpointer=saver)
    config = {"configurable": {"thread_id": "t"}}
    agent.invoke({"messages": [HumanMessage("hello")]}, config)
    first = list(saver.list(config))[-1]  # the input checkpoint, before any node ran
    assert first.metadata["step"] == -1
    assert "messages" not in first.checkpoint["channel_values"]
