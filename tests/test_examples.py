"""The seed's examples run as scripts and do what the seed says; the demo's paths work."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from threadloom import demo

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )
    return proc.stdout


def test_email_approval_pauses_before_send_then_sends() -> None:
    out = run_example("email_approval.py")
    assert "Paused state: Draft: Dear client, here is the report..." in out
    assert "Next node to run: ('send',)" in out
    assert "Final: Email sent successfully." in out
    assert "interrupt_after next: ('send',)" in out


def test_plan_review_interrupt_approve_and_revise() -> None:
    out = run_example("plan_review.py")
    assert "Paused with: Please review the plan above" in out
    assert "Final: Executing the plan now." in out
    out = run_example("plan_review.py", "add a rollback step")
    assert "Final: Revising plan based on: add a rollback step" in out


def test_tool_approval_downgrade_runs_read_file_not_delete() -> None:
    out = run_example("tool_approval.py", "downgrade")
    assert "Pending tool calls: [{'name': 'delete_file'" in out
    assert "Contents of /tmp/old_data.csv" in out
    assert "Deleted" not in out


def test_tool_approval_approve_runs_delete() -> None:
    out = run_example("tool_approval.py", "approve")
    assert "Deleted /tmp/old_data.csv" in out


def answers(*lines: str) -> demo.Ask:
    return demo.make_asker(False, io.StringIO("".join(f"{line}\n" for line in lines)))


def test_demo_yes_approves_everything(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--yes"]) == 0
    out = capsys.readouterr().out
    assert "Email sent: 'Dear client, here is the quarterly report.'" in out
    assert "Deleted /tmp/old_data.csv" in out


def test_demo_email_edit_and_reject() -> None:
    assert demo.email_workflow(answers("e", "Revised text")) == "Email sent: 'Revised text'"
    assert demo.email_workflow(answers("r")) == "Email cancelled by the reviewer."


def test_demo_tool_paths() -> None:
    assert "Deleted /tmp/old_data.csv" in demo.tool_workflow(answers("a"))
    assert "Deleted /tmp/keep.csv" in demo.tool_workflow(answers("e", "/tmp/keep.csv"))
    assert "Contents of /tmp/old_data.csv" in demo.tool_workflow(answers("d"))
    rejected = demo.tool_workflow(answers("r", "not today"))
    assert "Rejected by the reviewer: not today" in rejected


def test_demo_end_of_input_takes_safe_default() -> None:
    ask = demo.make_asker(False, io.StringIO(""))
    assert ask("question?", "a") == "a"


def test_demo_uses_chat_openai_when_a_key_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OPENAI_API_KEY and OPENAI_BASE_URL set, the demo's agent talks to that server."""
    pytest.importorskip("langchain_openai")
    from openai_server import OpenAIStub

    with OpenAIStub([
        {"tool_calls": [{"name": "delete_file", "args": {"path": "/tmp/real.csv"}}]},
        "All done, the file is gone.",
    ]) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        model = demo.make_model()
        assert type(model).__name__ == "ChatOpenAI"
        outcome = demo.tool_workflow(answers("a"), model)
    assert outcome == "All done, the file is gone."
    assert len(server.requests) == 2
    tool_names = {t["function"]["name"] for t in server.requests[0]["tools"]}
    assert tool_names == {"delete_file", "read_file"}
    # The second request carries the tool's result back to the model.
    assert any(m.get("role") == "tool" and "Deleted /tmp/real.csv" in m.get("content", "")
               for m in server.requests[1]["messages"])


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("approve", "Result: Deleted /tmp/old_data.csv"),
        ("edit", "Result: Deleted /tmp/old_data.csv.bak"),
        ("replace", "Result: Contents of /tmp/old_data.csv: ..."),
        ("reject", "Result: Rejected by the reviewer: deleting files is not allowed."),
    ],
)
def test_react_agent_approval_paths(choice: str, expected: str) -> None:
    out = run_example("react_agent_approval.py", choice)
    assert "Proposed: delete_file {'path': '/tmp/old_data.csv'}" in out
    assert f"Agent: {expected}" in out


needs_langchain = pytest.mark.skipif(
    importlib.util.find_spec("langchain") is None,
    reason="examples/langchain_agent_hitl.py needs LangChain v1 (pip install --no-deps "
    "langchain): not installed in this environment",
)


@needs_langchain
@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("approve", "Tool said: Deleted /tmp/old_data.csv"),
        ("edit", "Deleted /tmp/scratch.csv"),
        ("reject", "User rejected the tool call for `delete_file` with reason: Keep that file"),
    ],
)
def test_langchain_agent_hitl_pauses_in_one_process_resumes_in_another(
    choice: str, expected: str
) -> None:
    out = run_example("langchain_agent_hitl.py", choice)
    assert "Paused for approval: delete_file {'path': '/tmp/old_data.csv'}" in out
    assert "Pending in a new process: 1 approval request(s)" in out
    assert expected in out
    assert "Final: Result:" in out
