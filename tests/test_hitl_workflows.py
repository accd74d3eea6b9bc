"""The seed's email and file-tool workflows run with a policy, a deadline and a
two-approver rule (``examples/people_in_the_loop.py``), their audit logs show each
decision, and the "People in the loop" README section runs as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from helpers import cfg

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
SECTION_TEXT = README[README.index("## People in the loop"):]
SECTION_TEXT = SECTION_TEXT[: SECTION_TEXT.index("\n## ", 3)]
BLOCKS = re.findall(r"```python\n(.*?)```", SECTION_TEXT, flags=re.S)


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "examples" / "people_in_the_loop.py"), run_name="example")


def test_example_script_runs_all_three_stories(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "examples" / "people_in_the_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "mallory refused: ReviewerNotAllowedError" in out
    assert "alice approved: 1 of 2, still paused" in out
    assert "alice refused: DuplicateApproverError" in out
    assert "final: Email sent successfully to client@example.com." in out
    assert "call_db   [error] The reviewer rejected this call" in out
    assert "call_doc  [success] Deleted /home/me/report.docx.bak" in out
    assert "swept an hour early: []" in out
    assert "swept: approval-demo-2 call_db -> reject" in out


def test_email_workflow_audit_log_shows_each_decision(example: dict[str, Any]) -> None:
    example["email_workflow"]()
    graph = example["email_graph"]
    log = graph.get_audit_log(cfg("email-review-1"))
    assert [(r["event"], r["who"]["id"], r.get("status") or r.get("stage")) for r in log] == [
        ("refused", "mallory", "arrival"),
        ("decision", "alice", "pending"),
        ("refused", "alice", "arrival"),
        ("decision", "bob", "decided:accept"),
    ]
    decided = log[-1]
    assert decided["action"] == "send_email" and decided["digest"].startswith("sha256:")
    assert decided["args"]["to"] == "client@example.com"
    assert graph.get_state(cfg("email-review-1")).values["approved"] is True


def test_file_workflow_audit_log_shows_edit_and_reject(example: dict[str, Any]) -> None:
    example["file_workflow"]()
    log = example["file_agent"].get_audit_log(cfg("approval-demo-1"))
    edit, reject, second = log
    assert (edit["decision"], edit["request_id"], edit["who"]["id"]) == ("edit", "call_doc", "bob")
    assert edit["args_diff"]["changed"] == {
        "path": {"from": "/home/me/report.docx", "to": "/home/me/report.docx.bak"}}
    assert (edit["status"], edit["approvals"], edit["needed"]) == ("pending", 1, 2)
    assert (reject["decision"], reject["message"], reject["status"]) == (
        "reject", "Never delete the production database.", "decided:reject")
    assert (second["who"]["id"], second["decision"], second["status"]) == (
        "carol", "accept", "decided:edit")
    assert second["args"] == {"path": "/home/me/report.docx.bak"}  # approved the edited call


def test_deadline_workflow_audit_log_shows_the_sweep(example: dict[str, Any]) -> None:
    example["deadline_workflow"]()
    log = example["file_agent"].get_audit_log(cfg("approval-demo-2"))
    assert {(r["request_id"], r["decision"], r["via_deadline"], r["who"]["id"]) for r in log} == {
        ("call_doc", "reject", True, "threadloom:deadline"),
        ("call_db", "reject", True, "threadloom:deadline"),
    }


def test_readme_section_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_section_example_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    name = f"README.md[people in the loop {index}]"
    compiled = compile(BLOCKS[index], name, "exec", dont_inherit=True)
    exec(compiled, {"__name__": "readme"})
    out = capsys.readouterr().out
    if index == 0:
        text = re.search(r"```text\n(.*?)```", SECTION_TEXT, flags=re.S)
        assert text is not None and out == text.group(1)
    if index == 1:
        assert "call_c error The reviewer rejected" in out and "refused:" in out
    if index == 2:
        assert "paid 5000, approved by ['alice', 'bob']" in out
        assert "not paid: No decision was made before the deadline" in out
