"""The operator commands against a running server: list what waits, approve, reject."""

from __future__ import annotations

from threadloom.cli import main


def _cli(served, capsys, *argv: str, key: str = "key-alice") -> tuple[int, str, str]:
    code = main([*argv, "--url", served.url, "--api-key", key])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_interrupts_list_approve_reject_and_runs_list(served, sync_client, capsys) -> None:
    paid = sync_client.threads.create()["thread_id"]
    refused = sync_client.threads.create()["thread_id"]
    ids = {}
    for tid in (paid, refused):
        out = sync_client.runs.wait(tid, "payment", input={"amount": 70})
        ids[tid] = out["__interrupt__"][0]["id"]
    code, out, _ = _cli(served, capsys, "interrupts", "list", "--graph", "payment")
    assert code == 0
    assert f"{ids[paid]}  thread {paid}  [payment]" in out
    code, _, err = _cli(served, capsys, "approve", ids[paid], key="key-mallory")
    assert code == 1 and "mallory" in err  # an intern may not decide
    code, out, _ = _cli(served, capsys, "approve", ids[paid])
    assert code == 0 and "thread now idle" in out
    assert sync_client.threads.get_state(paid)["values"]["outcome"] == "paid"
    code, out, _ = _cli(served, capsys, "reject", ids[refused], "--message", "too much")
    assert code == 0
    assert sync_client.threads.get_state(refused)["values"]["outcome"] == "refused"
    code, _, err = _cli(served, capsys, "approve", ids[paid])
    assert code == 1 and "no pending interrupt" in err
    code, out, _ = _cli(served, capsys, "runs", "list", "--thread", paid)
    assert code == 0 and out.count(f"thread {paid}") == 3 and "success" in out
