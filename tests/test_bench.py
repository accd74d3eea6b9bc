"""The benchmark suite's own logic, on threadloom alone (LangGraph is only a bench extra).

Every figure's program must build and run on threadloom's memory and SQLite savers and
give the output the harness compares with LangGraph's; the comparison must see through
what legitimately differs (message ids) and point at what does not; the verdicts and the
sample order must be what ``bench/RESULTS.md`` says they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from bench import harness, programs, report
from bench.api import load_api
from bench.cases import HISTORY_CHECKPOINTS, figures
from bench.cli import _linear, async_section
from bench.fake_model import TurnsChatModel, tool_results_so_far
from bench.harness import Prepared
from bench.normalize import first_difference, normalize
from bench.savers import open_saver

API = load_api("threadloom")
FIGURES = [
    f for f in figures() if f.saver in ("none", "memory", "sqlite", "sqlite-async", "sqlite-full")
]


@pytest.mark.parametrize("fig", FIGURES, ids=[f.key for f in FIGURES])
def test_every_figure_runs_on_threadloom(fig: Any) -> None:
    with open_saver("threadloom", fig.saver) as saver:
        prepared = fig.prepare(API, saver, fig.saver, fig.key)
        prepared.run()  # what the harness times, once more
    assert prepared.units >= 1 and prepared.output
    if fig.program == "history":
        assert HISTORY_CHECKPOINTS <= prepared.output["checkpoints"] < HISTORY_CHECKPOINTS + 3
    if fig.program == "agent" and fig.saver != "none":
        assert prepared.extra["bytes_exact"] and prepared.extra["bytes"] > 0


def test_outputs_compare_without_message_ids() -> None:
    call = {"name": "lookup", "args": {"q": "x"}, "id": "call-1"}
    ours = {"messages": [HumanMessage("hi", id="1"), AIMessage("", tool_calls=[call], id="2")]}
    theirs = {
        "messages": [HumanMessage("hi", id="a"), AIMessage("", tool_calls=[call], id="b")]
    }
    assert first_difference(normalize(ours), normalize(theirs)) is None

    edited = {**call, "args": {"q": "y"}}
    theirs["messages"][1] = AIMessage("", tool_calls=[edited], id="b")
    assert first_difference(normalize(ours), normalize(theirs)) == (
        "$.messages[1]: ('ai', '', (('lookup', {'q': 'x'}),)) != "
        "('ai', '', (('lookup', {'q': 'y'}),))"
    )
    assert first_difference({"a": [1]}, {"a": [1, 2]}) == "$.a: length 1 != 2"
    assert first_difference({"a": 1}, {}) == "$.a: only in threadloom"


def test_snapshots_compare_by_what_a_person_reads() -> None:
    with open_saver("threadloom", "memory") as saver:
        approval = programs.approval_graph(API, saver)
        seen = normalize(programs.run_approval_cycle(API, approval, "t"))
    assert seen["snapshot"]["next"] == ["send"]
    assert seen["snapshot"]["values"]["messages"][-1][1] == (
        "Draft: Dear client, here is the report..."
    )
    assert seen["final"]["messages"][-1][1] == (
        "Email sent: Dear client, the report is attached."
    )


def test_samples_alternate_between_the_libraries() -> None:
    order: list[str] = []

    def program(name: str) -> Prepared:
        return Prepared(run=lambda: order.append(name), units=1, output=None)

    stats = harness.measure({"a": program("a"), "b": program("b")}, repeats=3, target_s=0.0)
    assert order[:2] == ["a", "b"]  # one call each to calibrate (a zero-second sample)
    assert order[2:] == ["a", "b"] * 3
    assert len(stats["a"].samples) == len(stats["b"].samples) == 3


def test_verdicts_and_growth() -> None:
    assert report.verdict(0.12, 1 / 8) == "PASS"
    assert report.verdict(0.13, 1 / 8) == "FAIL"
    assert report.verdict(None, 1 / 8) == "n/a"
    assert report.verdict(0.5, None) == "-"
    assert report.target_text(1 / 2.5) == "<= 1/2.5"
    assert _linear({25: 100, 50: 200, 100: 400}) == (True, 1.0)
    quadratic = {25: 25**2, 50: 50**2, 100: 100**2}
    assert _linear(quadratic)[0] is False


def test_fair_sqlite_figures_run_both_sides_at_synchronous_full() -> None:
    from bench.savers import sqlite_synchronous

    with open_saver("threadloom", "sqlite-full") as saver:
        assert sqlite_synchronous("threadloom", saver) == 2
    with open_saver("threadloom", "sqlite") as saver:
        assert sqlite_synchronous("threadloom", saver) == 1  # the default: NORMAL


def test_async_share_is_async_cycles_per_second_over_sync() -> None:
    def stats(sync: float, async_: float, nodes: float | None = None) -> dict[str, harness.Stats]:
        return {
            "sync": harness.Stats((sync,)),
            "async": harness.Stats((async_,)),
            "async nodes": harness.Stats((async_ if nodes is None else nodes,)),
        }

    text, verdicts = async_section(
        {  # seconds per cycle
            "postgres": {
                "threadloom": stats(1 / 64, 1.25 / 64, 1 / 60),
                "langgraph": stats(1 / 16, 0.05),
            }
        }
    )
    assert "64 / 51 / 60" in text and "16 / 20 / 20" in text
    assert "0.80 / 0.94" in text and "1.25 / 1.25" in text
    assert verdicts == [
        (
            "async approval cycles/s vs sync, threadloom PostgreSQL",
            True,
            "0.80 of sync (target >= 0.8)",
        )
    ]
    _, slow = async_section(
        {"postgres": {"threadloom": stats(0.01, 0.02), "langgraph": stats(0.05, 0.05)}}
    )
    assert slow[0][1] is False


class _CountingHistory(Sequence[Any]):
    """A message history that records which positions were read."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.messages)

    def __getitem__(self, i: Any) -> Any:
        self.read.append(i)
        return self.messages[i]


def _agent_history(turns: int) -> list[Any]:
    history: list[Any] = [HumanMessage("Check stock for every item.")]
    for n in range(1, turns + 1):
        call = {"name": "lookup", "args": {"q": f"item {n}"}, "id": f"call_{n}"}
        history += [AIMessage("", tool_calls=[call]), ToolMessage("42", tool_call_id=call["id"])]
    return history


def test_the_agent_benchmark_model_reads_only_the_tail_of_the_history() -> None:
    model = TurnsChatModel(turns=600)
    history = _CountingHistory(_agent_history(500))
    reply = model._generate(history)  # type: ignore[arg-type]
    assert reply.generations[0].message.tool_calls[0]["id"] == "call_501"  # type: ignore[attr-defined]
    assert len(history.read) == 1  # not 1,001: its cost per call is independent of length

    assert tool_results_so_far(_agent_history(0)) == 0
    assert TurnsChatModel(turns=3)._generate(_agent_history(3)).generations[0].message.content == (
        "Done: looked up 3 items."
    )
    with pytest.raises(ValueError, match="'other-7' does not answer a call of this model"):
        tool_results_so_far([ToolMessage("x", tool_call_id="other-7")])


def test_agent_loop_figures_net_of_the_model_per_run_and_mark_the_judged_one() -> None:
    from bench.scale import Sample, _growth, _median_sample, table

    samples = [Sample(1.0, 0.5, 0.2, 0.1), Sample(3.0, 0.7, 2.5, 0.4), Sample(2.0, 0.6, 0.3, 0.2)]
    medians = _median_sample(samples)
    # each run minus its own model time (0.8, 0.5, 1.7), not median minus median (1.7)
    assert medians["net_wall"] == pytest.approx(0.8)
    assert medians["net_cpu"] == pytest.approx(0.4)
    assert medians["model_cpu"] == pytest.approx(0.2)

    per_turn = {"threadloom": [1.0, 1.4], "langgraph": [2.0, 8.0]}
    judged = _growth("net, CPU", "memory", [10, 1000], per_turn, target=1.5, judged=True)
    wall = _growth("wall", "memory", [10, 1000], {"threadloom": [1.0, 3.0], "langgraph": [1, 2]})
    text = table([wall, judged])
    assert "last/first per turn 1.40x / 4.00x; PASS (<= 1.5x) *" in text
    assert "last/first per turn 3.00x / 2.00x\n" in text  # no target: no verdict
    assert text.endswith("the 1.5x growth net of the chat model)")


def test_statement_counts_see_every_statement_a_trace_shows(tmp_path: Any,
                                                            fresh_postgres_database: str) -> None:
    """``bench/statements.py`` reads libpq's trace of a connection back into the
    statements sent: simple queries, extended ones with SQL spanning lines, and
    prepared ones executed again by name (named once, in their Parse)."""
    import psycopg
    from psycopg import pq

    from bench.statements import statements

    path = tmp_path / "conn.trace"
    with open(path, "w") as out, psycopg.connect(fresh_postgres_database, autocommit=True,
                                                 prepare_threshold=2) as conn:
        conn.pgconn.trace(out.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        conn.execute("SELECT 1")
        for i in range(4):
            conn.execute("SELECT %s,\n  %s", (i, i))
        conn.pgconn.untrace()
    assert statements(path) == ["SELECT 1"] + ["SELECT $1, $2"] * 4


def test_server_table_compares_each_round_with_its_own_reference(capsys) -> None:
    """``bench/server.py --rounds``: medians of each setup, and its ratio to the
    reference as the median of the rounds' ratios, each against that round's reference
    (the machine's speed drifts between rounds)."""
    from bench.server import _table

    def measured(rate: float) -> dict[str, float]:
        return {"round_trips_per_s": rate, "runs_per_s": 2 * rate, "p50_ms": 100.0,
                "p99_ms": 200.0}

    _table({"ref": [measured(10), measured(20), measured(40)],
            "ours": [measured(30), measured(50), measured(120)]}, "ref")
    out = capsys.readouterr().out
    ours = next(line for line in out.splitlines() if line.startswith("| ours"))
    # median rate 50; ratios 3.0, 2.5, 3.0 -> 3.0 (the ratio of the medians would be 2.5)
    assert "|          50.0 |  100.0 |" in ours and ours.rstrip().endswith("3.0x |")
    assert "ours: 3.00x, 2.50x, 3.00x" in out


def test_statement_pipe_bench_measures_both_ways(capsys, fresh_postgres_database: str) -> None:
    """``bench/statement_pipe.py``: the same statement through psycopg's pool and the
    server storage's statement pipe, one and sixteen at a time, in a table - and every
    connection it opened closed (the database is dropped after)."""
    import asyncio

    from bench.statement_pipe import main

    asyncio.run(main(fresh_postgres_database, 40, 2))
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    ways = [tuple(cell.strip() for cell in line.strip("|").split("|")[:2]) for line in rows[1:]]
    assert ways == [("psycopg pool", "1"), ("psycopg pool", "16"),
                    ("statement pipe", "1"), ("statement pipe", "16")]


def test_large_state_bench_times_each_step_on_both_storages(
        fresh_postgres_database: str) -> None:
    """``bench/server_large.py``: one round trip with a large value in the state, on the
    SQLite server and on PostgreSQL with a worker (a database of its own, dropped after),
    each step timed and the server processes' memory read - a table row per setup."""
    rows = _table_rows("server_large.py", "--mb", "0.5", "--rounds", "1", "--postgres",
                       fresh_postgres_database)
    assert [row.split("|")[1].strip() for row in rows] == [
        "threadloom serve (SQLite)", "threadloom serve + 1 worker (PostgreSQL)"]
    for row in rows:  # five timings (0.00 s when fast) and a memory figure
        *timings, rss = (float(cell) for cell in row.strip("|").split("|")[1:])
        assert len(timings) == 5 and min(timings) >= 0 and rss > 0, row


def test_thread_search_bench_times_each_search_on_both_storages(
        fresh_postgres_database: str) -> None:
    """``bench/thread_search.py``: threads created through the server, then each search
    timed, on the SQLite server and on PostgreSQL (a database of its own, dropped
    after) - a table row per setup; the searches found what they should (it exits
    non-zero when a search by owner finds other than its 6 threads)."""
    rows = _table_rows("thread_search.py", "--threads", "120", "--repeat", "1",
                       "--postgres", fresh_postgres_database)
    assert [row.split("|")[1].strip() for row in rows] == [
        "threadloom serve (SQLite)", "threadloom serve + 1 worker (PostgreSQL)"]
    for row in rows:  # threads a second, then five timings
        created, *timings = (float(cell) for cell in row.strip("|").split("|")[1:])
        assert created > 0 and len(timings) == 5 and min(timings) > 0, row


def _table_rows(script: str, *args: str) -> list[str]:
    """Run ``bench/<script>`` with ``args`` (it must succeed); its table's threadloom
    rows."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(root / "bench" / script), *args],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return [line for line in done.stdout.splitlines() if line.startswith("| threadloom")]
