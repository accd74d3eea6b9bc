"""The checkpoint conformance spec (PyPI ``langgraph-checkpoint-conformance``)
against the five savers at their LangGraph import paths: threadloom's (the alias), or
LangGraph's own under `run.py --reference`.

Each saver is validated exactly as the spec's own ``validate()`` does
(capability detection on the class, a fresh saver per capability); every
spec test's outcome is appended to ``$THREADLOOM_COMPAT_RESULTS`` so the
runner can count tests, not savers. A base capability the saver does not
implement counts each of its spec tests as failed; an optional one as skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from importlib import import_module

import psycopg
import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import tuple_row

POSTGRES_URL = os.environ.get(
    "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SPEC_LISTS = {
    "put": ("test_put", "ALL_PUT_TESTS"),
    "put_writes": ("test_put_writes", "ALL_PUT_WRITES_TESTS"),
    "get_tuple": ("test_get_tuple", "ALL_GET_TUPLE_TESTS"),
    "list": ("test_list", "ALL_LIST_TESTS"),
    "delete_thread": ("test_delete_thread", "ALL_DELETE_THREAD_TESTS"),
    "delete_for_runs": ("test_delete_for_runs", "ALL_DELETE_FOR_RUNS_TESTS"),
    "copy_thread": ("test_copy_thread", "ALL_COPY_THREAD_TESTS"),
    "prune": ("test_prune", "ALL_PRUNE_TESTS"),
}


def _spec_tests(capability: str) -> list[str]:
    module, name = SPEC_LISTS[capability]
    spec = import_module(f"langgraph.checkpoint.conformance.spec.{module}")
    return [fn.__name__ for fn in getattr(spec, name)]


def _postgres_lifespan(holder: dict):
    async def lifespan():
        name = f"compat_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        holder["url"] = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
        try:
            yield
        finally:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE {name} WITH (FORCE)")

    return lifespan


def _registered(kind: str):
    if kind == "InMemorySaver":

        @checkpointer_test(name=kind)
        async def memory():
            yield InMemorySaver()

        return memory
    if kind == "SqliteSaver":

        @checkpointer_test(name=kind)
        async def sqlite():
            with SqliteSaver.from_conn_string(":memory:") as saver:
                yield saver

        return sqlite
    if kind == "AsyncSqliteSaver":

        @checkpointer_test(name=kind)
        async def asqlite():
            async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
                yield saver

        return asqlite
    holder: dict = {}
    if kind == "PostgresSaver":

        @checkpointer_test(name=kind, lifespan=_postgres_lifespan(holder))
        async def postgres():
            with PostgresSaver.from_conn_string(holder["url"]) as saver:
                saver.setup()
                yield saver
                with saver.conn.cursor(row_factory=tuple_row) as cur:
                    cur.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    )
                    for (table,) in cur.fetchall():
                        cur.execute(f'TRUNCATE "{table}"')

        return postgres

    @checkpointer_test(name=kind, lifespan=_postgres_lifespan(holder))
    async def apostgres():
        async with AsyncPostgresSaver.from_conn_string(holder["url"]) as saver:
            await saver.setup()
            yield saver
            async with saver.conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
                for (table,) in await cur.fetchall():
                    await cur.execute(f'TRUNCATE "{table}"')

    return apostgres


SAVERS = ["InMemorySaver", "SqliteSaver", "AsyncSqliteSaver", "PostgresSaver", "AsyncPostgresSaver"]


@pytest.mark.parametrize("kind", SAVERS)
async def test_conformance(kind: str) -> None:
    records: list[dict] = []

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        records.append(
            {"saver": kind, "capability": capability, "test": test,
             "outcome": "passed" if passed else "failed",
             "error": (error or "").strip().splitlines()[-1:] }
        )

    report = await validate(_registered(kind), progress=ProgressCallbacks(on_test_result=on_result))
    for capability, result in report.results.items():
        if result.detected:
            continue
        outcome = "failed" if capability in {c.value for c in BASE_CAPABILITIES} else "skipped"
        for test in _spec_tests(capability):
            records.append(
                {"saver": kind, "capability": capability, "test": test, "outcome": outcome,
                 "error": [f"capability {capability!r} not implemented on {kind}"]}
            )
    out = os.environ.get("THREADLOOM_COMPAT_RESULTS")
    if out:
        with open(out, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    failed = [f"{r['capability']}.{r['test']}: {r['error']}" for r in records
              if r["outcome"] == "failed"]
    assert not failed, "\n".join(failed)
