"""What a SQL saver sends to its database, for whoever wants to count it.

Pass ``trace=callback`` to a SQL saver (``SqliteSaver``, ``AsyncSqliteSaver``,
``PostgresSaver``, ``AsyncPostgresSaver``, their ``from_conn_string`` too) and it calls
``callback(event)`` with a ``TraceEvent`` each time it runs a statement or a batch, or
sends or waits on its PostgreSQL run session. The hook belongs to that one saver: nothing
is installed globally, and a saver without one checks a single attribute per operation.
The callback runs inline, on the saver's thread (or event loop), while the saver holds
its locks: keep it short, and do not call the saver from it.

    events = []
    with PostgresSaver.from_conn_string(url, trace=events.append) as saver:
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, config)
    waits = [e for e in events if e.kind != "send"]  # the round trips of that run

Kinds, by connection (``docs/design.md`` counts a run's round trips with them):

* ``"data"``, a connection that runs a saver operation (SQLite: its only one):
  ``"query"``, one statement; ``"batch"``, statements that run together, all or none
  (on PostgreSQL, one round trip). A PostgreSQL operation that runs whole in one
  transaction sends its statements in a pipeline and waits only where it needs rows:
  each is still one event.
* ``"run"``, the PostgreSQL saver's run session (run locks, writes sent ahead):
  ``"send"``, a write sent ahead (``durability="async"``) without waiting for it;
  ``"statement"``, a run-lock statement alone, one round trip; ``"pipeline"``, one
  wait for the replies of ``transactions`` transactions sent together (writes sent
  ahead, and the run-lock statement and head read that went with them).

Not reported: what a saver sends around its operations - transaction control (SQLite's
``BEGIN``/``COMMIT``), ``PRAGMA``s, opening a connection or run session, and the
``PREPARE`` of a hot read (once per statement and connection).

``statements`` holds the SQL text (``?`` placeholders on the data connection, ``$1`` or
``%s`` on the run session), never the parameters: an event does not carry user data.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast

__all__ = ["Trace", "TraceEvent"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One thing a saver sent to its database (see the module)."""

    connection: Literal["data", "run"]
    kind: Literal["query", "batch", "send", "statement", "pipeline"]
    statements: tuple[str, ...]
    transactions: int = 1


Trace = Callable[[TraceEvent], None]
"""A saver's trace hook: called with each ``TraceEvent``."""


def traced_op(op: Generator[Any, Any, T], trace: Trace) -> Generator[Any, Any, T]:
    """``op`` (a saver operation: a generator of statements and batches), calling
    ``trace`` with each step it yields before the driver runs it."""
    try:
        step = next(op)
        while True:
            if isinstance(step, tuple):
                trace(TraceEvent("data", "batch", tuple(q.sql for q in step)))
            else:
                trace(TraceEvent("data", "query", (step.sql,)))
            step = op.send((yield step))
    except StopIteration as stop:
        return cast(T, stop.value)  # what a generator of T returns
    finally:
        op.close()
