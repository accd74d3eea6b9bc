"""The approval inbox in a real browser: Playwright driving Debian's chromium
(``/usr/bin/chromium``; ``.ci/run`` installs it, nothing downloads a browser).

Two reviewers with different roles sign in - alice (ops, finance) and bob (finance) -
and approve, edit (seeing the diff), reject with a reason, answer a batch of two tool
calls at once, watch a deadline expire, reach a 2-of-2 quorum, see a decision overtaken
by someone else refused, and read the audit view. The first test uses the keyboard
alone; screenshots of the list and the decision page are checked to be non-blank.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from inbox_support import ALICE, BOB, Inbox, cleanup_request, email_request, refund, seed_call

pytest.importorskip("playwright")

CHROMIUM = Path(os.environ.get("THREADLOOM_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"no browser at {CHROMIUM}: apt-get install chromium (.ci/run does)",
)
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(width=1000)``: a page in a fresh browser context (its own session
    storage: one signed-in reviewer); JavaScript errors fail the test."""
    contexts = []
    errors: list[str] = []

    def make(width: int = 1000, height: int = 900) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height},
                                      accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == []


def sign_in(page: Any, inbox: Inbox, key: str) -> None:
    """Sign in with the keyboard: the key field has the focus, Enter submits."""
    page.goto(inbox.url + "/inbox")
    page.wait_for_selector("#key:focus")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#stream-state[data-state=open]")


def row(page: Any, thread_id: str, action: str | None = None) -> Any:
    selector = f'.row[data-key^="{thread_id}/"]'
    if action:
        selector += f'[data-action="{action}"]'
    return page.locator(selector)


def open_request(page: Any, inbox: Inbox, thread_id: str, request_id: str) -> None:
    page.goto(f"{inbox.url}/inbox#/r/{thread_id}/{request_id}")
    page.wait_for_selector("#decide-form")


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def choose(page: Any, request_id: str, kind: str) -> None:
    page.check(f"#choice-{request_id}-{kind}")


def submit(page: Any) -> Any:
    page.click("#submit")
    page.wait_for_selector("#outcome h2, #decide-error:not(:empty)")
    return page


def assert_not_blank(path: Path) -> None:
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        gray = image.convert("L")
        assert gray.width > 300 and gray.height > 300
        assert ImageStat.Stat(gray).stddev[0] > 10, f"{path} looks blank"
        assert len(gray.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 16


def test_keyboard_only_approval_roles_and_screenshots(
    inbox: Inbox, open_page: Any, tmp_path: Path
) -> None:
    thread = inbox.start("files", seed_call())
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    assert alice.inner_text("#who-name") == "alice"
    assert "ops, finance" in alice.inner_text("#who-roles")
    entry = row(alice, thread, "delete_file")
    entry.wait_for()
    assert 'path="/tmp/old_data.csv"' in entry.inner_text()
    assert "asked by carol" in entry.inner_text()
    alice.screenshot(path=str(tmp_path / "list.png"), full_page=True)
    # keyboard only: Tab to the row, Enter; Tab to "Approve", Space; Tab to submit, Enter
    tab_to(alice, f'.row[data-key^="{thread}/"] a')
    alice.keyboard.press("Enter")
    alice.wait_for_selector("#decide-form")
    assert alice.inner_text("h1") == "Decide: delete_file"
    assert alice.inner_text("#deciding-as") == "alice"
    choices = alice.locator("fieldset.choices input[type=radio]")
    assert [c.get_attribute("value") for c in choices.all()] == [
        "accept", "edit", "response", "reject"]  # only what the request allows
    tab_to(alice, "#choice-call_delete-accept")
    alice.keyboard.press("Space")
    alice.screenshot(path=str(tmp_path / "decision.png"), full_page=True)
    tab_to(alice, "#submit")
    alice.keyboard.press("Enter")
    alice.wait_for_selector("#outcome h2")
    outcome = alice.inner_text("#outcome")
    assert "Decision recorded" in outcome and "alice accept delete_file" in outcome
    assert "Deleted /tmp/old_data.csv" in inbox.state(thread)["messages"][-1]["content"]
    for name in ("list.png", "decision.png"):
        assert_not_blank(tmp_path / name)
    # bob (finance only) never sees what is for ops
    other = inbox.start("files", seed_call("/tmp/b.csv"))
    email = inbox.start("email", email_request())
    bob = open_page()
    sign_in(bob, inbox, BOB)
    assert "roles: finance" in bob.inner_text("#who-roles")
    row(bob, email).wait_for()
    assert row(bob, other).count() == 0
    assert bob.locator(".row[data-action=delete_file]").count() == 0


def test_phone_width_is_readable(inbox: Inbox, open_page: Any) -> None:
    thread = inbox.start("email", email_request())
    page = open_page(width=375, height=740)
    sign_in(page, inbox, BOB)
    row(page, thread).wait_for()
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    assert page.evaluate(fits)
    open_request(page, inbox, thread, "send_email")
    assert page.evaluate(fits)


def test_edit_shows_the_diff_before_submitting(inbox: Inbox, open_page: Any) -> None:
    thread = inbox.start("refund", refund())
    bob = open_page()
    sign_in(bob, inbox, BOB)
    open_request(bob, inbox, thread, "refund")
    assert bob.locator("fieldset.choices input").count() == 5  # every answer is allowed
    choose(bob, "refund", "edit")
    amount = bob.locator("#edit-refund-amount")
    assert amount.get_attribute("type") == "number"  # the form follows the schema
    amount.fill("99")
    diff = bob.locator(".edit-panel table.diff")
    diff.wait_for()
    assert "amount" in diff.inner_text()
    assert diff.locator("del").inner_text() == "129.9"
    assert diff.locator("ins").inner_text() == "99"
    submit(bob)
    assert "bob edit issue_refund" in bob.inner_text("#outcome")
    assert inbox.state(thread)["outcome"] == "refunded 99.00 EUR"


def test_reject_with_a_reason(inbox: Inbox, open_page: Any) -> None:
    thread = inbox.start("files", seed_call("/etc/hosts"))
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    open_request(alice, inbox, thread, "call_delete")
    choose(alice, "call_delete", "reject")
    alice.fill("#message-call_delete", "Never delete system files.")
    submit(alice)
    assert "Never delete system files." in alice.inner_text("#outcome")
    tool = [m for m in inbox.state(thread)["messages"] if m["type"] == "tool"][-1]
    assert "Never delete system files." in tool["content"]


def test_a_batch_of_two_is_answered_together(inbox: Inbox, open_page: Any) -> None:
    thread = inbox.start("files", cleanup_request())
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    row(alice, thread).first.wait_for()
    assert row(alice, thread).count() == 2
    assert "batch of 2" in row(alice, thread).first.inner_text()
    row(alice, thread).first.locator("a").click()
    alice.wait_for_selector("#decide-form")
    assert alice.locator("fieldset.request").count() == 2
    assert alice.inner_text("#submit") == "Submit 2 decisions together"
    choose(alice, "call_tmp", "accept")
    alice.click("#submit")  # one is still undecided: nothing is sent
    assert "Choose a decision for delete_file (call_doc)" in alice.inner_text("#decide-error")
    choose(alice, "call_doc", "reject")
    alice.fill("#message-call_doc", "Keep the report.")
    submit(alice)
    lines = alice.locator("#outcome li").all_inner_texts()
    assert len(lines) == 2
    assert "accept delete_file (call_tmp)" in lines[0]
    assert "reject delete_file (call_doc)" in lines[1] and "Keep the report." in lines[1]


def test_a_deadline_expires_live_and_a_late_decision_is_refused(
    inbox: Inbox, open_page: Any
) -> None:
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    bob = open_page()
    sign_in(bob, inbox, BOB)
    thread = inbox.start("refund", refund(seconds=6))
    entry = row(alice, thread)
    entry.wait_for()  # arrives live, without reloading
    assert "due in" in entry.inner_text()
    open_request(bob, inbox, thread, "refund")
    choose(bob, "refund", "accept")
    entry.wait_for(state="detached")  # the server applied the deadline
    activity = alice.inner_text("#activity")
    assert "issue_refund expired: its deadline decided reject" in activity
    bob.wait_for_selector("#changed:not([hidden])")
    submit(bob)
    error = bob.inner_text("#decide-error")
    assert "Refused: this decision was overtaken" in error
    assert "expired: its deadline decided 'reject'" in error
    assert inbox.state(thread)["outcome"] == "reject: Nobody decided the refund in time."


def test_two_of_two_quorum_and_the_audit_view(inbox: Inbox, open_page: Any) -> None:
    thread = inbox.start("email", email_request())
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    bob = open_page()
    sign_in(bob, inbox, BOB)
    bob_row = row(bob, thread)
    bob_row.wait_for()
    assert "0 of 2 approvals" in bob_row.inner_text()
    open_request(alice, inbox, thread, "send_email")
    choose(alice, "send_email", "accept")
    submit(alice)
    assert "pending" in alice.inner_text("#outcome")
    bob.wait_for_function(  # bob's list follows, live
        "k => document.querySelector(`.row[data-key^='${k}/'] .quorum`)?.textContent"
        " === '1 of 2 approvals'", arg=thread)
    bob_row.locator("a").click()
    bob.wait_for_selector("#decide-form")
    assert "approved so far by alice" in bob.inner_text("fieldset.request")
    choose(bob, "send_email", "accept")
    submit(bob)
    assert "decided:accept" in bob.inner_text("#outcome")
    # the audit view: who, when, what, the chain verified, JSON Lines
    bob.click("#outcome a[href^='#/audit/']")
    bob.wait_for_selector("#chain")
    assert bob.get_attribute("#chain", "data-verified") == "true"
    table = bob.locator("table.audit tbody tr")
    assert table.count() == 2
    assert [table.nth(i).locator("td").nth(2).inner_text() for i in range(2)] == [
        "alice", "bob"]
    assert "accept send_email" in table.nth(1).inner_text()
    with bob.expect_download() as download:
        bob.click("#export")
    lines = [json.loads(line) for line in
             Path(download.value.path()).read_text().splitlines()]
    assert [r["who"]["id"] for r in lines] == ["alice", "bob"]


def test_a_decision_overtaken_by_another_reviewer_is_refused(
    inbox: Inbox, open_page: Any
) -> None:
    thread = inbox.start("refund", refund())
    alice, bob = open_page(), open_page()
    sign_in(alice, inbox, ALICE)
    sign_in(bob, inbox, BOB)
    open_request(alice, inbox, thread, "refund")
    open_request(bob, inbox, thread, "refund")
    choose(alice, "refund", "accept")
    submit(alice)
    bob.wait_for_selector("#changed:not([hidden])")
    assert "alice answered issue_refund" in bob.inner_text("#changed")
    choose(bob, "refund", "reject")
    submit(bob)
    error = bob.inner_text("#decide-error")
    assert "already answered: 'accept' by alice" in error
    assert bob.get_attribute("#decide-error", "data-reason") == "overtaken"
    assert inbox.state(thread)["outcome"] == "refunded 129.90 EUR"


def test_a_plain_interrupt_is_answered_and_a_breakpoint_resumed(
    inbox: Inbox, open_page: Any
) -> None:
    """A plain ``interrupt(value)`` and a static ``interrupt_before`` pause are listed
    beside the approvals; the page shows the value, sends a JSON answer, resumes the
    pause, and refuses a second answer as overtaken."""
    asked = inbox.start("question", {"topic": "graphs"})
    paused = inbox.start("publish", {"topic": "graphs"})
    bob = open_page()
    sign_in(bob, inbox, BOB)
    row(bob, asked, "answer").wait_for()
    assert "Which title should the post have?" in row(bob, asked, "answer").inner_text()
    assert "Resume" in row(bob, paused, "resume").inner_text()
    row(bob, asked, "answer").locator("a").click()
    bob.wait_for_selector("#decide-form")
    (question,) = inbox.rows(BOB, asked)
    assert '"topic": "graphs"' in bob.inner_text(".interrupt-value")
    bob.check(f"#as-{question['request_id']}-json")
    bob.fill(f"#answer-{question['request_id']}", "{not json")
    submit(bob)
    assert "not valid JSON" in bob.inner_text("#decide-error")
    bob.fill(f"#answer-{question['request_id']}", '{"title": "Graphs, gently"}')
    bob.click("#submit")
    bob.wait_for_selector("#outcome h2")
    assert "bob answer answer" in bob.inner_text("#outcome")
    assert inbox.state(asked)["title"] == '{"title": "Graphs, gently"}'
    # the breakpoint: alice opens it too, bob resumes first, alice is refused
    alice = open_page()
    sign_in(alice, inbox, ALICE)
    open_request(alice, inbox, paused, "resume")
    assert "Next: publish" in alice.inner_text("#decide-form")
    open_request(bob, inbox, paused, "resume")
    choose(bob, "resume", "resume")
    assert bob.inner_text("#submit") == "Resume"
    submit(bob)
    assert "bob resume resume" in bob.inner_text("#outcome")
    assert inbox.state(paused)["published"] == "published: Notes on graphs"
    choose(alice, "resume", "resume")
    submit(alice)
    assert "already answered: 'resume' by bob" in alice.inner_text("#decide-error")
    assert alice.get_attribute("#decide-error", "data-reason") == "overtaken"
