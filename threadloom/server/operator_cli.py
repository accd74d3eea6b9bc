"""Operator commands against a running server, over HTTP with the official client.

    threadloom interrupts list [--graph G] [--json]
    threadloom approve INTERRUPT_ID [--message TEXT] [--value JSON]
    threadloom reject INTERRUPT_ID [--message TEXT]
    threadloom runs list [--thread T] [--status S] [--json]

Every command takes ``--url`` (default ``$THREADLOOM_URL`` or http://127.0.0.1:2024) and
``--api-key`` (default ``$THREADLOOM_API_KEY``, else ``$LANGGRAPH_API_KEY``).

They talk to the server, not to its database: an answer given here goes through the
same checks as one from any client - the reviewer is whoever the API key belongs to,
a request already answered is refused (409, with the earlier decision), the audit log
records it - and the commands work the same against an embedded SQLite server and a
PostgreSQL deployment with many workers.

``approve``/``reject`` answer an approval request (threadloom.hitl, or any Agent Inbox
``HumanInterrupt`` list) with ``accept``/``reject`` for each request in the interrupt
(echoing its digest); a plain ``interrupt()`` is answered with ``--value`` (JSON), or
``true``/``false``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["add_operator_parsers", "run_operator_command"]

OPERATOR_COMMANDS = ("interrupts", "approve", "reject", "runs")


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None,
                        help="server URL (default $THREADLOOM_URL or http://127.0.0.1:2024)")
    parser.add_argument("--api-key", default=None,
                        help="API key (default $THREADLOOM_API_KEY or $LANGGRAPH_API_KEY)")


def add_operator_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``interrupts``, ``approve``, ``reject`` and ``runs`` subcommands."""
    interrupts = commands.add_parser("interrupts", help="pending interrupts on a server")
    sub = interrupts.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list what waits for a person")
    _connection_options(listing)
    listing.add_argument("--graph", default=None, help="only threads of this graph")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    for name, verb in (("approve", "accept"), ("reject", "reject")):
        cmd = commands.add_parser(name, help=f"{verb} a pending approval by interrupt id")
        _connection_options(cmd)
        cmd.add_argument("interrupt_id", metavar="INTERRUPT_ID")
        cmd.add_argument("--message", default=None, help="a note kept with the decision")
        if name == "approve":
            cmd.add_argument("--value", default=None, metavar="JSON",
                             help="the answer to a plain interrupt() (JSON)")
    runs = commands.add_parser("runs", help="runs on a server")
    rsub = runs.add_subparsers(dest="action", required=True)
    rlist = rsub.add_parser("list", help="list runs (of a thread, or of busy threads)")
    _connection_options(rlist)
    rlist.add_argument("--thread", default=None, help="thread id")
    rlist.add_argument("--status", default=None,
                       help="pending, running, success, error, interrupted")
    rlist.add_argument("--json", action="store_true", help="one JSON object per line")


def _url(args: argparse.Namespace) -> str:
    return str(args.url or os.environ.get("THREADLOOM_URL") or "http://127.0.0.1:2024")


def _client(args: argparse.Namespace) -> Any:
    from langgraph_sdk import get_sync_client

    key = args.api_key or os.environ.get("THREADLOOM_API_KEY") or os.environ.get(
        "LANGGRAPH_API_KEY"
    )
    return get_sync_client(url=_url(args), api_key=key)


def _threads(client: Any, **filters: Any) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        page = client.threads.search(limit=100, offset=offset, **filters)
        yield from page
        if len(page) < 100:
            return
        offset += 100


def _pending(
    client: Any, graph: str | None = None
) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    """(thread, task id, interrupt) for every pending interrupt."""
    metadata = {"graph_id": graph} if graph else None
    # a refused answer leaves the thread in "error", its interrupts still pending
    for status in ("interrupted", "error"):
        for thread in _threads(client, status=status, metadata=metadata):
            for task_id, interrupts in (thread.get("interrupts") or {}).items():
                for intr in interrupts:
                    yield thread, task_id, intr


def _requests(value: Any) -> list[dict[str, Any]] | None:
    """The approval requests an interrupt value holds (None: a plain interrupt)."""
    items = value if isinstance(value, list) else [value]
    if items and all(isinstance(i, dict) and "action_request" in i for i in items):
        return items
    return None


def _summary(value: Any) -> str:
    requests = _requests(value)
    if requests is not None:
        return "; ".join(
            r.get("description") or f"{r['action_request'].get('action')}"
            f"({json.dumps(r['action_request'].get('args'))})"
            for r in requests
        )
    return value if isinstance(value, str) else json.dumps(value)


def _list_interrupts(args: argparse.Namespace) -> int:
    client = _client(args)
    count = 0
    for thread, task_id, intr in _pending(client, args.graph):
        count += 1
        graph = (thread.get("metadata") or {}).get("graph_id")
        if args.json:
            print(json.dumps({"interrupt_id": intr["id"], "thread_id": thread["thread_id"],
                              "task_id": task_id, "graph_id": graph, "value": intr["value"]}))
        else:
            print(f"{intr['id']}  thread {thread['thread_id']}  [{graph}]  "
                  f"{_summary(intr['value'])}")
    if not args.json:
        print(f"{count} pending interrupt(s).")
    return 0


def _answer(args: argparse.Namespace, verb: str) -> int:
    from langgraph_sdk.errors import APIStatusError

    client = _client(args)
    found = next(
        ((t, i) for t, _, i in _pending(client) if i["id"] == args.interrupt_id), None
    )
    if found is None:
        print(f"threadloom {args.command}: no pending interrupt {args.interrupt_id!r} "
              "(already answered? see `threadloom interrupts list`).", file=sys.stderr)
        return 1
    thread, intr = found
    requests = _requests(intr["value"])
    if requests is not None:
        answer: Any = [
            {k: v for k, v in (("type", verb), ("digest", r.get("digest")),
                               ("message", args.message)) if v is not None}
            for r in requests
        ]
    elif getattr(args, "value", None) is not None:
        answer = json.loads(args.value)
    else:
        answer = verb == "accept"
    assistant = (thread.get("metadata") or {}).get("assistant_id") or (
        thread.get("metadata") or {}).get("graph_id")
    try:
        run = client.runs.create(thread["thread_id"], assistant,
                                 command={"resume": {intr["id"]: answer}})
        client.runs.join(thread["thread_id"], run["run_id"])
        run = client.runs.get(thread["thread_id"], run["run_id"])
    except APIStatusError as exc:
        detail = exc.response.json().get("detail") if exc.response.content else str(exc)
        print(f"threadloom {args.command}: refused ({exc.response.status_code}): {detail}",
              file=sys.stderr)
        return 1
    after = client.threads.get(thread["thread_id"])
    print(f"{verb}: interrupt {intr['id']} on thread {thread['thread_id']}: run "
          f"{run['run_id']} {run['status']}; thread now {after['status']}")
    if after.get("error"):
        print(f"  error: {after['error'].get('error')}: {after['error'].get('message')}",
              file=sys.stderr)
        return 1
    return 0


def _list_runs(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.thread:
        thread_ids = [args.thread]
    else:
        thread_ids = [t["thread_id"] for t in _threads(client, status="busy")]
    count = 0
    for tid in thread_ids:
        for run in client.runs.list(tid, limit=100, status=args.status):
            count += 1
            if args.json:
                print(json.dumps(run))
            else:
                print(f"{run['run_id']}  thread {run['thread_id']}  {run['status']:<11}  "
                      f"{run['created_at']}  [{(run.get('metadata') or {}).get('graph_id')}]")
    if not args.json:
        print(f"{count} run(s).")
    return 0


def run_operator_command(args: argparse.Namespace) -> int:
    """Dispatch an operator subcommand; its exit status (2, with one line on stderr
    saying why, when the server cannot be reached or refuses the call)."""
    import httpx

    try:
        if args.command == "interrupts":
            return _list_interrupts(args)
        if args.command == "approve":
            return _answer(args, "accept")
        if args.command == "reject":
            return _answer(args, "reject")
        return _list_runs(args)
    except httpx.HTTPStatusError as exc:  # (the official client's errors are these)
        response = exc.response
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        print(f"threadloom {args.command}: the server at {_url(args)} answered "
              f"{response.status_code}: {detail}", file=sys.stderr)
    except httpx.TransportError as exc:
        print(f"threadloom {args.command}: cannot reach the server at {_url(args)} "
              f"({type(exc).__name__}: {exc}) - is it running? --url or $THREADLOOM_URL "
              "says where", file=sys.stderr)
    return 2
