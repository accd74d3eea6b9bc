"""Helpers the test modules share: configs, the graphs the graph suites build again and
again, and the PostgreSQL plumbing (fixtures built on these are in ``conftest.py``).

Import what you need: ``from helpers import S, abc, cfg``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import operator
import os
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, TypedDict
from urllib.parse import quote

import pytest

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.types import StateSnapshot, interrupt

POSTGRES_URL = os.environ.get(
    "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


# -- configs ------------------------------------------------------------------------------


def cfg(thread: str = "t", **conf: Any) -> dict[str, Any]:
    """The config of a run on ``thread``; ``conf``: more configurable keys."""
    return {"configurable": {"thread_id": thread, **conf}}


# -- the graphs the graph suites share ---------------------------------------------------


class S(TypedDict):
    x: int
    log: Annotated[list, operator.add]


def logger(name: str, calls: Counter | None = None, *, is_async: bool = False) -> Any:
    """A node that appends ``name`` to the log (counting its runs in ``calls``); an
    ``async def`` one with ``is_async``."""
    if is_async:

        async def anode(state: S) -> dict:
            if calls is not None:
                calls[name] += 1
            return {"log": [name]}

        anode.__name__ = name
        return anode

    def node(state: S) -> dict:
        if calls is not None:
            calls[name] += 1
        return {"log": [name]}

    node.__name__ = name
    return node


def abc(
    *,
    b: Any = None,
    calls: Counter | None = None,
    checkpointer: Any = "new",
    is_async: bool = False,
    **compile_kw: Any,
) -> Any:
    """START -> a -> b -> c with an InMemorySaver (the spec's own example); ``b``
    replaces the middle node, ``is_async`` makes the loggers ``async def`` nodes."""
    g = StateGraph(S)
    g.add_node("a", logger("a", calls, is_async=is_async))
    g.add_node("b", b or logger("b", calls, is_async=is_async))
    g.add_node("c", logger("c", calls, is_async=is_async))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    if checkpointer == "new":
        checkpointer = InMemorySaver()
    return g.compile(checkpointer=checkpointer, **compile_kw)


def asking_b(calls: Counter, question: str = "b?", *, is_async: bool = False) -> Any:
    """A node ``b`` that asks ``question`` (``interrupt``) and logs ``b:<answer>``."""
    if is_async:

        async def ab(state: S) -> dict:
            calls["b"] += 1
            return {"log": [f"b:{interrupt(question)}"]}

        return ab

    def b(state: S) -> dict:
        calls["b"] += 1
        answer = interrupt(question)
        return {"log": [f"b:{answer}"]}

    return b


def history(app: Any, config: dict | None = None, **kw: Any) -> list[StateSnapshot]:
    return list(app.get_state_history(config or cfg(), **kw))


def with_child(c2: Any, calls: Counter, *, is_async: bool = False) -> Any:
    """START -> child, a subgraph c1 -> c2 (``c2`` given), with an InMemorySaver."""
    child = StateGraph(S)
    child.add_node("c1", logger("c1", calls, is_async=is_async))
    child.add_node("c2", c2)
    child.add_edge(START, "c1")
    child.add_edge("c1", "c2")
    g = StateGraph(S)
    g.add_node("child", child.compile())
    g.add_edge(START, "child")
    return g.compile(checkpointer=InMemorySaver())


class GraphApi:
    """Awaitable facade over a compiled graph: its sync methods (``invoke``, ``stream``,
    ``get_state``, ...) or their ``a``-twins, one choice per test run - as the saver
    conformance suite's ``Api`` does for savers. One test body, taking the ``graph_api``
    fixture, so runs through both. The node helpers (``node``, ``logger``, ``abc``,
    ``asking_b``) build ``async def`` nodes for the async run, so it goes through the
    async node path too."""

    def __init__(self, use_async: bool) -> None:
        self.use_async = use_async

    def __repr__(self) -> str:
        return f"GraphApi({'async' if self.use_async else 'sync'})"

    async def invoke(self, app: Any, input: Any, config: Any = None, **kw: Any) -> Any:
        if self.use_async:
            return await app.ainvoke(input, config, **kw)
        return app.invoke(input, config, **kw)

    async def stream(self, app: Any, input: Any, config: Any = None, **kw: Any) -> list[Any]:
        """Every chunk of the stream, in order."""
        if self.use_async:
            return [chunk async for chunk in app.astream(input, config, **kw)]
        return list(app.stream(input, config, **kw))

    async def get_state(self, app: Any, config: Any, **kw: Any) -> StateSnapshot:
        if self.use_async:
            return await app.aget_state(config, **kw)
        return app.get_state(config, **kw)

    async def update_state(self, app: Any, config: Any, values: Any, **kw: Any) -> Any:
        if self.use_async:
            return await app.aupdate_state(config, values, **kw)
        return app.update_state(config, values, **kw)

    async def history(self, app: Any, config: Any = None, **kw: Any) -> list[StateSnapshot]:
        if self.use_async:
            return [s async for s in app.aget_state_history(config or cfg(), **kw)]
        return history(app, config, **kw)

    def node(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as a node: itself, or for the async run an ``async def`` node that
        yields to the event loop once and then calls it (same parameters)."""
        if not self.use_async:
            return fn

        async def anode(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return fn(*args, **kwargs)

        anode.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
        anode.__name__ = getattr(fn, "__name__", "node")
        return anode

    def logger(self, name: str, calls: Counter | None = None) -> Any:
        return logger(name, calls, is_async=self.use_async)

    def abc(self, **kw: Any) -> Any:
        return abc(is_async=self.use_async, **kw)

    def asking_b(self, calls: Counter, question: str = "b?") -> Any:
        return asking_b(calls, question, is_async=self.use_async)

    def with_child(self, c2: Callable[..., Any], calls: Counter) -> Any:
        return with_child(self.node(c2), calls, is_async=self.use_async)


# -- PostgreSQL --------------------------------------------------------------------------


@functools.cache
def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used (probed once per session), or None when it can."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no database here"
        return f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}".strip().splitlines()[0]
    return None


def require_postgres() -> None:
    """Skip the test (with the reason) when PostgreSQL is unreachable - or, under
    CI=true, fail it: there the PostgreSQL tests must run."""
    problem = postgres_problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem} (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(problem + " (set THREADLOOM_TEST_POSTGRES_URL)")


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` as its search path."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-c search_path={schema}')}"


def drop_schemas(schemas: list[str]) -> None:
    import psycopg

    if schemas:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def schema_maker(made: list[str], prefix: str = "tl_test") -> Callable[[], str]:
    """A function that creates a new schema (listed in ``made``) and returns a URL
    using it; requires PostgreSQL (see ``require_postgres``)."""
    import uuid

    def make() -> str:
        require_postgres()
        import psycopg

        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        made.append(schema)
        return with_schema(POSTGRES_URL, schema)

    return make
