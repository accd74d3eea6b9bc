"""``make demo``: the seed's two approval workflows, with you as the reviewer.

    python -m threadloom.demo          # asks at each pause: approve / edit / reject
    python -m threadloom.demo --yes    # approves everything (for runs without a person)

The tool-approval agent uses ``ChatOpenAI`` when ``OPENAI_API_KEY`` is set (and honours
``OPENAI_BASE_URL``, so a local OpenAI-compatible server works), otherwise an offline
scripted model that proposes deleting the file you name.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.prebuilt import ScriptedChatModel, create_react_agent

Ask = Callable[[str, str], str]


def make_asker(auto_yes: bool, stream: Any = sys.stdin) -> Ask:
    """``ask(question, default)``: reads an answer, or takes the default under --yes."""

    def ask(question: str, default: str) -> str:
        if auto_yes:
            print(f"{question} {default}  (--yes)")
            return default
        print(question, end=" ", flush=True)
        line = stream.readline()
        if not line:  # end of input: take the safe default
            print(default)
            return default
        return line.strip() or default

    return ask


# -- workflow 1: email approval (interrupt_before) --------------------------------------


class EmailState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def _draft(state: EmailState) -> dict[str, Any]:
    return {"messages": [AIMessage("Dear client, here is the quarterly report.", id="draft")]}


def _send(state: EmailState) -> dict[str, Any]:
    return {"messages": [("assistant", f"Email sent: {state['messages'][-1].content!r}")]}


def email_workflow(ask: Ask) -> str:
    builder: StateGraph[EmailState] = StateGraph(EmailState)
    builder.add_node("draft", _draft)
    builder.add_node("send", _send)
    builder.add_edge(START, "draft")
    builder.add_edge("draft", "send")
    builder.add_edge("send", END)
    graph = builder.compile(checkpointer=MemorySaver(), interrupt_before=["send"])
    config = {"configurable": {"thread_id": "demo-email"}}

    print("\n== Email approval: the graph drafts an email and pauses before sending it.")
    graph.invoke({"messages": [HumanMessage("Send the quarterly report.")]}, config)
    snapshot = graph.get_state(config)
    print(f"   Paused before {snapshot.next}. Draft: {snapshot.values['messages'][-1].content!r}")
    choice = ask("   [a]pprove, [e]dit the draft, or [r]eject?", "a").lower()[:1]
    if choice == "e":
        text = ask("   New draft text:", "Dear client, the report is attached.")
        graph.update_state(config, {"messages": [AIMessage(text, id="draft")]}, as_node="draft")
    elif choice == "r":
        graph.update_state(
            config, {"messages": [("assistant", "Email cancelled by the reviewer.")]},
            as_node="send",
        )
        outcome: str = graph.get_state(config).values["messages"][-1].content
        print(f"   Rejected: nothing was sent. {outcome}")
        return outcome
    final = graph.invoke(None, config)
    outcome = final["messages"][-1].content
    print(f"   {outcome}")
    return outcome


# -- workflow 2: tool-call approval on a ReAct agent -------------------------------------


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}: ..."


def _offline_answer(messages: list[AnyMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, HumanMessage):
        path = str(last.content).split()[-1]
        return AIMessage("", tool_calls=[{"name": "delete_file", "args": {"path": path},
                                          "id": "call_1"}])
    return AIMessage(f"Finished. The tool answered: {last.content}")


def make_model() -> Any:
    """``ChatOpenAI`` when a key is set, otherwise the offline scripted model."""
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("THREADLOOM_OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedChatModel(respond=_offline_answer)


def tool_workflow(ask: Ask, model: Any = None) -> str:
    agent = create_react_agent(
        model or make_model(), [delete_file, read_file],
        checkpointer=MemorySaver(), interrupt_before=["tools"], version="v1",
    )
    config = {"configurable": {"thread_id": "demo-tools"}}
    print("\n== Tool approval: the agent wants to call a tool; nothing runs until you decide.")
    agent.invoke({"messages": [HumanMessage("Delete the file /tmp/old_data.csv")]}, config)
    while True:
        snapshot = agent.get_state(config)
        if not snapshot.next:
            break
        proposal = snapshot.values["messages"][-1]
        for call in proposal.tool_calls:
            print(f"   Proposed: {call['name']}({call['args']})")
        choice = ask("   [a]pprove, [e]dit arguments, [d]owngrade to read_file, or [r]eject?",
                     "a").lower()[:1]
        call = proposal.tool_calls[0]
        if choice in ("e", "d"):
            args = dict(call["args"])
            if choice == "e":
                args["path"] = ask("   New path:", "/tmp/other.csv")
            name = "read_file" if choice == "d" else call["name"]
            edited = AIMessage("", id=proposal.id,
                               tool_calls=[{"id": call["id"], "name": name, "args": args}])
            agent.update_state(config, {"messages": [edited]}, as_node="agent")
        elif choice == "r":
            reason = ask("   Reason for the agent:", "Deleting files is not allowed.")
            rejections = [ToolMessage(f"Rejected by the reviewer: {reason}",
                                      tool_call_id=c["id"], name=c["name"], status="error")
                          for c in proposal.tool_calls]
            agent.update_state(config, {"messages": rejections}, as_node="tools")
        agent.invoke(None, config)
    outcome: str = agent.get_state(config).values["messages"][-1].content
    print(f"   Agent: {outcome}")
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--yes", action="store_true", help="approve every pause")
    args = parser.parse_args(argv)
    ask = make_asker(args.yes)
    email_workflow(ask)
    tool_workflow(ask)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
