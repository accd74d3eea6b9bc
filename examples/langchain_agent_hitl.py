"""A LangChain v1 agent with ``HumanInTheLoopMiddleware``, run by threadloom on SQLite.

LangChain's ``create_agent`` imports ``langgraph`` itself; ``install_as_langgraph()``
(called once, before anything imports langchain) makes every such import get threadloom's
modules, so the agent's graph, its pause and its checkpoints are threadloom's. The pause is
stored in a SQLite file: one process starts the agent and stops at the approval, another
one -- later, elsewhere -- answers it with LangChain's ``{"decisions": [...]}`` format.

Run: ``python examples/langchain_agent_hitl.py [approve|edit|reject]`` runs both steps as
two processes on a temporary database. The steps alone::

    python examples/langchain_agent_hitl.py pause  DB_FILE THREAD_ID
    python examples/langchain_agent_hitl.py resume DB_FILE THREAD_ID approve|edit|reject

Needs ``pip install langchain`` (its ``langgraph`` dependency is not needed:
``pip install --no-deps langchain``). Offline: a scripted model asks to delete a file.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import threadloom

threadloom.install_as_langgraph()  # before langchain is imported

from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import HumanInTheLoopMiddleware  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

from threadloom.checkpoint.sqlite import SqliteSaver  # noqa: E402
from threadloom.prebuilt import ScriptedChatModel  # noqa: E402
from threadloom.types import Command  # noqa: E402


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
    if isinstance(last, ToolMessage):
        return AIMessage(f"Result: {last.content}")
    return AIMessage("Done.")


def build_agent(checkpointer: SqliteSaver):
    return create_agent(
        ScriptedChatModel(respond=offline_model),
        [delete_file, read_file],
        middleware=[
            HumanInTheLoopMiddleware(
                interrupt_on={
                    "delete_file": {"allowed_decisions": ["approve", "edit", "reject"]},
                    "read_file": False,  # runs without asking
                },
                description_prefix="Tool execution pending approval",
            )
        ],
        checkpointer=checkpointer,
    )


DECISIONS = {
    "approve": {"type": "approve"},
    "edit": {"type": "edit",
             "edited_action": {"name": "delete_file", "args": {"path": "/tmp/scratch.csv"}}},
    "reject": {"type": "reject", "message": "Keep that file, it is still needed."},
}


def pause(db: str, thread_id: str) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    with SqliteSaver.from_conn_string(db) as saver:
        agent = build_agent(saver)
        result = agent.invoke({"messages": [HumanMessage("Please delete /tmp/old_data.csv")]},
                              config)
        (request,) = result["__interrupt__"]
        for action in request.value["action_requests"]:
            print(f"Paused for approval: {action['name']} {action['args']}")
        for review in request.value["review_configs"]:
            print(f"Allowed decisions: {review['allowed_decisions']}")
        print(f"Next: {agent.get_state(config).next}")


def resume(db: str, thread_id: str, choice: str) -> None:
    config = {"configurable": {"thread_id": thread_id}}
    with SqliteSaver.from_conn_string(db) as saver:
        agent = build_agent(saver)
        pending = agent.get_state(config).interrupts
        print(f"Pending in a new process: {len(pending)} approval request(s)")
        result = agent.invoke(Command(resume={"decisions": [DECISIONS[choice]]}), config)
        tool_messages = [m for m in result["messages"] if isinstance(m, ToolMessage)]
        for message in tool_messages:
            print(f"Tool said: {message.content}")
        print(f"Final: {result['messages'][-1].content}")


def both(choice: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "agent.sqlite")
        for step in (["pause", db, "t-1"], ["resume", db, "t-1", choice]):
            out = subprocess.run([sys.executable, __file__, *step], check=True,
                                 capture_output=True, text=True).stdout
            print(out, end="")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["pause"]:
        pause(*args[1:3])
    elif args[:1] == ["resume"]:
        resume(*args[1:4])
    else:
        both(args[0] if args else "approve")
