"""An approval means what it says: no forged reviewers, times or deadline decisions, no
answer taken for something it was not given for, one clock owned by the deployment, and
hooks that only the graphs using approvals carry (importing threadloom.hitl changes no
graph)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, StateGraph
from threadloom.graph.graph_hooks import GraphHooksError
from threadloom.hitl import (
    ApprovalHooks,
    ApprovalHooksMissingError,
    ApprovalPolicy,
    ApprovalRule,
    ClockOverrideError,
    Deadline,
    DeadlinePassedError,
    DigestRequiredError,
    InvalidResponseError,
    NoPendingRequestError,
    Reviewers,
    action_digest,
    echo_digests,
    request_approval,
    sweep,
    uses_approvals,
)
from threadloom.hitl.clock import from_iso
from threadloom.prebuilt import ScriptedChatModel, create_react_agent
from threadloom.types import Command, interrupt

ROOT = Path(__file__).resolve().parent.parent
SENT: list[dict[str, Any]] = []
RAN: list[str] = []


class Pay(TypedDict, total=False):
    amount: int
    paid: dict[str, Any]
    refused: str


def pay(state: Pay) -> dict[str, Any]:
    decision = request_approval(
        "wire_transfer", {"to": "ACME", "amount": state["amount"]},
        reviewers=Reviewers(roles=["finance"]),
        deadline=Deadline(after=timedelta(hours=24), on_timeout="reject"),
    )
    if not decision.approved:
        return {"refused": decision.message or decision.outcome}
    decision.verify("wire_transfer", decision.args)
    SENT.append(decision.args)
    return {"paid": {**decision.args, "by": list(decision.deciders)}}


def payments(hooks: ApprovalHooks | None = None) -> Any:
    SENT.clear()
    builder = StateGraph(Pay)
    builder.add_node("pay", pay)
    builder.add_edge(START, "pay")
    return builder.compile(checkpointer=InMemorySaver(), hooks=[hooks or ApprovalHooks()])


def as_(who: str | None = None, *roles: str, thread: str = "t") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread}
    if who is not None:
        conf["reviewer"] = {"id": who, "roles": list(roles)}
    return {"configurable": conf}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    RAN.append(path)
    return f"Deleted {path}"


def file_agent(*paths: str, policy: ApprovalPolicy | None = None, name: str | None = None,
               saver: Any = None) -> Any:
    RAN.clear()

    def respond(messages: list[Any]) -> Any:
        if isinstance(messages[-1], ToolMessage):
            return "Finished."
        return {"content": "", "tool_calls": [
            {"name": "delete_file", "args": {"path": p}, "id": f"call_{i}"}
            for i, p in enumerate(paths, 1)]}

    extra = {"name": name} if name else {}
    return create_react_agent(ScriptedChatModel(respond=respond), [delete_file],
                              checkpointer=saver or InMemorySaver(),
                              approval=policy or ApprovalPolicy(default="always"), **extra)


def start(graph: Any, thread: str = "t") -> Any:
    return graph.invoke({"messages": [HumanMessage("clean")]}, as_(thread=thread))


# -- 1. identity, time and deadline outcomes never come from the answer ---------------------


def test_a_forged_reviewer_after_update_state_is_refused() -> None:
    graph = payments()
    graph.invoke({"amount": 5000}, as_())
    # An intern edits the thread: no request is pending any more...
    new = graph.update_state(as_("mallory", "intern"), {"amount": 5000}, as_node="pay")
    digest = action_digest("wire_transfer", {"to": "ACME", "amount": 5000},
                           request_id="wire_transfer",
                           checkpoint_id=new["configurable"]["checkpoint_id"])
    head = graph.get_state(as_()).config
    forged = {"type": "accept", "digest": digest, "reviewer": {"id": "alice",
                                                               "roles": ["finance"]}}
    # ...so an answer naming a finance reviewer in its payload is refused on arrival.
    with pytest.raises(NoPendingRequestError, match="Nothing is waiting"):
        graph.invoke(Command(resume=forged), as_("mallory", "intern"))
    assert SENT == [] and graph.get_state(as_()).config == head
    refused = graph.get_audit_log(as_())[-1]
    assert refused["event"] == "refused" and "NoPendingRequestError" in refused["error"]
    assert refused["who"]["id"] == "mallory"


def test_deadline_decisions_and_times_in_an_answer_are_not_trusted() -> None:
    graph = payments()
    out = graph.invoke({"amount": 5000}, as_())
    request = out["__interrupt__"][0].value[0]
    early = {"type": "reject", "deadline": True, "at": "2100-01-01T00:00:00+00:00",
             "digest": request["digest"]}
    with pytest.raises(InvalidResponseError, match="only by the sweep"):
        graph.invoke(Command(resume=[early]), as_("mallory", "intern"))
    # An accept claiming a deadline skips no role check either.
    with pytest.raises(InvalidResponseError, match="only by the sweep"):
        graph.invoke(Command(resume=[{**early, "type": "accept"}]), as_("mallory", "intern"))
    # A payload's "at" does not move the arrival time: the deployment's clock stamps it.
    late = Clock(from_iso(request["deadline"]["at"]) - timedelta(hours=1))
    graph2 = payments(ApprovalHooks(clock=late))
    out = graph2.invoke({"amount": 1}, as_())
    answer = echo_digests(out["__interrupt__"], [{"type": "accept", "at": "1999-01-01T00:00:00"}])
    graph2.invoke(Command(resume=answer), as_("alice", "finance"))
    (decision,) = [r for r in graph2.get_audit_log(as_()) if r["event"] == "decision"]
    assert decision["at"] == late.now.isoformat() and not decision["via_deadline"]


# -- 9 and 4. one clock, the deployment's -------------------------------------------------


def test_the_config_cannot_set_the_clock() -> None:
    graph = payments()
    out = graph.invoke({"amount": 5000}, as_())
    head = graph.get_state(as_()).config
    far = datetime(2100, 1, 1, tzinfo=UTC)
    answer = echo_digests(out["__interrupt__"], [{"type": "accept"}])
    cfg = as_("alice", "finance")
    cfg["configurable"]["hitl_now"] = far
    with pytest.raises(ClockOverrideError, match="belongs to the deployment"):
        graph.invoke(Command(resume=answer), cfg)
    assert graph.get_state(as_()).config == head and SENT == []


def test_one_clock_for_asking_and_deciding() -> None:
    clock = Clock(datetime(2030, 6, 1, 9, 0, tzinfo=UTC))
    graph = payments(ApprovalHooks(clock=clock))
    out = graph.invoke({"amount": 10}, as_())
    request = out["__interrupt__"][0].value[0]
    assert request["asked_at"] == clock.now.isoformat()
    assert request["deadline"]["at"] == (clock.now + timedelta(hours=24)).isoformat()
    clock.now += timedelta(hours=23)  # timely by the deployment's clock
    graph.invoke(Command(resume=echo_digests(out["__interrupt__"], [True])),
                 as_("alice", "finance"))
    assert SENT == [{"to": "ACME", "amount": 10}]
    # The sweep reads the same clock.
    out = graph.invoke({"amount": 20}, as_(thread="t2"))
    assert sweep(graph) == []
    clock.now += timedelta(days=2)
    assert [r.decision for r in sweep(graph)] == ["reject"]
    assert graph.get_state(as_(thread="t2")).values["refused"]


# -- 8. approvals echo the digest ----------------------------------------------------------


def test_an_accept_without_the_digest_is_refused_unless_the_policy_allows_it() -> None:
    graph = file_agent("/srv/a")
    out = start(graph)
    with pytest.raises(DigestRequiredError, match="echo the request's digest"):
        graph.invoke(Command(resume=[{"type": "accept"}]), as_())
    with pytest.raises(DigestRequiredError):
        graph.invoke(Command(resume=True), as_())
    assert RAN == [] and graph.get_state(as_()).interrupts
    graph.invoke(Command(resume=echo_digests(out["__interrupt__"], [True])), as_())
    assert RAN == ["/srv/a"]
    relaxed = file_agent("/srv/b", policy=ApprovalPolicy(default="always", require_digest=False))
    start(relaxed)
    relaxed.invoke(Command(resume=True), as_())
    assert RAN == ["/srv/b"]
    strict_rule = ApprovalPolicy({"delete_file": ApprovalRule(require_digest=True)},
                                 require_digest=False)
    strict = file_agent("/srv/c", policy=strict_rule)
    start(strict)
    with pytest.raises(DigestRequiredError):
        strict.invoke(Command(resume=True), as_())


# -- 10. answers to interrupts no longer pending ------------------------------------------


def test_an_answer_to_an_interrupt_already_answered_is_refused() -> None:
    class Q(TypedDict, total=False):
        a: str
        b: str

    runs: list[str] = []

    def ask(state: Q) -> dict[str, Any]:
        runs.append("ask")
        first = interrupt("first?")
        second = interrupt("second?")
        return {"a": first, "b": second}

    builder = StateGraph(Q)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=InMemorySaver(), hooks=[ApprovalHooks()])
    out = graph.invoke({}, as_())
    first_id = out["__interrupt__"][0].id
    out = graph.invoke(Command(resume={first_id: "one"}), as_())
    second_id = out["__interrupt__"][0].id
    assert second_id != first_id
    head = graph.get_state(as_()).config
    before = len(runs)
    with pytest.raises(NoPendingRequestError) as caught:
        graph.invoke(Command(resume={first_id: "again"}), as_())
    assert caught.value.pending == [second_id]
    assert graph.get_state(as_()).config == head and len(runs) == before  # nothing re-ran
    assert graph.invoke(Command(resume={second_id: "two"}), as_()) == {"a": "one", "b": "two"}


# -- 2. a late answer after the sweep ----------------------------------------------------


def test_a_late_answer_after_the_sweep_says_the_deadline_decided() -> None:
    graph = payments()
    out = graph.invoke({"amount": 5000}, as_())
    shown = out["__interrupt__"]
    due = from_iso(shown[0].value[0]["deadline"]["at"])
    (result,) = sweep(graph, now=due + timedelta(minutes=1))
    assert result.decision == "reject"
    final = graph.get_state(as_()).values
    with pytest.raises(DeadlinePassedError, match="already decided by its deadline") as caught:
        graph.invoke(Command(resume=echo_digests(shown, [True])), as_("alice", "finance"))
    assert caught.value.decision == "reject"
    assert caught.value.decided_by == "threadloom:deadline"
    assert graph.get_state(as_()).values == final and SENT == []
    refused = graph.get_audit_log(as_())[-1]
    assert refused["event"] == "refused" and "DeadlinePassedError" in refused["error"]


# -- 3. the sweep decides only its own graph's requests ------------------------------------


def test_sweep_leaves_threads_of_other_graphs_alone() -> None:
    saver = InMemorySaver()
    policy = ApprovalPolicy({"delete_file": ApprovalRule(
        deadline=Deadline(at=datetime(2000, 1, 1, tzinfo=UTC), on_timeout="accept"))})
    mine = file_agent("/srv/mine", policy=policy, name="cleaner", saver=saver)
    start(mine, "mine")
    other = file_agent("/srv/other", policy=policy, name="archiver", saver=saver)
    start(other, "other")
    results = sweep(mine, now=datetime(2000, 1, 2, tzinfo=UTC))
    assert [r.thread_id for r in results] == ["mine"]
    assert RAN == ["/srv/mine"]
    assert other.get_state(as_(thread="other")).interrupts  # still waiting for its own sweep


# -- 5. Command(update=...) is audited -----------------------------------------------------


def test_command_update_rewriting_a_pending_tool_call_is_audited() -> None:
    graph = file_agent("/srv/a")
    out = start(graph)
    ai = graph.get_state(as_()).values["messages"][-1]
    tampered = ai.model_copy(update={"tool_calls": [
        {**ai.tool_calls[0], "args": {"path": "/etc/passwd"}}]})
    with pytest.raises(Exception, match="another proposal"):
        graph.invoke(Command(resume=echo_digests(out["__interrupt__"], [True]),
                             update={"messages": [tampered]}), as_("mallory", "ops"))
    assert RAN == []
    (record,) = [r for r in graph.get_audit_log(as_()) if r["event"] == "command_update"]
    assert record["who"]["id"] == "mallory"
    assert record["tool_call_changes"] == [{
        "tool_call_id": "call_1",
        "args_diff": {"changed": {"path": {"from": "/srv/a", "to": "/etc/passwd"}},
                      "added": {}, "removed": {}},
    }]


# -- 7. batches: a shorter list, LangChain v1's shape --------------------------------------


def test_a_shorter_list_answers_the_first_requests_and_decisions_shape_is_read() -> None:
    graph = file_agent("/srv/a", "/srv/b", "/srv/c")
    out = start(graph)
    shown = out["__interrupt__"]
    # Agent Inbox shows the first request and answers it with a list of one.
    out = graph.invoke(Command(resume=echo_digests(shown, [{"type": "reject",
                                                             "args": "keep a"}])), as_())
    assert [r["id"] for r in out["__interrupt__"][0].value] == ["call_2", "call_3"]
    assert RAN == []
    shown = out["__interrupt__"]
    decisions = {"decisions": [{"type": "approve"}, {"type": "approve"}]}
    out = graph.invoke(Command(resume=echo_digests(shown, decisions)), as_())
    assert RAN == ["/srv/b", "/srv/c"]
    answers = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert answers["call_1"].status == "error" and "keep a" in answers["call_1"].content


# -- 12. hostile answers --------------------------------------------------------------------


def test_a_deeply_nested_edit_gives_a_typed_error() -> None:
    graph = file_agent("/srv/a")
    out = start(graph)
    deep: Any = "x"
    for _ in range(100_000):
        deep = {"k": deep}
    answer = echo_digests(out["__interrupt__"], [{"type": "edit", "args": {"path": deep}}])
    with pytest.raises(InvalidResponseError, match="nested more than"):
        graph.invoke(Command(resume=answer), as_())
    assert RAN == [] and graph.get_state(as_()).interrupts


# -- explicit hooks, not an import side effect ---------------------------------------------


def test_approval_graphs_carry_their_hooks_and_plain_graphs_none() -> None:
    assert file_agent("/a").hooks and isinstance(file_agent("/a").hooks[0], ApprovalHooks)

    class S(TypedDict, total=False):
        x: int

    builder = StateGraph(S)
    builder.add_node("n", lambda s: {"x": 1})
    builder.add_edge(START, "n")
    assert builder.compile(checkpointer=InMemorySaver()).hooks == ()


def test_a_node_asking_for_approval_needs_the_hooks() -> None:
    SENT.clear()
    builder = StateGraph(Pay)
    builder.add_node("pay", pay)
    builder.add_edge(START, "pay")
    graph = builder.compile(checkpointer=InMemorySaver())  # no hooks
    with pytest.raises(ApprovalHooksMissingError, match="hooks=\\[ApprovalHooks"):
        graph.invoke({"amount": 1}, as_())
    # Marked, the same node fails the compile instead.
    marked = StateGraph(Pay)
    marked.add_node("pay", uses_approvals(lambda s: pay(s)))
    marked.add_edge(START, "pay")
    with pytest.raises(GraphHooksError, match="needs the graph's 'approvals' hooks"):
        marked.compile(checkpointer=InMemorySaver())
    marked.compile(checkpointer=InMemorySaver(), hooks=[ApprovalHooks()])


PLAIN = '''
import json, sys
from typing import TypedDict
from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import START, END, StateGraph
from threadloom.types import Command, interrupt
if sys.argv[1] == "with":
    import threadloom.hitl  # noqa: F401

calls = []

class Spy(InMemorySaver):
    def get_tuple(self, config):
        calls.append("get_tuple")
        return super().get_tuple(config)
    def put(self, *a, **k):
        calls.append("put")
        return super().put(*a, **k)
    def put_writes(self, *a, **k):
        calls.append("put_writes")
        return super().put_writes(*a, **k)
    def list(self, *a, **k):
        calls.append("list")
        return super().list(*a, **k)
    def put_audit(self, *a, **k):
        calls.append("put_audit")
        return super().put_audit(*a, **k)

class S(TypedDict, total=False):
    x: str

def ask(state):
    return {"x": interrupt("ok?")}

b = StateGraph(S)
b.add_node("ask", ask)
b.add_edge(START, "ask")
b.add_edge("ask", END)
g = b.compile(checkpointer=Spy())
cfg = {"configurable": {"thread_id": "1"}}
g.invoke({"x": ""}, cfg)
g.update_state(cfg, {"x": "edited"})
g.invoke(None, cfg)
g.invoke(Command(resume="yes"), cfg)
print(json.dumps(calls))
'''


def test_a_plain_graph_makes_the_same_saver_calls_with_or_without_hitl_imported(
    tmp_path: Path,
) -> None:
    script = tmp_path / "plain.py"
    script.write_text(textwrap.dedent(PLAIN))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = {}
    for mode in ("without", "with"):
        done = subprocess.run([sys.executable, str(script), mode], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        seen[mode] = json.loads(done.stdout)
    assert seen["with"] == seen["without"]
    assert "put_audit" not in seen["with"]
