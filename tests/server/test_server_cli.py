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


def test_a_refused_or_unreachable_server_is_one_line_and_status_2(served, capsys) -> None:
    """A wrong API key, a server that is not there: the command says so in one line on
    stderr and ends with status 2 - not a traceback of the HTTP client."""
    for argv in (["interrupts", "list"], ["runs", "list"], ["approve", "0" * 32]):
        code, out, err = _cli(served, capsys, *argv, key="no-such-key")
        assert code == 2 and out == "", (argv, out)
        assert err.count("\n") == 1 and "answered 401" in err and "API key" in err, err
    from threadloom.server.embedded import free_port

    nowhere = f"http://127.0.0.1:{free_port()}"
    code = main(["runs", "list", "--url", nowhere])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"cannot reach the server at {nowhere}" in err and "Traceback" not in err
