"""The seed's email-approval workflow: pause before ``send``, inspect, resume.

Run: ``python examples/email_approval.py``. The code is the seed's, with only the
``langgraph`` imports renamed to ``threadloom``.
"""

from typing import Annotated, TypedDict

from langchain_core.messages import HumanMessage

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages


class ApprovalState(TypedDict):
    messages: Annotated[list, add_messages]
    approved: bool


def draft_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Draft: Dear client, here is the report...")]}


def send_email(state: ApprovalState) -> dict:
    # In production, this would call an email API
    return {"messages": [("assistant", "Email sent successfully.")]}


builder = StateGraph(ApprovalState)
builder.add_node("draft", draft_email)
builder.add_node("send", send_email)
builder.add_edge(START, "draft")
builder.add_edge("draft", "send")
builder.add_edge("send", END)

# Compile with interrupt_before on the send node
checkpointer = MemorySaver()
graph = builder.compile(checkpointer=checkpointer, interrupt_before=["send"])

# The same pause point, stated as "after the draft is done".
graph_after = builder.compile(checkpointer=checkpointer, interrupt_after=["draft"])


def main() -> None:
    thread_config = {"configurable": {"thread_id": "email-review-1"}}

    # First invocation: runs "draft", then pauses before "send"
    result = graph.invoke(
        {"messages": [HumanMessage(content="Send the quarterly report.")]},
        config=thread_config,
    )
    print("Paused state:", result["messages"][-1].content)

    # Inspect the state
    snapshot = graph.get_state(thread_config)
    print("Next node to run:", snapshot.next)

    # Resume execution (the "send" node will now run)
    final = graph.invoke(None, config=thread_config)
    print("Final:", final["messages"][-1].content)

    after_config = {"configurable": {"thread_id": "email-review-2"}}
    graph_after.invoke({"messages": [HumanMessage(content="Send it.")]}, after_config)
    print("interrupt_after next:", graph_after.get_state(after_config).next)
    final = graph_after.invoke(None, after_config)
    print("interrupt_after final:", final["messages"][-1].content)


if __name__ == "__main__":
    main()
