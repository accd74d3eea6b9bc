"""The workflows ``make serve`` loads for the approval inbox (named in ./langgraph.json).

* ``files`` - the seed's tool-approval agent: the model proposes ``delete_file``;
  ``ToolNode(approval=...)`` pauses every deletion for a reviewer with the ``ops`` role
  (reading is never asked about). Asked to "clean up", it proposes two deletions at
  once: one batch, reviewed and answered together.
* ``email`` - the seed's email workflow: sending needs two distinct reviewers with the
  ``finance`` role (a 2-of-2 quorum); the recipient, subject and body may be edited.
* ``refund`` - a refund over a limit waits for ``finance``, with a deadline taken from
  the input (``deadline_seconds``): when nobody decides in time it is rejected.
* ``question`` - a plain ``interrupt(value)`` asking for a post's title: the inbox lists
  it as an "answer" item, shows the value and sends back the reviewer's text or JSON.
* ``publish`` - a static breakpoint (``interrupt_before=["publish"]``): the inbox lists
  the paused thread as a "resume" item.

The model is scripted (offline, reproducible). Graphs are compiled without a
checkpointer: the server runs them on its own.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.hitl import (
    ApprovalHooks,
    ApprovalPolicy,
    ApprovalRule,
    Deadline,
    Reviewers,
    request_approval,
    uses_approvals,
)
from threadloom.prebuilt import ScriptedChatModel, ToolNode
from threadloom.types import interrupt

# -- files: the seed's tool-approval agent ---------------------------------------------------


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    # Dangerous operation: requires approval
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}: ..."


FILES_POLICY = ApprovalPolicy(
    {
        "delete_file": ApprovalRule(
            reviewers=Reviewers(roles=["ops"]),
            deadline=Deadline(after=timedelta(hours=1), on_timeout="reject",
                              reason="Nobody approved this deletion within an hour."),
        ),
        "read_file": "never",
    },
    allow=["accept", "edit", "reject", "response"],
)


def _propose(messages: list) -> AIMessage:
    """Delete the file the user names (the seed's call), or two files to clean up."""
    last = messages[-1]
    if isinstance(last, HumanMessage):
        text = str(last.content)
        if "clean up" in text.lower():
            return AIMessage("", tool_calls=[
                {"name": "delete_file", "args": {"path": "/tmp/old_data.csv"}, "id": "call_tmp"},
                {"name": "delete_file", "args": {"path": "/home/me/report.docx"},
                 "id": "call_doc"},
            ])
        return AIMessage("", tool_calls=[
            {"name": "delete_file", "args": {"path": text.split()[-1]}, "id": "call_delete"},
        ])
    results = [m for m in messages if isinstance(m, ToolMessage)]
    return AIMessage("Done. " + " ".join(str(m.content) for m in results[-2:]))


llm = ScriptedChatModel(_propose).bind_tools([delete_file, read_file])


class ToolApprovalState(TypedDict):
    messages: Annotated[list, add_messages]


def agent(state: ToolApprovalState) -> dict:
    return {"messages": [llm.invoke(state["messages"])]}


def should_continue(state: ToolApprovalState) -> str:
    if state["messages"][-1].tool_calls:
        return "tools"
    return END


_files = StateGraph(ToolApprovalState)
_files.add_node("agent", agent)
_files.add_node("tools", ToolNode([delete_file, read_file], approval=FILES_POLICY))
_files.add_edge(START, "agent")
_files.add_conditional_edges("agent", should_continue)
_files.add_edge("tools", "agent")
files = _files.compile()

# -- email: the seed's email workflow, two finance approvers --------------------------------


class Email(BaseModel):
    """The email about to be sent."""

    to: str = Field(description="recipient address")
    subject: str
    body: str


EMAIL_POLICY = ApprovalPolicy({
    "send_email": ApprovalRule(
        reviewers=Reviewers(roles=["finance"], quorum=2),
        deadline=Deadline(after=timedelta(hours=24), on_timeout="reject"),
        allow=["accept", "edit", "reject"],
        description="Send the quarterly report to the client? Two finance reviewers "
                    "must approve.",
    ),
})


class ApprovalState(TypedDict):
    messages: Annotated[list, add_messages]
    approved: bool


def draft_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Draft: Dear client, here is the report...")]}


@uses_approvals
def send_email(state: ApprovalState) -> dict:
    email = {"to": "client@example.com", "subject": "Quarterly report",
             "body": state["messages"][-1].content}
    decision = EMAIL_POLICY.review("send_email", email, args_schema=Email)
    if not decision.approved:
        return {"messages": [("assistant", f"Email not sent. {decision.message or ''}")],
                "approved": False}
    # In production, this would call an email API with decision.args
    return {"messages": [("assistant", f"Email sent successfully to {decision.args['to']}.")],
            "approved": True}


_email = StateGraph(ApprovalState)
_email.add_node("draft", draft_email)
_email.add_node("send", send_email)
_email.add_edge(START, "draft")
_email.add_edge("draft", "send")
_email.add_edge("send", END)
email = _email.compile(hooks=[ApprovalHooks()])

# -- refund: a deadline ---------------------------------------------------------------------


class Refund(BaseModel):
    """A refund to pay."""

    order_id: str
    amount: float = Field(gt=0, description="in euros")
    reason: str


class RefundState(TypedDict, total=False):
    order_id: str
    amount: float
    deadline_seconds: float
    outcome: str


@uses_approvals
def refund_node(state: RefundState) -> dict:
    args: dict[str, Any] = {"order_id": state["order_id"], "amount": state["amount"],
                            "reason": "Parcel lost in transit"}
    decision = request_approval(
        "issue_refund", args, id="refund",
        description=f"Refund {args['amount']:.2f} EUR for order {args['order_id']}?",
        allow=["accept", "edit", "reject", "response", "ignore"],
        reviewers=Reviewers(roles=["finance"]),
        deadline=Deadline(after=timedelta(seconds=float(state.get("deadline_seconds", 600))),
                          on_timeout="reject", reason="Nobody decided the refund in time."),
        args_schema=Refund,
    )
    if decision.approved:
        return {"outcome": f"refunded {decision.args['amount']:.2f} EUR"}
    return {"outcome": f"{decision.outcome}: {decision.message or ''}".strip()}


_refund = StateGraph(RefundState)
_refund.add_node("refund", refund_node)
_refund.add_edge(START, "refund")
_refund.add_edge("refund", END)
refund = _refund.compile(hooks=[ApprovalHooks()])

# -- question and publish: a plain interrupt and a static breakpoint -------------------------


class DraftState(TypedDict, total=False):
    topic: str
    title: str
    published: str


def ask_title(state: DraftState) -> dict:
    """A plain ``interrupt(value)``: the inbox shows the value and sends back the answer."""
    answer = interrupt({"question": "Which title should the post have?",
                        "topic": state.get("topic", "")})
    return {"title": answer if isinstance(answer, str) else json.dumps(answer)}


def write_post(state: DraftState) -> dict:
    return {"title": state.get("title") or f"Notes on {state.get('topic', 'nothing')}"}


def publish_post(state: DraftState) -> dict:
    return {"published": f"published: {state.get('title')}"}


_question = StateGraph(DraftState)
_question.add_node("ask", ask_title)
_question.add_edge(START, "ask")
_question.add_edge("ask", END)
question = _question.compile()

_publish = StateGraph(DraftState)
_publish.add_node("write", write_post)
_publish.add_node("publish", publish_post)
_publish.add_edge(START, "write")
_publish.add_edge("write", "publish")
_publish.add_edge("publish", END)
# a static breakpoint: every run stops before publishing until someone resumes it
publish = _publish.compile(interrupt_before=["publish"])
