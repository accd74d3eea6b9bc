"""Who may decide, and how many: reviewer roles from the run's config, distinct
approvers for a quorum, refused reviewers leaving the thread paused, final rejections."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, StateGraph
from threadloom.hitl import (
    ApprovalHooks,
    DuplicateApproverError,
    ReviewerNotAllowedError,
    Reviewers,
    echo_digests,
    request_approval,
)
from threadloom.types import Command


class State(TypedDict, total=False):
    amount: int
    paid: dict[str, Any]
    refused: str


SENT: list[dict[str, Any]] = []


def build(reviewers: Reviewers) -> Any:
    SENT.clear()

    def pay(state: State) -> dict[str, Any]:
        decision = request_approval(
            "wire_transfer", {"to": "ACME", "amount": state["amount"]}, reviewers=reviewers
        )
        if not decision.approved:
            return {"refused": decision.message or decision.outcome}
        decision.verify("wire_transfer", decision.args)
        SENT.append(decision.args)
        return {"paid": {**decision.args, "by": list(decision.deciders)}}

    builder = StateGraph(State)
    builder.add_node("pay", pay)
    builder.add_edge(START, "pay")
    return builder.compile(checkpointer=InMemorySaver(), hooks=[ApprovalHooks()])


def as_(who: str | None, *roles: str, thread: str = "t") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread}
    if who is not None:
        conf["reviewer"] = {"id": who, "roles": list(roles)}
    return {"configurable": conf}


def signed(graph: Any, answer: Any) -> Any:
    """The answer as a UI sends it: approvals echo the digest of the request shown."""
    return echo_digests(graph.get_state(as_(None)).interrupts, answer)


def pending(graph: Any) -> list[tuple[str, Any]]:
    snap = graph.get_state(as_(None))
    return [(i.id, i.value) for i in snap.interrupts]


FINANCE_TWO = Reviewers(roles=["finance"], quorum=2)


def test_two_distinct_finance_approvers_are_needed() -> None:
    graph = build(FINANCE_TWO)
    out = graph.invoke({"amount": 5000}, as_(None))
    request = out["__interrupt__"][0].value[0]
    assert request["reviewers"] == {"roles": ["finance"], "quorum": 2, "rejections": 1}
    assert request["approvals"] == []

    out = graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_("alice", "finance"))
    assert SENT == []  # one approval short: still paused, the approval is recorded
    (again,) = out["__interrupt__"]
    assert [a["id"] for a in again.value[0]["approvals"]] == ["alice"]
    assert again.value[0]["digest"] == request["digest"]

    before = pending(graph)
    with pytest.raises(DuplicateApproverError, match="already approved"):
        graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_("alice", "finance"))
    assert pending(graph) == before and SENT == []

    out = graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])),
                       as_("bob", "finance", "ops"))
    assert SENT == [{"to": "ACME", "amount": 5000}]
    assert out["paid"]["by"] == ["alice", "bob"]
    decisions = [r for r in graph.get_audit_log(as_(None)) if r["event"] == "decision"]
    assert [(r["who"]["id"], r["status"]) for r in decisions] == [
        ("alice", "pending"), ("bob", "decided:accept")]
    assert decisions[0]["approvals"] == 1 and decisions[0]["needed"] == 2


@pytest.mark.parametrize(
    ("who", "roles", "text"),
    [
        ("mallory", ("intern",), "needs one of the roles ['finance']"),
        (None, (), "carried no reviewer identity"),
    ],
)
def test_reviewer_without_the_role_is_refused_and_the_thread_stays_paused(
    who: str | None, roles: tuple[str, ...], text: str
) -> None:
    graph = build(FINANCE_TWO)
    graph.invoke({"amount": 10}, as_(None))
    before = pending(graph)
    checkpoint = graph.get_state(as_(None)).config
    with pytest.raises(ReviewerNotAllowedError, match=text.replace("[", r"\[").replace("]", r"\]")):
        graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_(who, *roles))
    assert pending(graph) == before
    assert graph.get_state(as_(None)).config == checkpoint
    refused = graph.get_audit_log(as_(None))[-1]
    assert refused["event"] == "refused" and refused["stage"] == "arrival"
    assert (refused["who"] or {}).get("id") == who


def test_identity_comes_from_config_not_from_the_payload() -> None:
    graph = build(FINANCE_TWO)
    graph.invoke({"amount": 10}, as_(None))
    forged = {"type": "accept", "reviewer": {"id": "cfo", "roles": ["finance"]}}
    with pytest.raises(ReviewerNotAllowedError):
        graph.invoke(Command(resume=signed(graph, [forged])), as_("mallory", "intern"))
    graph.invoke(Command(resume=signed(graph, [forged])), as_("alice", "finance"))
    (record,) = [r for r in graph.get_audit_log(as_(None)) if r["event"] == "decision"]
    assert record["who"] == {"id": "alice", "roles": ["finance"]}


def test_a_single_reject_is_final() -> None:
    graph = build(FINANCE_TWO)
    graph.invoke({"amount": 10}, as_(None))
    graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_("alice", "finance"))
    out = graph.invoke(Command(resume=signed(graph, [{"type": "reject",
                                                      "args": "Unknown payee."}])),
                       as_("bob", "finance"))
    assert out["refused"] == "Unknown payee." and SENT == []
    assert "__interrupt__" not in out


def test_rejections_can_require_several_reviewers() -> None:
    graph = build(Reviewers(roles=["finance"], quorum=2, rejections=2))
    graph.invoke({"amount": 10}, as_(None))
    out = graph.invoke(Command(resume=signed(graph, [{"type": "reject", "args": "hmm"}])),
                       as_("a", "finance"))
    assert out["__interrupt__"][0].value[0]["rejections"][0]["id"] == "a"
    with pytest.raises(DuplicateApproverError, match="already rejected"):
        graph.invoke(Command(resume=signed(graph, [{"type": "reject"}])), as_("a", "finance"))
    out = graph.invoke(Command(resume=signed(graph, [{"type": "reject", "args": "no"}])),
                       as_("b", "finance"))
    assert out["refused"] == "hmm; no"


def test_an_edit_restarts_the_count_for_the_new_arguments() -> None:
    graph = build(FINANCE_TWO)
    graph.invoke({"amount": 9000}, as_(None))
    graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_("alice", "finance"))
    out = graph.invoke(
        Command(resume=signed(graph, [{"type": "edit", "args": {"to": "ACME", "amount": 900}}])),
        as_("bob", "finance"),
    )
    revised = out["__interrupt__"][0].value[0]
    assert revised["action_request"]["args"] == {"to": "ACME", "amount": 900}
    assert revised["original_args"] == {"to": "ACME", "amount": 9000}
    assert [a["id"] for a in revised["approvals"]] == ["bob"]  # alice approved other args
    out = graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), as_("alice", "finance"))
    assert SENT == [{"to": "ACME", "amount": 900}]
    edit = [r for r in graph.get_audit_log(as_(None)) if r["decision"] == "edit"
            if r["event"] == "decision"][0]
    assert edit["args_diff"]["changed"] == {"amount": {"from": 9000, "to": 900}}


def test_anyone_may_answer_when_no_reviewers_are_named() -> None:
    graph = build(Reviewers())
    graph.invoke({"amount": 1}, as_(None))
    out = graph.invoke(Command(resume=signed(graph, True)), as_(None))
    assert out["paid"]["by"] == [None]
