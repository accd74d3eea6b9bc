"""Round-trip accounting of one approval cycle, per saver (the figures of docs/design.md).

The cycle is ``bench.programs.run_approval_cycle``: invoke to the pause, ``get_state``,
``update_state``, invoke to the end. It runs once on a warm-up thread, then once more on
a new thread while this script records, in order:

* the saver calls the engine makes (``lock_thread``, ``get_tuple``, ``put``,
  ``put_writes``), the same on every saver;
* SQLite: each step of the shared SQL core's operations, a statement (``query``) or a
  batch of statements run together (``batch<n>``), one transaction per saver call;
* PostgreSQL: each time the saver waits for the server's replies - a statement on its
  run session (a run lock taken or released, when nothing was sent ahead), a pipeline
  of transactions on the run session (writes sent ahead, read back with the lock or
  its release), or a step on a data connection.

    .venv/bin/python bench/round_trips.py [--postgres URL]

It wraps private saver methods to observe them; it changes nothing they do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.api import load_api  # noqa: E402
from bench.programs import approval_graph, run_approval_cycle  # noqa: E402
from threadloom.checkpoint._sql.statements import Query  # noqa: E402

API = load_api("threadloom")


def _step_name(step: Any) -> str:
    return "query" if isinstance(step, Query) else f"batch{len(step)}"


def _spy_op(op: Generator[Any, Any, Any], log: list[str], prefix: str) -> Generator[Any, Any, Any]:
    """``op`` (a generator of the SQL core's steps), logging each step it yields."""
    step = next(op)
    while True:
        log.append(prefix + _step_name(step))
        reply = yield step
        try:
            step = op.send(reply)
        except StopIteration as stop:
            return stop.value


def _record_calls(saver: Any, log: list[str]) -> None:
    for name in ("get_tuple", "put", "put_writes"):
        real = getattr(saver, name)

        def call(*args: Any, _real: Callable[..., Any] = real, _name: str = name,
                 **kwargs: Any) -> Any:
            log.append(f"{_name}")
            return _real(*args, **kwargs)

        setattr(saver, name, call)
    real_lock = saver.lock_thread

    @contextlib.contextmanager
    def lock_thread(*args: Any, **kwargs: Any) -> Iterator[Any]:
        log.append("lock_thread")
        with real_lock(*args, **kwargs) as held:
            yield held
        log.append("(run lock released)")

    saver.lock_thread = lock_thread


def _record_sql(saver: Any, log: list[str], prefix: str) -> None:
    real_run = saver._run

    def run(op: Generator[Any, Any, Any], **kwargs: Any) -> Any:
        return real_run(_spy_op(op, log, prefix), **kwargs)

    saver._run = run


def _cycle(saver: Any, log: list[str]) -> None:
    graph = approval_graph(API, saver)
    run_approval_cycle(API, graph, "warm-up")
    log.clear()
    run_approval_cycle(API, graph, "counted")


def _report(name: str, log: list[str], waits: Callable[[str], bool]) -> None:
    calls = [line for line in log if not line.startswith(("  ", "("))]
    print(f"== {name}: {len(calls)} saver calls, {sum(map(waits, log))} waits on the database")
    for line in log:
        print("   " + line)


def memory() -> None:
    from threadloom.checkpoint.memory import InMemorySaver

    log: list[str] = []
    saver = InMemorySaver()
    _record_calls(saver, log)
    _cycle(saver, log)
    _report("memory", log, lambda line: False)


def sqlite() -> None:
    from threadloom.checkpoint.sqlite import SqliteSaver

    log: list[str] = []
    path = os.path.join(tempfile.mkdtemp(), "round_trips.sqlite")
    with SqliteSaver.from_conn_string(path) as saver:
        _record_calls(saver, log)
        _record_sql(saver, log, "  sql ")
        _cycle(saver, log)
    _report("sqlite (each sql step: a statement or a batch; no network)", log,
            lambda line: line.startswith("  sql"))


def postgres(url: str) -> None:
    import threadloom.checkpoint.postgres._runsession as runsession
    from threadloom.checkpoint.postgres import PostgresSaver

    log: list[str] = []
    real_reply, real_drain = runsession._reply, runsession.RunSession.drain

    def reply(pgconn: Any) -> Generator[Any, Any, Any]:
        log.append("  run session: one statement")
        return (yield from real_reply(pgconn))

    def drain(self: Any) -> Generator[Any, Any, Any]:
        if self.sent:
            log.append(f"  run session: a pipeline of {len(self.sent)} transactions")
        return (yield from real_drain(self))

    runsession._reply = reply  # type: ignore[assignment]
    runsession.RunSession.drain = drain  # type: ignore[method-assign]
    try:
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            _record_calls(saver, log)
            _record_sql(saver, log, "  data connection: ")
            _cycle(saver, log)
    finally:
        runsession._reply = real_reply
        runsession.RunSession.drain = real_drain  # type: ignore[method-assign]
    _report("postgres", log, lambda line: line.startswith("  "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--postgres", help="a PostgreSQL URL (its schema is created)")
    args = parser.parse_args()
    memory()
    sqlite()
    if args.postgres:
        postgres(args.postgres)


if __name__ == "__main__":
    main()
