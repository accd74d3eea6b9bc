"""The seed's email workflow over HTTP, sync client: run, pause before send, resume."""

from __future__ import annotations


def test_email_workflow_pauses_and_resumes(sync_client) -> None:
    thread = sync_client.threads.create()
    out = sync_client.runs.wait(
        thread["thread_id"], "email",
        input={"messages": [{"role": "user", "content": "Send the quarterly report."}]},
    )
    assert out["messages"][-1]["content"].startswith("Draft:")
    state = sync_client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["send"]
    assert sync_client.threads.get(thread["thread_id"])["status"] == "interrupted"
    final = sync_client.runs.wait(thread["thread_id"], "email", input=None)
    assert final["messages"][-1]["content"] == "Email sent successfully."
    assert sync_client.threads.get(thread["thread_id"])["status"] == "idle"
