"""Statements per approval round trip, by process, on PostgreSQL - counted, not timed.

    .venv/bin/python bench/statements.py [--workers 1] [--rounds 40] [--concurrency 1]
        [--postgres postgresql://postgres@127.0.0.1/test] [--all]

Starts ``threadloom serve`` and ``--workers`` ``threadloom worker`` processes on a new
database (as ``bench/server.py`` does) with libpq's protocol trace on every psycopg
connection they open, drives ``--rounds`` approval round trips (create a thread,
``runs.wait`` until the approval pauses, ``runs.wait`` the resume; ``--concurrency`` at
a time), and prints the statements each process sent per round trip (each
``Execute`` or simple ``Query`` message, with its SQL), the server storage's and the
checkpointer's alike. The start-up's statements are left out: the same setup is run
twice, with 4 and with 4 + ``--rounds`` round trips, and only the difference counts.
Counts are deterministic where timings on a shared machine are not (with one worker and
``--concurrency 1``; more of either adds claims that find nothing, which vary).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import re
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import (  # noqa: E402  (the repository root on the path first)
    _config,
    _postgres_database,
    _stop,
)
from threadloom.server.embedded import wait_until_up  # noqa: E402

TRACE_DIR = "THREADLOOM_BENCH_TRACE_DIR"


def _traced_cli(argv: list[str]) -> None:
    """Run ``threadloom`` with ``argv``, tracing every psycopg connection it opens into
    a file of its own under ``$THREADLOOM_BENCH_TRACE_DIR``."""
    import psycopg
    from psycopg import pq

    numbers = itertools.count()
    files: list[Any] = []  # open until the process exits (C's exit flushes them)

    def trace(conn: Any) -> Any:
        out = open(os.path.join(os.environ[TRACE_DIR],  # noqa: SIM115
                                f"{os.getpid()}-{next(numbers)}.trace"), "w")
        files.append(out)
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return conn

    aconnect = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    async def traced_aconnect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return trace(await aconnect(cls, *args, **kwargs))

    def traced_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        return trace(connect(cls, *args, **kwargs))

    psycopg.AsyncConnection.connect = classmethod(traced_aconnect)  # type: ignore[assignment]
    psycopg.Connection.connect = classmethod(traced_connect)  # type: ignore[assignment]
    sys.argv = ["threadloom", *argv]
    runpy.run_module("threadloom.cli", run_name="__main__")


def statements(path: Path) -> list[str]:
    """The statements a trace file shows the client sending, in order (SQL, one line)."""
    messages: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if line[:2] in ("F\t", "B\t"):
            messages.append(line)
        elif messages:  # a message's SQL spanning lines
            messages[-1] += " " + line.strip()
    prepared: dict[str, str] = {}
    bound = "?"
    out = []
    for message in messages:
        parts = message.split("\t", 3)
        if parts[0] != "F" or len(parts) < 3:
            continue
        kind, rest = parts[2], parts[3] if len(parts) > 3 else ""
        if kind == "Query":
            out.append(" ".join(rest.split()).strip('"'))
        elif kind == "Parse" and (m := re.match(r' "([^"]*)" "(.*)" \d+', rest, re.S)):
            prepared[m.group(1)] = " ".join(m.group(2).split())
        elif kind == "Bind" and (m := re.match(r' "([^"]*)" "([^"]*)"', rest)):
            bound = prepared.get(m.group(2), "?")
        elif kind == "Execute":
            out.append(bound)
    return out


async def _round_trips(url: str, rounds: int, concurrency: int) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key=None, timeout=120)

    async def one() -> None:
        tid = (await client.threads.create())["thread_id"]
        paused = await client.runs.wait(tid, "payment", input={"amount": 10})
        assert paused["__interrupt__"], paused
        done = await client.runs.wait(tid, "payment", command={"resume": "approve"})
        assert done["outcome"] == "paid", done

    for start in range(0, rounds, concurrency):
        await asyncio.gather(*(one() for _ in range(min(concurrency, rounds - start))))


def _count(folder: Path, database: str, workers: int, rounds: int, concurrency: int
           ) -> dict[str, collections.Counter[str]]:
    """Serve, drive ``rounds`` round trips, stop; the statements by process role."""
    from threadloom.server.embedded import free_port

    traces = Path(tempfile.mkdtemp(dir=folder))
    env = {**os.environ, TRACE_DIR: str(traces)}
    port = free_port()
    me = [sys.executable, __file__, "--as-cli"]
    config = str(_config(folder))
    procs = [subprocess.Popen([*me, "serve", "--config", config, "--port", str(port),
                               "--dev", "--log-level", "warning", "--database", database],
                              cwd=folder, env=env)]
    procs += [subprocess.Popen([*me, "worker", "--config", config, "--log-level", "warning",
                                "--database", database], cwd=folder, env=env)
              for _ in range(workers)]
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, procs[0])
        time.sleep(1.0)  # the workers' start-up
        asyncio.run(_round_trips(url, rounds, concurrency))
        time.sleep(0.5)
    finally:
        _stop(procs)
    roles = {procs[0].pid: "api", **{p.pid: f"worker {i}" for i, p in enumerate(procs[1:], 1)}}
    found: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for path in traces.glob("*.trace"):
        pid = int(path.name.split("-", 1)[0])
        found[roles.get(pid, str(pid))].update(statements(path))
    return found


def main() -> None:
    if sys.argv[1:2] == ["--as-cli"]:
        _traced_cli(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get(
        "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--all", action="store_true",
                        help="list every statement (default: those of at least 0.05 per "
                             "round trip)")
    args = parser.parse_args()
    warm = 4
    with tempfile.TemporaryDirectory() as tmp, _postgres_database(args.postgres) as database:
        base = _count(Path(tmp), database, args.workers, warm, 1)
        full = _count(Path(tmp), database, args.workers, warm + args.rounds,
                      args.concurrency)
    total = 0.0
    for role in sorted(full):
        diff = full[role] - base.get(role, collections.Counter())
        per = sum(diff.values()) / args.rounds
        total += per
        print(f"{role}: {per:.2f} statements per round trip")
        for sql, count in diff.most_common():
            if args.all or count / args.rounds >= 0.05:
                print(f"  {count / args.rounds:6.2f}  {sql[:120]}")
    print(f"total: {total:.2f} statements per round trip")


if __name__ == "__main__":
    main()
