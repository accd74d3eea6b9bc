"""People in the loop, end to end: the seed's two workflows with an approval policy, a
deadline and a two-approver rule - and the audit log of every decision.

1. The email workflow (draft -> send): sending needs two distinct reviewers with the
   ``finance`` role; nobody deciding within 24 hours rejects it. A reviewer without the
   role is refused, the same reviewer approving twice does not count twice.
2. The file-tool workflow (agent -> tools): ``ToolNode(tools, approval=policy)`` pauses
   only for deletions outside ``/tmp`` (two distinct ``ops`` reviewers, one hour);
   reading is never asked about. A batch of calls is decided together: one edited (and
   approved by a second reviewer), one rejected (the model reads why), the rest run.
3. A thread nobody answers: ``sweep`` (what ``threadloom sweep`` runs) applies the
   deadline's decision. The clock is passed in, so the example runs instantly.

Run: ``python examples/people_in_the_loop.py``. The model is scripted, so the run is
offline and reproducible.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.hitl import (
    ApprovalError,
    ApprovalHooks,
    ApprovalPolicy,
    ApprovalRule,
    Deadline,
    Reviewers,
    sweep,
)
from threadloom.hitl.clock import from_iso
from threadloom.prebuilt import ScriptedChatModel, ToolNode
from threadloom.types import Command

ALICE = {"id": "alice", "roles": ["finance"]}
BOB = {"id": "bob", "roles": ["finance", "ops"]}
CAROL = {"id": "carol", "roles": ["ops"]}
MALLORY = {"id": "mallory", "roles": ["intern"]}


def as_reviewer(thread: str, reviewer: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run config a server builds: the thread, and the signed-in reviewer."""
    conf: dict[str, Any] = {"thread_id": thread}
    if reviewer is not None:
        conf["reviewer"] = reviewer
    return {"configurable": conf}


def show_audit(graph: Any, thread: str) -> None:
    print(f"  audit log of {thread!r}:")
    for r in graph.get_audit_log(as_reviewer(thread)):
        who = (r.get("who") or {}).get("id", "-")
        what = r.get("decision") or r.get("stage") or r.get("as_node") or ""
        detail = r.get("status") or r.get("error", "").split(":")[0]
        if r.get("args_diff"):
            detail += f" changed={r['args_diff']['changed']}"
        print(f"    #{r['seq']} {r['event']:<8} {who:<20} {what:<7} "
              f"{r.get('request_id') or '':<9} {detail}")


# -- 1. the seed's email workflow, with a policy ------------------------------------------


class ApprovalState(TypedDict):
    messages: Annotated[list, add_messages]
    approved: bool


EMAIL_POLICY = ApprovalPolicy({
    "send_email": ApprovalRule(
        reviewers=Reviewers(roles=["finance"], quorum=2),
        deadline=Deadline(after=timedelta(hours=24), on_timeout="reject"),
        description="Send the quarterly report to the client?",
    ),
})


def draft_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Draft: Dear client, here is the report...")]}


def send_email(state: ApprovalState) -> dict:
    email = {"to": "client@example.com", "subject": "Quarterly report",
             "body": state["messages"][-1].content}
    decision = EMAIL_POLICY.review("send_email", email)
    if not decision.approved:
        return {"messages": [("assistant", f"Email not sent. {decision.message}")],
                "approved": False}
    # In production, this would call an email API with decision.args
    return {"messages": [("assistant", f"Email sent successfully to {decision.args['to']}.")],
            "approved": True}


builder = StateGraph(ApprovalState)
builder.add_node("draft", draft_email)
builder.add_node("send", send_email)
builder.add_edge(START, "draft")
builder.add_edge("draft", "send")
builder.add_edge("send", END)
email_graph = builder.compile(checkpointer=MemorySaver(), hooks=[ApprovalHooks()])


def email_workflow() -> None:
    print("1. Email: two finance approvers, 24 h deadline")
    thread = "email-review-1"
    out = email_graph.invoke(
        {"messages": [HumanMessage(content="Send the quarterly report.")]},
        config=as_reviewer(thread),
    )
    (request,) = out["__interrupt__"][0].value
    print(f"  paused: {request['description']} (needs {request['reviewers']['quorum']} of "
          f"{request['reviewers']['roles']}, by {request['deadline']['at']})")
    approve = [{"type": "accept", "digest": request["digest"]}]  # a UI echoes the digest
    for who in (MALLORY, ALICE, ALICE, BOB):
        try:
            out = email_graph.invoke(Command(resume=approve),
                                     config=as_reviewer(thread, who))
        except ApprovalError as exc:
            print(f"  {who['id']} refused: {type(exc).__name__}")
            continue
        if "__interrupt__" in out:
            approvals = out["__interrupt__"][0].value[0]["approvals"]
            print(f"  {who['id']} approved: {len(approvals)} of 2, still paused")
    print(f"  final: {out['messages'][-1].content}")
    show_audit(email_graph, thread)


# -- 2. the seed's file-tool workflow, with ToolNode(approval=...) ---------------------------


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

FILE_POLICY = ApprovalPolicy(
    {"delete_file": lambda args: not args["path"].startswith("/tmp/"), "read_file": "never"},
    default="always",
    reviewers=Reviewers(roles=["ops"], quorum=2),
    deadline=Deadline(after=timedelta(hours=1), on_timeout="reject",
                      reason="Nobody approved this deletion within an hour."),
)


def offline_model(messages: list) -> AIMessage:
    """Propose a cleanup; then report what the tools said."""
    if isinstance(messages[-1], HumanMessage):
        return AIMessage(content="", tool_calls=[
            {"name": "delete_file", "args": {"path": "/tmp/old_data.csv"}, "id": "call_tmp"},
            {"name": "delete_file", "args": {"path": "/home/me/report.docx"}, "id": "call_doc"},
            {"name": "delete_file", "args": {"path": "/var/db/prod.sqlite"}, "id": "call_db"},
            {"name": "read_file", "args": {"path": "/etc/motd"}, "id": "call_read"},
        ])
    results = [m for m in messages if isinstance(m, ToolMessage)]
    return AIMessage(content=f"Done: {len(results)} tool results, "
                             f"{sum(m.status == 'error' for m in results)} refused.")


llm = ScriptedChatModel(respond=offline_model).bind_tools(tools)


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
builder.add_node("tools", ToolNode(tools, approval=FILE_POLICY))
builder.add_edge(START, "agent")
builder.add_conditional_edges("agent", should_continue)
builder.add_edge("tools", "agent")
file_agent = builder.compile(checkpointer=MemorySaver())


def file_workflow() -> None:
    print("2. File tools: deletions outside /tmp need two ops reviewers within an hour")
    thread = "approval-demo-1"
    out = file_agent.invoke({"messages": [HumanMessage(content="Clean up my disk.")]},
                            config=as_reviewer(thread))
    requests = out["__interrupt__"][0].value
    print(f"  paused for {[r['id'] for r in requests]} (the /tmp deletion and the read "
          "wait, but need nobody)")
    out = file_agent.invoke(
        Command(resume={
            "call_doc": {"type": "edit", "args": {"path": "/home/me/report.docx.bak"},
                         "digest": {r["id"]: r for r in requests}["call_doc"]["digest"]},
            "call_db": {"type": "reject", "args": "Never delete the production database."},
        }),
        config=as_reviewer(thread, BOB),
    )
    (still,) = out["__interrupt__"][0].value  # the rejection is final; the edit needs a 2nd
    print(f"  bob edited {still['id']} and rejected call_db; waiting for a second reviewer "
          f"of {still['action_request']['args']}")
    out = file_agent.invoke(Command(resume={"call_doc": {"type": "accept",
                                                         "digest": still["digest"]}}),
                            config=as_reviewer(thread, CAROL))
    for m in out["messages"]:
        if isinstance(m, ToolMessage):
            print(f"  {m.tool_call_id:<9} [{m.status}] {m.content}")
    print(f"  final: {out['messages'][-1].content}")
    show_audit(file_agent, thread)


# -- 3. a deadline nobody met ------------------------------------------------------------------


def deadline_workflow() -> None:
    print("3. Deadline: nobody answers, the sweep rejects")
    thread = "approval-demo-2"
    out = file_agent.invoke({"messages": [HumanMessage(content="Clean up my disk.")]},
                            config=as_reviewer(thread))
    due = from_iso(out["__interrupt__"][0].value[0]["deadline"]["at"])
    print(f"  swept an hour early: {sweep(file_agent, now=due - timedelta(hours=1))}")
    for result in sweep(file_agent, now=due + timedelta(minutes=1)):
        print(f"  swept: {result.thread_id} {result.request_id} -> {result.decision}")
    print(f"  final: {file_agent.get_state(as_reviewer(thread)).values['messages'][-1].content}")
    show_audit(file_agent, thread)


def main() -> None:
    email_workflow()
    file_workflow()
    deadline_workflow()


if __name__ == "__main__":
    main()
