"""The figures: which program, on which saver, in which unit, against which target.

A figure's ``prepare(api, saver, quick)`` builds the program on one library, runs it once
to check its output (and measure what else the figure reports), and returns the
``Prepared`` the harness times.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import programs as p
from bench.api import Api
from bench.harness import Prepared
from bench.normalize import normalize

Prepare = Callable[[Api, Any, str, str], Prepared]
"""``prepare(api, saver, saver_kind, figure_key)``."""

AGENT_TURNS = (25, 50, 100)
HISTORY_CHECKPOINTS = 200
COMPILE_NODES = 1000

_ids = itertools.count()


def _new_thread(key: str) -> Callable[[], str]:
    prefix = key.replace("/", "-")
    return lambda: f"{prefix}-{next(_ids)}"


@dataclass(frozen=True)
class Figure:
    key: str  # "program/saver[/variant]", what --only matches
    program: str
    label: str
    saver: str
    unit: str
    scale: float  # seconds per unit -> the printed unit
    target: float | None  # threadloom/LangGraph ratio to stay under
    prepare: Prepare
    group: str = ""  # consecutive figures of one group share their savers (and thread)


def _stepwise(
    build: Callable[[Api, Any], Any], run: Callable[[Any, str], Any], steps: int
) -> Prepare:
    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        graph = build(api, saver)
        new_thread = _new_thread(key)
        output = normalize(run(graph, new_thread()))
        return Prepared(run=lambda: run(graph, new_thread()), units=steps, output=output)

    return prepare


def _cycle(build: Callable[[Api, Any], Any], cycle: Callable[[Api, Any, str], Any]) -> Prepare:
    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        graph = build(api, saver)
        new_thread = _new_thread(key)
        output = normalize(cycle(api, graph, new_thread()))
        return Prepared(run=lambda: cycle(api, graph, new_thread()), units=1, output=output)

    return prepare


def _acycle(build: Callable[[Api, Any], Any], cycle: Callable[[Api, Any, str], Any]) -> Prepare:
    """``_cycle`` for an async program, each run on the benchmark's event loop."""

    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        from bench.savers import run_async

        graph = build(api, saver)
        new_thread = _new_thread(key)
        output = normalize(run_async(cycle(api, graph, new_thread())))
        return Prepared(
            run=lambda: run_async(cycle(api, graph, new_thread())), units=1, output=output
        )

    return prepare


def async_nodes_approval() -> Prepare:
    """The approval cycle through the async API, its nodes written ``async def``
    (``programs.async_approval_graph``): beside ``approval/*-async``, whose sync nodes
    each run in a worker thread, it shows what those thread handoffs cost."""
    return _acycle(p.async_approval_graph, p.arun_approval_cycle)


def _fsync_cycle(
    build: Callable[[Api, Any], Any], cycle: Callable[[Api, Any, str], Any]
) -> Prepare:
    """``_cycle`` on savers that flush every commit; checks that both sides do."""
    timed = _cycle(build, cycle)

    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        from bench.savers import sqlite_synchronous

        if kind == "sqlite-full" and sqlite_synchronous(api.name, saver) != 2:
            raise RuntimeError(f"{api.name}'s SQLite saver does not run synchronous=FULL")
        if kind == "postgres-full" and getattr(saver, "durability", "full") != "full":
            raise RuntimeError(f"{api.name}'s PostgreSQL saver relaxes its commits")
        return timed(api, saver, kind, key)

    return prepare


def _agent(turns: int) -> Prepare:
    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        from bench.savers import stored_bytes

        graph = p.agent_graph(api, saver, turns)
        new_thread = _new_thread(key)
        thread_id = new_thread()
        output = normalize(p.run_agent(graph, thread_id))
        extra: dict[str, Any] = {}
        if saver is not None:
            extra["bytes"], extra["bytes_exact"] = stored_bytes(api.name, kind, saver, thread_id)
        return Prepared(
            run=lambda: p.run_agent(graph, new_thread()),
            units=p.agent_steps(turns),
            output=output,
            extra=extra,
        )

    return prepare


_filled: dict[int, tuple[Any, Any, str, int]] = {}


def _history(read: Callable[[Any, str], Any]) -> Prepare:
    """Reads on one long thread; the figures of a group fill it once per saver."""

    def prepare(api: Api, saver: Any, kind: str, key: str) -> Prepared:
        cached = _filled.get(id(saver))
        if cached is None or cached[0] is not saver:
            graph = p.chat_graph(api, saver)
            thread_id = _new_thread(key)()
            held = p.fill_history(graph, thread_id, HISTORY_CHECKPOINTS)
            while len(_filled) >= 2:  # one thread per library: the current group's
                del _filled[next(iter(_filled))]
            _filled[id(saver)] = cached = (saver, graph, thread_id, held)
        _saver, graph, thread_id, held = cached
        output = {"checkpoints": held, "read": normalize(read(graph, thread_id))}
        return Prepared(run=lambda: read(graph, thread_id), units=1, output=output)

    return prepare


def _compile(api: Api, saver: Any, kind: str, key: str) -> Prepared:
    builder = p.chain_builder(api, COMPILE_NODES)
    output = normalize(p.run_chain(builder.compile(), "compile-check"))
    return Prepared(run=builder.compile, units=1, output=output)


US, MS = 1e6, 1e3


def figures() -> list[Figure]:
    out: list[Figure] = []
    for saver in ("none", "memory"):
        out.append(
            Figure(
                f"chain/{saver}",
                "chain",
                "chain of 10 no-op nodes",
                saver,
                "µs/step",
                US,
                1 / 8,
                _stepwise(lambda a, s: p.chain_graph(a, s), p.run_chain, 10),
            )
        )
    for saver in ("memory", "sqlite", "postgres"):
        limit = 1 / 5 if saver == "memory" else 1 / 2.5
        out.append(
            Figure(
                f"approval/{saver}",
                "approval",
                "approval cycle (interrupt_before)",
                saver,
                "ms/cycle",
                MS,
                limit,
                _cycle(p.approval_graph, p.run_approval_cycle),
            )
        )
        out.append(
            Figure(
                f"interrupt/{saver}",
                "interrupt",
                "interrupt()/Command(resume)",
                saver,
                "ms/cycle",
                MS,
                limit,
                _cycle(p.interrupt_graph, p.run_interrupt_cycle),
            )
        )
    for saver, label, prepare in (
        ("sqlite-async", "approval cycle, async API", _acycle),
        ("postgres-async", "approval cycle, async API", _acycle),
        ("sqlite-full", "approval cycle, fsync/commit", _fsync_cycle),
        ("postgres-full", "approval cycle, flush/commit", _fsync_cycle),
    ):
        out.append(
            Figure(
                f"approval/{saver}",
                "approval",
                label,
                saver,
                "ms/cycle",
                MS,
                None,
                prepare(
                    p.approval_graph,
                    p.arun_approval_cycle if saver.endswith("async") else p.run_approval_cycle,
                ),
            )
        )
    for saver in ("memory", "sqlite", "postgres"):
        for turns in AGENT_TURNS:
            out.append(
                Figure(
                    f"agent/{saver}/{turns}",
                    "agent",
                    f"agent loop, {turns} turns",
                    saver,
                    "µs/step",
                    US,
                    None,
                    _agent(turns),
                )
            )
    for saver in ("none", "memory"):
        out.append(
            Figure(
                f"fanout/{saver}",
                "fanout",
                "100-way Send fan-out",
                saver,
                "ms/run",
                MS,
                1 / 5,
                _stepwise(lambda a, s: p.fanout_graph(a, s), p.run_fanout, 1),
            )
        )
        out.append(
            Figure(
                f"wide/{saver}",
                "wide",
                "100-key state, 10 nodes",
                saver,
                "µs/step",
                US,
                None,
                _stepwise(lambda a, s: p.wide_graph(a, s), p.run_wide, p.WIDE_NODES),
            )
        )
    for saver in ("memory", "sqlite", "postgres"):
        out.append(
            Figure(
                f"history/{saver}/get_state",
                "history",
                "get_state, 200 checkpoints",
                saver,
                "µs/read",
                US,
                1 / 4,
                _history(p.read_state),
                group=f"history/{saver}",
            )
        )
        out.append(
            Figure(
                f"history/{saver}/list10",
                "history",
                "get_state_history(limit=10)",
                saver,
                "µs/read",
                US,
                1 / 4,
                _history(p.read_history),
                group=f"history/{saver}",
            )
        )
    out.append(
        Figure(
            "compile/none",
            "compile",
            "compile a 1,000-node chain",
            "none",
            "ms/compile",
            MS,
            None,
            _compile,
        )
    )
    return out


# -- (8) peak memory: each program once, with the in-memory saver where it takes one ------


def peak_programs() -> dict[str, Callable[[Api], Any]]:
    def chain(api: Api) -> Any:
        return p.run_chain(p.chain_graph(api, api.MemorySaver()), "peak")

    def approval(api: Api) -> Any:
        return p.run_approval_cycle(api, p.approval_graph(api, api.MemorySaver()), "peak")

    def interrupt(api: Api) -> Any:
        return p.run_interrupt_cycle(api, p.interrupt_graph(api, api.MemorySaver()), "peak")

    def agent(api: Api) -> Any:
        return p.run_agent(p.agent_graph(api, api.MemorySaver(), 100), "peak")

    def fanout(api: Api) -> Any:
        return p.run_fanout(p.fanout_graph(api, api.MemorySaver()), "peak")

    def wide(api: Api) -> Any:
        return p.run_wide(p.wide_graph(api, api.MemorySaver()), "peak")

    def history(api: Api) -> Any:
        graph = p.chat_graph(api, api.MemorySaver())
        p.fill_history(graph, "peak", HISTORY_CHECKPOINTS)
        return p.read_history(graph, "peak")

    def compile_chain(api: Api) -> Any:
        return p.chain_builder(api, COMPILE_NODES).compile()

    return {
        "chain of 10 nodes (memory)": chain,
        "approval cycle (memory)": approval,
        "interrupt cycle (memory)": interrupt,
        "agent loop, 100 turns (memory)": agent,
        "100-way fan-out (memory)": fanout,
        "100-key state (memory)": wide,
        "200-checkpoint thread + history read (memory)": history,
        "compile 1,000-node chain": compile_chain,
    }
