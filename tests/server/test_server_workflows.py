"""The seed's three workflows and parallel interrupts, through the official client."""

from __future__ import annotations

from typing import Any

HUMAN = {"messages": [{"role": "user", "content": "Delete the file /tmp/old_data.csv"}]}


def test_tool_call_approval_with_corrected_call_sync(sync_client) -> None:
    """Workflow 2: pause before tools, rewrite the call as the agent, resume."""
    tid = sync_client.threads.create()["thread_id"]
    sync_client.runs.wait(tid, "tool_agent", input=HUMAN)
    state = sync_client.threads.get_state(tid)
    assert state["next"] == ["tools"]
    call = state["values"]["messages"][-1]["tool_calls"][0]
    assert call["name"] == "delete_file"
    corrected = {
        "type": "ai", "content": "", "id": state["values"]["messages"][-1]["id"],
        "tool_calls": [{"id": call["id"], "name": "read_file",
                        "args": {"path": "/tmp/old_data.csv"}}],
    }
    sync_client.threads.update_state(tid, {"messages": [corrected]}, as_node="agent")
    assert sync_client.threads.get_state(tid)["next"] == ["tools"]
    final = sync_client.runs.wait(tid, "tool_agent", input=None)
    tool_msgs = [m for m in final["messages"] if m["type"] == "tool"]
    assert tool_msgs[-1]["content"] == "Contents of /tmp/old_data.csv: ..."
    assert final["messages"][-1]["content"].startswith("Done: Contents")


async def test_plan_review_interrupt_and_resume_async(client) -> None:
    """Workflow 3: interrupt() in review; the thread shows it; resume with command."""
    tid = (await client.threads.create())["thread_id"]
    out = await client.runs.wait(tid, "plan", input={"messages": []})
    [pending] = out["__interrupt__"]
    assert pending["value"].startswith("Please review the plan")
    thread = await client.threads.get(tid)
    assert thread["status"] == "interrupted"
    [(task_id, [intr])] = thread["interrupts"].items()
    assert intr["id"] == pending["id"]
    found = await client.threads.search(status="interrupted", metadata={"graph_id": "plan"},
                                        limit=100)
    assert tid in [t["thread_id"] for t in found]
    final = await client.runs.wait(tid, "plan", command={"resume": "approve"})
    assert final["messages"][-1]["content"] == "Executing the plan now."
    thread = await client.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}


def test_parallel_interrupts_answered_by_id(sync_client) -> None:
    tid = sync_client.threads.create()["thread_id"]
    out = sync_client.runs.wait(tid, "parallel", input={"answers": []})
    by_value = {i["value"]: i["id"] for i in out["__interrupt__"]}
    assert set(by_value) == {"legal ok?", "finance ok?"}
    # one answer by id: that task completes, the other stays pending
    sync_client.runs.wait(tid, "parallel", command={"resume": {by_value["legal ok?"]: "yes"}})
    thread = sync_client.threads.get(tid)
    assert thread["status"] == "interrupted"
    left = [i["value"] for group in thread["interrupts"].values() for i in group]
    assert left == ["finance ok?"]
    final = sync_client.runs.wait(
        tid, "parallel", command={"resume": {by_value["finance ok?"]: "fine"}}
    )
    assert sorted(final["answers"]) == ["finance:fine", "legal:yes"]
    assert sync_client.threads.get(tid)["status"] == "idle"


async def test_email_workflow_streamed_values_and_updates(client) -> None:
    """Workflow 1 streamed: metadata first, values/updates events, the static pause."""
    tid = (await client.threads.create())["thread_id"]
    parts: list[Any] = [
        p async for p in client.runs.stream(
            tid, "email", input={"messages": [{"role": "user", "content": "report"}]},
            stream_mode=["values", "updates"],
        )
    ]
    assert parts[0].event == "metadata"
    assert parts[0].data["run_id"]
    updates = [p.data for p in parts if p.event == "updates"]
    assert "draft" in updates[0]
    assert updates[-1] == {"__interrupt__": []}
    values = [p.data for p in parts if p.event == "values"]
    assert values[-1]["messages"][-1]["content"].startswith("Draft:")
