"""Tool approval in one line: ``ToolNode(approval=...)`` / ``create_react_agent(approval=...)``.

Covers: one request per call that needs it (Agent Inbox shape), several answered
together (list in order, dict by tool_call_id), a mixed approve/edit/reject batch
leaving every call answered, edits validated against the tool schema, refused answers
leaving the thread exactly as it was, and approvals bound to the action (tampered
digests and arguments changed after approval refused at execution).
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from helpers import cfg
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.hitl import (
    ApprovalMismatchError,
    ApprovalPolicy,
    ApprovalRule,
    InvalidEditError,
    InvalidResponseError,
    NoPendingRequestError,
    action_digest,
    echo_digests,
)
from threadloom.prebuilt import ScriptedChatModel, ToolNode, create_react_agent
from threadloom.types import Command

RAN: list[tuple[str, dict[str, Any]]] = []


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    RAN.append(("delete_file", {"path": path}))
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    RAN.append(("read_file", {"path": path}))
    return f"Contents of {path}"


@tool
def copy_file(src: str, dst: str, times: int = 1) -> str:
    """Copy a file."""
    RAN.append(("copy_file", {"src": src, "dst": dst, "times": times}))
    return f"Copied {src} to {dst} x{times}"


TOOLS = [delete_file, read_file, copy_file]

POLICY = ApprovalPolicy(
    {"delete_file": lambda args: not args["path"].startswith("/tmp/"), "read_file": "never"},
    default="always",
)


def calls(*specs: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "content": "",
        "tool_calls": [
            {"name": n, "args": a, "id": f"call_{i}"} for i, (n, a) in enumerate(specs, 1)
        ],
    }


def agent(*turns: Any, policy: ApprovalPolicy = POLICY, **kw: Any) -> Any:
    RAN.clear()
    model = ScriptedChatModel([*turns, "All done."])
    return create_react_agent(model, TOOLS, checkpointer=InMemorySaver(), approval=policy, **kw)


def signed(graph: Any, answer: Any, thread: str = "t") -> Any:
    """The answer as a UI sends it: approvals echo the digest of the request shown."""
    return echo_digests(graph.get_state(cfg(thread)).interrupts, answer)


def ask(graph: Any, thread: str = "t") -> Any:
    return graph.invoke({"messages": [HumanMessage("tidy up")]}, cfg(thread))


def frozen(graph: Any, saver: Any, thread: str = "t") -> tuple[Any, ...]:
    """Everything a refused answer must leave untouched."""
    snap = graph.get_state(cfg(thread))
    tup = saver.get_tuple(cfg(thread))
    return (
        snap.config["configurable"]["checkpoint_id"],
        [(i.id, i.value) for i in snap.interrupts],
        sorted((w[0], w[1], repr(w[2])) for w in tup.pending_writes or ()),
        len(list(saver.list(cfg(thread)))),
    )


def tool_messages(state: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in state["messages"] if isinstance(m, ToolMessage)}


# -- the request ---------------------------------------------------------------------------


def test_only_calls_the_policy_names_pause_one_request_each_in_agent_inbox_shape() -> None:
    graph = agent(calls(("delete_file", {"path": "/etc/hosts"}),
                        ("delete_file", {"path": "/tmp/scratch"}),
                        ("read_file", {"path": "/var/log/syslog"}),
                        ("copy_file", {"src": "a", "dst": "b"})))
    out = ask(graph)
    assert RAN == []  # nothing runs, not even the auto-approved calls, until all are decided
    (intr,) = out["__interrupt__"]
    requests = intr.value
    assert [r["id"] for r in requests] == ["call_1", "call_4"]
    first = requests[0]
    assert first["action_request"] == {"action": "delete_file", "args": {"path": "/etc/hosts"}}
    assert first["config"] == {"allow_accept": True, "allow_edit": True, "allow_respond": True,
                               "allow_ignore": False, "allow_reject": True}
    assert "delete_file" in first["description"]
    checkpoint_id = graph.get_state(cfg()).config["configurable"]["checkpoint_id"]
    assert first["checkpoint_id"] == checkpoint_id
    assert first["digest"] == action_digest(
        "delete_file", {"path": "/etc/hosts"}, request_id="call_1", checkpoint_id=checkpoint_id
    )
    assert first["args_schema"]["required"] == ["path"]


def test_no_call_needing_approval_runs_straight_through() -> None:
    graph = agent(calls(("read_file", {"path": "/a"}), ("delete_file", {"path": "/tmp/b"})))
    out = ask(graph)
    assert "__interrupt__" not in out
    assert RAN == [("read_file", {"path": "/a"}), ("delete_file", {"path": "/tmp/b"})]
    assert out["messages"][-1].content == "All done."


def test_agent_inbox_single_response_list_accepts() -> None:
    graph = agent(calls(("delete_file", {"path": "/etc/hosts"})))
    ask(graph)
    out = graph.invoke(Command(resume=signed(graph, [{"type": "accept", "args": None}])), cfg())
    assert RAN == [("delete_file", {"path": "/etc/hosts"})]
    assert tool_messages(out)["call_1"].content == "Deleted /etc/hosts"


# -- batches -------------------------------------------------------------------------------


def test_mixed_approve_edit_reject_batch_answers_every_call() -> None:
    graph = agent(calls(("delete_file", {"path": "/etc/a"}),
                        ("copy_file", {"src": "x", "dst": "y"}),
                        ("delete_file", {"path": "/home/me/b"}),
                        ("read_file", {"path": "/r"})))
    ask(graph)
    out = graph.invoke(Command(resume=signed(graph, [
        {"type": "accept"},
        {"type": "edit", "args": {"action": "copy_file", "args": {"src": "x", "dst": "z"}}},
        {"type": "reject", "args": "Never delete home files."},
    ])), cfg())
    # the approved calls run in parallel: which ran, with what, not in which order
    assert sorted(RAN, key=repr) == sorted([("delete_file", {"path": "/etc/a"}),
                                            ("copy_file", {"src": "x", "dst": "z", "times": 1}),
                                            ("read_file", {"path": "/r"})], key=repr)
    answered = tool_messages(out)
    assert set(answered) == {"call_1", "call_2", "call_3", "call_4"}  # no orphan tool call
    rejected = answered["call_3"]
    assert rejected.status == "error" and "Never delete home files." in rejected.content
    assert answered["call_2"].content == "Copied x to z x1"
    # The model's message shows what actually ran.
    ai = next(m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert ai.tool_calls[1]["args"] == {"src": "x", "dst": "z"}
    assert out["messages"][-1].content == "All done."  # the model could be called again


def test_batch_answered_by_tool_call_id_and_in_two_sittings() -> None:
    graph = agent(calls(("delete_file", {"path": "/etc/a"}),
                        ("copy_file", {"src": "s", "dst": "d"})))
    ask(graph)
    out = graph.invoke(Command(resume={"call_2": {"type": "reject", "args": "no"}}), cfg())
    (intr,) = out["__interrupt__"]  # call_1 is still open: nothing ran yet
    assert [r["id"] for r in intr.value] == ["call_1"]
    assert RAN == []
    out = graph.invoke(Command(resume=signed(graph, {"call_1": True})), cfg())
    assert RAN == [("delete_file", {"path": "/etc/a"})]
    assert tool_messages(out)["call_2"].status == "error"


def test_response_and_ignore_answer_the_call_without_running_it() -> None:
    policy = ApprovalPolicy(default=ApprovalRule(allow=["accept", "response", "ignore"]))
    graph = agent(calls(("read_file", {"path": "/a"}), ("read_file", {"path": "/b"})),
                  policy=policy)
    ask(graph)
    out = graph.invoke(Command(resume=[{"type": "response", "args": "It says hello."},
                                       {"type": "ignore", "args": None}]), cfg())
    assert RAN == []
    answered = tool_messages(out)
    assert answered["call_1"].content == "It says hello."
    assert answered["call_2"].status == "error" and "ignore" in answered["call_2"].content


# -- refused answers leave the thread as it was -----------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        ([{"type": "edit", "args": {"path": 5}}], InvalidEditError, "path"),
        ([{"type": "edit", "args": {"path": "/x", "bogus": 1}}], InvalidEditError, "bogus"),
        ([{"type": "edit", "args": {"action": "read_file", "args": {"path": "/x"}}}],
         InvalidEditError, "not the action"),
        ([{"type": "ignore"}], InvalidResponseError, "does not allow"),
        ([{"type": "launch"}], InvalidResponseError, "Unknown answer type"),
        ([{"type": "accept"}, {"type": "accept"}], InvalidResponseError, "2 answers"),
        ({"call_9": True}, InvalidResponseError, "unknown requests"),
        ([None], InvalidResponseError, "none of the pending"),
        ([{"type": "response", "args": ""}], InvalidResponseError, "text"),
    ],
)
def test_bad_answer_is_refused_before_anything_is_written(
    answer: Any, error: type[Exception], text: str | None
) -> None:
    RAN.clear()
    saver = InMemorySaver()
    model = ScriptedChatModel([calls(("delete_file", {"path": "/etc/a"})), "All done."])
    graph = create_react_agent(model, TOOLS, checkpointer=saver, approval=POLICY)
    ask(graph)
    before = frozen(graph, saver)
    with pytest.raises(error) as caught:
        graph.invoke(Command(resume=answer), cfg())
    if text:
        assert text in str(caught.value)
    assert frozen(graph, saver) == before
    assert RAN == []
    # The same request can still be answered properly.
    out = graph.invoke(Command(resume=signed(graph, [{"type": "accept"}])), cfg())
    assert tool_messages(out)["call_1"].content == "Deleted /etc/a"


def test_edit_is_checked_against_the_tools_schema_with_coercion() -> None:
    graph = agent(calls(("copy_file", {"src": "a", "dst": "b"})))
    ask(graph)
    with pytest.raises(InvalidEditError, match="times"):
        graph.invoke(Command(resume=signed(graph, [
            {"type": "edit", "args": {"src": "a", "dst": "b", "times": "lots"}}])), cfg())
    out = graph.invoke(Command(resume=signed(graph, [
        {"type": "edit", "args": {"src": "a", "dst": "b", "times": "3"}}])), cfg())
    assert RAN == [("copy_file", {"src": "a", "dst": "b", "times": 3})]
    assert tool_messages(out)["call_1"].content == "Copied a to b x3"


# -- approval bound to the action ------------------------------------------------------------


def test_answer_with_a_tampered_digest_is_refused() -> None:
    RAN.clear()
    saver = InMemorySaver()
    model = ScriptedChatModel([calls(("delete_file", {"path": "/etc/a"})), "All done."])
    graph = create_react_agent(model, TOOLS, checkpointer=saver, approval=POLICY)
    ask(graph)
    before = frozen(graph, saver)
    forged = "sha256:" + "0" * 64
    with pytest.raises(ApprovalMismatchError) as caught:
        graph.invoke(Command(resume=[{"type": "accept", "digest": forged}]), cfg())
    assert caught.value.got == forged
    assert frozen(graph, saver) == before and RAN == []


def test_arguments_changed_after_approval_are_refused_at_execution() -> None:
    """Approve the pending call while the same resume rewrites its arguments."""
    graph = agent(calls(("delete_file", {"path": "/etc/a"})))
    ask(graph)
    ai = graph.get_state(cfg()).values["messages"][-1]
    tampered = ai.model_copy(update={"tool_calls": [
        {**ai.tool_calls[0], "args": {"path": "/etc/passwd"}}]})
    with pytest.raises(ApprovalMismatchError, match="another proposal"):
        graph.invoke(Command(resume=signed(graph, [{"type": "accept"}]),
                             update={"messages": [tampered]}), cfg())
    assert RAN == []
    refused = [r for r in graph.get_audit_log(cfg()) if r["event"] == "refused"]
    assert refused[-1]["stage"] == "execution"
    assert "ApprovalMismatchError" in refused[-1]["error"]


def test_stale_approval_after_update_state_is_refused_at_execution() -> None:
    """A reviewer approves the request they saw; meanwhile update_state changed the call."""
    graph = agent(calls(("delete_file", {"path": "/etc/a"})))
    out = ask(graph)
    seen = out["__interrupt__"][0].value[0]
    ai = graph.get_state(cfg()).values["messages"][-1]
    graph.update_state(cfg(), {"messages": [ai.model_copy(update={"tool_calls": [
        {**ai.tool_calls[0], "args": {"path": "/etc/shadow"}}]})]}, as_node="agent")
    # The approval names what the reviewer saw; no request is pending any more.
    with pytest.raises(ApprovalMismatchError):
        graph.invoke(Command(resume=[{"type": "accept", "digest": seen["digest"]}]), cfg())
    # An answer with no digest cannot be taken for the new request either: nothing is
    # pending, so it is refused on arrival.
    with pytest.raises(NoPendingRequestError, match="Nothing is waiting"):
        graph.invoke(Command(resume=[{"type": "accept"}]), cfg())
    assert RAN == []
    # Asking again shows the call as it is now, with a new digest.
    out = graph.invoke(None, cfg())
    fresh = out["__interrupt__"][0].value[0]
    assert fresh["action_request"]["args"] == {"path": "/etc/shadow"}
    assert fresh["digest"] != seen["digest"]


def test_toolnode_approval_in_a_hand_built_graph_and_async() -> None:
    class State(TypedDict):
        messages: Annotated[list, add_messages]

    def model(state: State) -> dict[str, Any]:
        if isinstance(state["messages"][-1], ToolMessage):
            return {"messages": [AIMessage("ok")]}
        return {"messages": [AIMessage("", tool_calls=[
            {"name": "delete_file", "args": {"path": "/srv/x"}, "id": "c1"}])]}

    def route(state: State) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    builder = StateGraph(State)
    builder.add_node("model", model)
    builder.add_node("tools", ToolNode(TOOLS, approval=POLICY))
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route)
    builder.add_edge("tools", "model")
    graph = builder.compile(checkpointer=InMemorySaver())

    import asyncio

    async def run() -> Any:
        await graph.ainvoke({"messages": [HumanMessage("go")]}, cfg("a"))
        with pytest.raises(InvalidEditError):
            await graph.ainvoke(Command(resume={"c1": {"type": "edit", "args": {}}}), cfg("a"))
        shown = (await graph.aget_state(cfg("a"))).interrupts
        return await graph.ainvoke(
            Command(resume=echo_digests(shown, {"c1": {"type": "approve"}})), cfg("a"))

    RAN.clear()
    out = asyncio.run(run())
    assert RAN == [("delete_file", {"path": "/srv/x"})]
    assert out["messages"][-1].content == "ok"
    assert [r["decision"] for r in graph.get_audit_log(cfg("a")) if r["event"] == "decision"] == [
        "accept"
    ]


def test_approval_policy_type_is_checked() -> None:
    with pytest.raises(TypeError, match="ApprovalPolicy"):
        ToolNode(TOOLS, approval={"delete_file": "always"})
    with pytest.raises(ValueError, match="one place"):
        create_react_agent(ScriptedChatModel(["x"]), ToolNode(TOOLS, approval=POLICY),
                           approval=POLICY)


def test_edit_where_edits_are_not_allowed_is_refused() -> None:
    policy = ApprovalPolicy(default=ApprovalRule(allow=["accept", "reject"]))
    graph = agent(calls(("delete_file", {"path": "/etc/a"})), policy=policy)
    out = ask(graph)
    assert out["__interrupt__"][0].value[0]["config"]["allow_edit"] is False
    with pytest.raises(InvalidResponseError, match="does not allow the answer 'edit'"):
        graph.invoke(Command(resume=[{"type": "edit", "args": {"path": "/tmp/a"}}]), cfg())
    assert RAN == [] and graph.get_state(cfg()).interrupts


def test_a_batch_is_validated_as_a_whole_before_anything_is_written() -> None:
    RAN.clear()
    saver = InMemorySaver()
    model = ScriptedChatModel([calls(("delete_file", {"path": "/etc/a"}),
                                     ("copy_file", {"src": "x", "dst": "y"}),
                                     ("delete_file", {"path": "/etc/b"})), "All done."])
    graph = create_react_agent(model, TOOLS, checkpointer=saver, approval=POLICY)
    ask(graph)
    before = frozen(graph, saver)
    audit_before = graph.get_audit_log(cfg())
    with pytest.raises(InvalidEditError):  # the last answer is bad: none is applied
        graph.invoke(Command(resume=signed(graph, [True, {"type": "reject", "args": "no"},
                                                   {"type": "edit", "args": {"path": None}}])),
                     cfg())
    assert frozen(graph, saver) == before and RAN == []
    new = graph.get_audit_log(cfg())[len(audit_before):]
    assert [r["event"] for r in new] == ["refused"]  # no decision was recorded
