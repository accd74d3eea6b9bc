"""The seed's tool-approval agent: the model proposes ``delete_file``; a person approves,
or downgrades the call to ``read_file`` before anything runs.

Run: ``python examples/tool_approval.py [approve|downgrade]``. With ``OPENAI_API_KEY`` set
the agent uses ``ChatOpenAI`` (``OPENAI_BASE_URL`` is honoured, so a local
OpenAI-compatible server works); otherwise a scripted model proposes the call offline.
"""

import os
import sys
from typing import Annotated, TypedDict

from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.prebuilt import ScriptedChatModel, ToolNode


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    # Dangerous operation: requires approval
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}: ..."


tools = [delete_file, read_file]


def offline_model(messages: list) -> AIMessage:
    """Propose deleting the file the user named; then report what the tool said."""
    last = messages[-1]
    if isinstance(last, HumanMessage):
        path = last.content.split()[-1]
        return AIMessage(content="", tool_calls=[
            {"name": "delete_file", "args": {"path": path}, "id": "call_delete_1"}])
    return AIMessage(content=f"Done. The tool said: {last.content}")


def make_model():
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("THREADLOOM_OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedChatModel(respond=offline_model)


llm = make_model().bind_tools(tools)


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

# Interrupt before any tool execution
approved_agent = builder.compile(checkpointer=MemorySaver(), interrupt_before=["tools"])


def main(choice: str = "downgrade") -> str:
    thread_config = {"configurable": {"thread_id": f"approval-demo-{choice}"}}
    approved_agent.invoke(
        {"messages": [HumanMessage(content="Delete the file /tmp/old_data.csv")]},
        config=thread_config,
    )
    snapshot = approved_agent.get_state(thread_config)
    pending_calls = snapshot.values["messages"][-1].tool_calls
    print("Pending tool calls:", pending_calls)

    if choice == "downgrade":
        # Replace the last message with corrected tool calls
        corrected_msg = AIMessage(
            content="",
            tool_calls=[{
                "id": pending_calls[0]["id"],
                "name": "read_file",  # downgrade to read instead of delete
                "args": {"path": "/tmp/old_data.csv"},
            }],
        )
        approved_agent.update_state(
            thread_config, {"messages": [corrected_msg]}, as_node="agent"
        )
    final = approved_agent.invoke(None, config=thread_config)
    print(final["messages"][-1].content)
    return final["messages"][-1].content


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "downgrade")
