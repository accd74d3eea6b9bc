"""Tool-call approval on ``create_react_agent``: approve, edit the arguments, replace the
call, or reject it with a reason the model reads.

Run: ``python examples/react_agent_approval.py [approve|edit|replace|reject]``. Offline by
default (a scripted model proposes ``delete_file``); with ``OPENAI_API_KEY`` set it uses
``ChatOpenAI`` (``OPENAI_BASE_URL`` honoured).
"""

from __future__ import annotations

import os
import sys

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import MemorySaver
from threadloom.prebuilt import ScriptedChatModel, create_react_agent


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}: ..."


def offline_model(messages: list) -> AIMessage:
    last = messages[-1]
    if isinstance(last, HumanMessage):
        path = str(last.content).split()[-1]
        return AIMessage("", tool_calls=[{"name": "delete_file", "args": {"path": path},
                                          "id": "call_1"}])
    return AIMessage(f"Result: {last.content}")


def make_model():
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("THREADLOOM_OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedChatModel(respond=offline_model)


def main(choice: str = "approve") -> str:
    agent = create_react_agent(make_model(), [delete_file, read_file],
                               checkpointer=MemorySaver(), interrupt_before=["tools"])
    config = {"configurable": {"thread_id": f"react-{choice}"}}
    agent.invoke({"messages": [HumanMessage("Delete the file /tmp/old_data.csv")]}, config)

    proposal = agent.get_state(config).values["messages"][-1]
    call = proposal.tool_calls[0]
    print("Proposed:", call["name"], call["args"])

    if choice == "edit":  # same tool, different arguments; same message id replaces it
        edited = {**call, "args": {"path": "/tmp/old_data.csv.bak"}}
        agent.update_state(config, {"messages": [
            AIMessage("", id=proposal.id, tool_calls=[edited])]}, as_node="agent")
    elif choice == "replace":  # a different, safer tool
        safer = {**call, "name": "read_file"}
        agent.update_state(config, {"messages": [
            AIMessage("", id=proposal.id, tool_calls=[safer])]}, as_node="agent")
    elif choice == "reject":  # answer the call ourselves; the tool never runs
        agent.update_state(config, {"messages": [ToolMessage(
            "Rejected by the reviewer: deleting files is not allowed.",
            tool_call_id=call["id"], status="error")]}, as_node="tools")

    final = agent.invoke(None, config)
    answer = final["messages"][-1].content
    print("Agent:", answer)
    return answer


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "approve")
