"""``make bench-scale``: how the cost grows with the work, threadloom beside LangGraph.

    .venv-bench/bin/python bench/scale.py                 # every figure (several minutes)
    .venv-bench/bin/python bench/scale.py --quick         # smaller sizes, a smoke run
    .venv-bench/bin/python bench/scale.py --only listing  # one family: turns, listing, big,
                                                          # items, processes, tasks
    .venv-bench/bin/python bench/scale.py --write         # also append the table to RESULTS.md

Same programs on both libraries (``bench/programs.py``), one process, the libraries
alternating per sample; a figure is the median of its samples. Growth exponents: the
slope of log(time per unit) over log(size) between the smallest and largest size
(0 = constant per unit, 1 = each unit costs in proportion to the size).

``processes`` and ``tasks`` measure throughput instead: approval cycles per second with
1 / 2 / 4 / 8 OS processes on one database (SQLite file, PostgreSQL database), and with
1 / 10 / 100 asyncio tasks on one async saver (``bench/concurrency.py``), one library
after the other for each size, in alternating order; their exponent is the slope of
log(cycles/s) over log(processes or tasks): 0 = flat, below 0 = falls as work is added.
Cycles per CPU-second (the benchmark's processes only, not the database server's) are
reported beside them, as the wall-clock figures depend on what else the machine runs.
"""

from __future__ import annotations

import argparse
import gc
import math
import operator
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypedDict

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench import programs as p  # noqa: E402
from bench.api import LIBRARIES, Api, load_api  # noqa: E402
from bench.concurrency import (  # noqa: E402
    Outcome,
    alternating,
    check_threads,
    run_processes,
    run_tasks,
)
from bench.normalize import first_difference, normalize  # noqa: E402
from bench.savers import open_saver, run_async, shared_target, unavailable  # noqa: E402

TL, LG = LIBRARIES
Row = dict[str, Any]


def _median_time(run: Callable[[], Any], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _side_by_side(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each library's ``run``, samples alternating."""
    samples: dict[str, list[float]] = {lib: [] for lib in runs}
    for _ in range(repeats):
        for lib, run in runs.items():
            samples[lib].append(_median_time(run, 1))
    return {lib: statistics.median(s) for lib, s in samples.items()}


def _exponent(sizes: list[int], per_unit: list[float]) -> float:
    return math.log(per_unit[-1] / per_unit[0]) / math.log(sizes[-1] / sizes[0])


# -- (1) thread length: an agent loop of N turns, time per turn ----------------------


TURNS_SAMPLES = 5
"""Alternating samples per library at each agent-loop size up to 100 turns (one at more:
a 1,000-turn run of LangGraph's takes seconds)."""


def _agent_sample(graph: Any, thread_id: str, clock: list[float]) -> tuple[Any, Sample]:
    """One agent run on a new thread: its output, and its wall and CPU seconds with the
    chat model's share of each (read from ``clock``, which the graph's model adds to)."""
    model_wall, model_cpu = clock
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    output = p.run_agent(graph, thread_id)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return output, Sample(wall, cpu, clock[0] - model_wall, clock[1] - model_cpu)


class Sample(NamedTuple):
    """One agent run's seconds: wall clock and CPU time of the benchmark process, and of
    each the part spent inside the chat model's ``invoke``."""

    wall: float
    cpu: float
    model_wall: float
    model_cpu: float


def _median_sample(samples: list[Sample]) -> dict[str, float]:
    """Each figure's median over ``samples``; the figures net of the model are taken per
    sample (a run minus its own model time), then their median."""
    return {
        "wall": statistics.median(s.wall for s in samples),
        "cpu": statistics.median(s.cpu for s in samples),
        "model_wall": statistics.median(s.model_wall for s in samples),
        "model_cpu": statistics.median(s.model_cpu for s in samples),
        "net_wall": statistics.median(s.wall - s.model_wall for s in samples),
        "net_cpu": statistics.median(s.cpu - s.model_cpu for s in samples),
    }


def turns_figures(kinds: list[str], sizes: list[int], apis: dict[str, Api]) -> list[Row]:
    """Time per turn of an agent loop of each size on a new thread, wall clock and CPU
    time, and the same net of the benchmark's chat model.

    Why net of the model: its ``invoke`` is langchain-core's, and walks the whole history
    at every call (message formatting for callbacks and tracing), the same on both sides
    and in neither library. It is timed the same way on both sides - inside the agent
    node, around ``model.invoke`` - and each run's own model time is taken from it. The
    growth target (at most 1.5x from the smallest size to the largest) is judged on CPU
    time net of the model, the ratio target (at most 0.25 of LangGraph's at the largest
    size) on CPU time with the model: on this shared machine the wall clock of one long
    run takes whatever load there is, while the short runs' median leaves it out.
    """
    rows: list[Row] = []
    for kind in kinds:
        if any(unavailable(lib, kind) for lib in LIBRARIES):
            continue
        per_size: list[dict[str, dict[str, float]]] = []
        for turns in sizes:
            clocks: dict[str, list[float]] = {lib: [0.0, 0.0] for lib in LIBRARIES}
            samples: dict[str, list[Sample]] = {lib: [] for lib in LIBRARIES}
            outputs = {}
            with open_saver(TL, kind) as tl, open_saver(LG, kind) as lg:
                savers = {TL: tl, LG: lg}
                graphs = {
                    lib: p.agent_graph(apis[lib], s, turns, clocks[lib])
                    for lib, s in savers.items()
                }
                repeats = TURNS_SAMPLES if turns <= 100 else 1
                if turns <= 100:  # warm first (a larger size is warm from the smaller ones)
                    for graph in graphs.values():
                        p.run_agent(graph, f"warm-{turns}")
                for i in range(repeats):  # samples alternating between the libraries
                    for lib, graph in graphs.items():
                        output, sample = _agent_sample(graph, f"t{turns}-{i}", clocks[lib])
                        outputs[lib] = normalize(output)
                        samples[lib].append(sample)
            diff = first_difference(outputs[TL], outputs[LG])
            if diff is not None:
                raise AssertionError(f"agent loop, {turns} turns, {kind}: outputs differ: {diff}")
            medians = {lib: _median_sample(samples[lib]) for lib in LIBRARIES}
            per_size.append(medians)
            last = turns == sizes[-1]
            for clock, label in (("wall", ""), ("cpu", ", CPU")):
                for part, name in ((clock, f"agent loop, {turns} turns{label}"),
                                   (f"model_{clock}", f"  of which the chat model{label}")):
                    judged = last and part == "cpu"
                    rows.append(
                        _row(
                            name,
                            kind,
                            "ms/turn",
                            1e3,
                            medians[TL][part] / turns,
                            medians[LG][part] / turns,
                            target=0.25 if last and part == clock else None,
                            judged=judged,
                        )
                    )
        span = f"{sizes[0]}->{sizes[-1]}"
        for part, label in (
            ("wall", f"agent loop per-turn growth {span}"),
            ("net_wall", "  net of the chat model"),
            ("cpu", f"agent loop per-turn growth {span}, CPU"),
            ("net_cpu", "  net of the chat model, CPU"),
        ):
            per_turn = {
                lib: [m[lib][part] / n for m, n in zip(per_size, sizes, strict=True)]
                for lib in LIBRARIES
            }
            cpu = part.endswith("cpu")
            rows.append(
                _growth(label, kind, sizes, per_turn, target=1.5 if cpu else None,
                        judged=part == "net_cpu")
            )
    return rows


# -- (2) listing: list(None) over many threads; list_threads and expire_paused ---------


def _fill(lib: str, saver: Any, threads: int, per_thread: int) -> None:
    """``threads`` threads of ``per_thread`` checkpoints each, through ``put``."""
    base = import_module(f"{lib}.checkpoint.base")
    ids = import_module(f"{lib}.checkpoint.base.id")
    for t in range(threads):
        config: dict[str, Any] = {"configurable": {"thread_id": f"t{t}", "checkpoint_ns": ""}}
        version = None
        for step in range(per_thread):
            checkpoint = base.empty_checkpoint()
            checkpoint["id"] = str(ids.uuid6(clock_seq=step))
            version = saver.get_next_version(version, None)
            checkpoint["channel_values"] = {"x": t * 10 + step}
            checkpoint["channel_versions"] = {"x": version}
            metadata = {"source": "loop", "step": step, "parents": {}}
            config = saver.put(config, checkpoint, metadata, {"x": version})


def listing_figures(kinds: list[str], threads: int, repeats: int) -> list[Row]:
    rows: list[Row] = []
    for kind in kinds:
        if kind == "memory" or any(unavailable(lib, kind) for lib in LIBRARIES):
            continue
        with open_saver(TL, kind) as tl, open_saver(LG, kind) as lg:
            savers = {TL: tl, LG: lg}
            for lib, saver in savers.items():
                _fill(lib, saver, threads, 3)
            counts = {lib: sum(1 for _ in s.list(None)) for lib, s in savers.items()}
            if counts[TL] != counts[LG]:
                raise AssertionError(f"list(None) on {kind}: counts differ: {counts}")
            times = _side_by_side(
                {lib: (lambda s=s: sum(1 for _ in s.list(None))) for lib, s in savers.items()},
                repeats,
            )
            rows.append(
                _row(
                    f"list(None), {counts[TL]:,} checkpoints of {threads:,} threads",
                    kind,
                    "s/listing",
                    1,
                    times[TL],
                    times[LG],
                    target=0.5,
                )
            )
            page = _side_by_side(
                {lib: (lambda s=s: list(s.list(None, limit=10))) for lib, s in savers.items()},
                repeats * 5,
            )
            rows.append(
                _row(
                    f"list(None, limit=10), {threads:,} threads",
                    kind,
                    "ms/page",
                    1e3,
                    page[TL],
                    page[LG],
                )
            )
    return rows


THREAD_PAGE = 10  # list_threads(limit=THREAD_PAGE)
EXPIRED = 10  # threads each timed expire_paused call deletes


def _put_old(saver: Any, prefix: str, threads: int) -> None:
    """``threads`` threads of 2 checkpoints, 30 days old: what ``expire_paused`` takes."""
    base = import_module(f"{TL}.checkpoint.base")
    ts = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    for t in range(threads):
        config: dict[str, Any] = {"configurable": {"thread_id": f"{prefix}{t}"}}
        for step in range(2):
            checkpoint = base.empty_checkpoint()
            checkpoint["id"] = base.create_checkpoint_id()
            checkpoint["ts"] = ts
            config = saver.put(config, checkpoint, {"step": step}, {})


def thread_figures(kinds: list[str], sizes: list[int], repeats: int) -> list[Row]:
    """Ours alone (LangGraph's savers have neither ``list_threads`` nor
    ``expire_paused``): a page of ``list_threads`` and an ``expire_paused`` call that
    deletes ``EXPIRED`` threads, over ``sizes`` checkpoints (threads of 3), and how each
    grows from the smallest size to the largest (1.00x: the cost follows the page)."""
    rows: list[Row] = []
    for kind in kinds:
        if unavailable(TL, kind):
            continue
        per_size: dict[str, list[float]] = {"list": [], "expire": []}
        for size in sizes:
            with open_saver(TL, kind) as saver:
                _fill(TL, saver, size // 3, 3)
                page = _side_by_side(
                    {TL: lambda: saver.list_threads(limit=THREAD_PAGE)}, repeats * 5
                )[TL]
                samples = []
                for sample in range(repeats * 3):
                    _put_old(saver, f"old{sample}-", EXPIRED)  # (not timed)
                    gc.collect()
                    start = time.perf_counter()
                    gone = saver.expire_paused(timedelta(days=1))
                    samples.append(time.perf_counter() - start)
                    if len(gone) != EXPIRED:
                        raise AssertionError(f"expire_paused on {kind}: {len(gone)} threads")
                expire = statistics.median(samples)
            per_size["list"].append(page)
            per_size["expire"].append(expire)
            rows.append(_own(f"list_threads(limit={THREAD_PAGE}), {size:,} checkpoints", kind,
                             "ms/page", 1e3, page))  # fmt: skip
            rows.append(_own(f"expire_paused: {EXPIRED} of {size // 3 + EXPIRED:,} threads",
                             kind, "ms/call", 1e3, expire))  # fmt: skip
        for key, label in (("list", f"list_threads(limit={THREAD_PAGE})"),
                           ("expire", f"expire_paused ({EXPIRED})")):  # fmt: skip
            rows.append(_own_growth(f"{label}, {sizes[0]:,} -> {sizes[-1]:,} checkpoints",
                                    kind, sizes, per_size[key]))  # fmt: skip
    return rows


# -- (3) a big value in the state -------------------------------------------------------


class BigState(TypedDict):
    blob: str


def _big_graph(api: Api, saver: Any, size: int) -> Any:
    def write(state: BigState) -> dict[str, str]:
        return {"blob": "x" * size}

    builder = api.StateGraph(BigState)
    builder.add_node("write", write)
    builder.add_edge(api.START, "write")
    builder.add_edge("write", api.END)
    return builder.compile(checkpointer=saver)


def big_value_figures(kinds: list[str], size: int, apis: dict[str, Api], repeats: int) -> list[Row]:
    rows: list[Row] = []
    for kind in kinds:
        if any(unavailable(lib, kind) for lib in LIBRARIES):
            continue
        with open_saver(TL, kind) as tl, open_saver(LG, kind) as lg:
            runs = {}
            for lib, saver in ((TL, tl), (LG, lg)):
                graph = _big_graph(apis[lib], saver, size)
                ids = iter(range(10**6))
                runs[lib] = lambda g=graph, i=ids: g.invoke(
                    {"blob": ""}, {"configurable": {"thread_id": f"big-{next(i)}"}}
                )
            times = _side_by_side(runs, repeats)
            rows.append(
                _row(
                    f"{size / 2**20:.0f} MB value, default durability",
                    kind,
                    "ms/run",
                    1e3,
                    times[TL],
                    times[LG],
                )
            )
    return rows


# -- (4) a 10,000-item list, one item appended or replaced per step ---------------------


class ItemsState(TypedDict):
    items: Annotated[list, operator.add]
    n: int


def replace_item(old: list, new: Any) -> list:
    """The replacing list's reducer: ``(index, item)`` replaces that item (a new list, as
    a reducer returns), a list is appended."""
    if isinstance(new, tuple):
        out = list(old)
        out[new[0]] = new[1]
        return out
    return old + new


class ReplacedState(TypedDict):
    items: Annotated[list, replace_item]
    n: int


def _items_graph(api: Api, saver: Any, steps: int, replace: bool = False) -> Any:
    def grow(state: ItemsState) -> dict[str, Any]:
        return {"items": [{"i": state["n"], "note": "one more"}], "n": state["n"] + 1}

    def swap(state: ReplacedState) -> dict[str, Any]:
        n = state["n"]
        return {"items": (7 * n, {"i": n, "note": "replaced"}), "n": n + 1}

    def route(state: Any) -> str:  # (no schema: LangGraph would add the hinted one)
        return "grow" if state["n"] < steps else api.END

    builder = api.StateGraph(ReplacedState if replace else ItemsState)
    builder.add_node("grow", swap if replace else grow)
    builder.add_edge(api.START, "grow")
    builder.add_conditional_edges("grow", route, ["grow", api.END])
    return builder.compile(checkpointer=saver)


def items_figures(
    kinds: list[str], items: int, steps: int, apis: dict[str, Api], repeats: int
) -> list[Row]:
    rows: list[Row] = []
    start = [{"i": -k, "note": "already there"} for k in range(items)]
    for kind in kinds:
        if any(unavailable(lib, kind) for lib in LIBRARIES):
            continue
        for replace in (False, True):
            with open_saver(TL, kind) as tl, open_saver(LG, kind) as lg:
                runs = {}
                outputs: dict[str, Any] = {}
                for lib, saver in ((TL, tl), (LG, lg)):
                    graph = _items_graph(apis[lib], saver, steps, replace)
                    ids = iter(range(10**6))
                    outputs[lib] = graph.invoke(
                        {"items": list(start), "n": 0}, p.thread(f"items-check-{replace}")
                    )
                    runs[lib] = lambda g=graph, i=ids: g.invoke(
                        {"items": list(start), "n": 0}, p.thread(f"items-{next(i)}")
                    )
                if outputs[TL] != outputs[LG]:
                    raise SystemExit(f"{kind}: the list programs' outputs differ")
                times = _side_by_side(runs, repeats)
            rows.append(
                _row(
                    f"{items:,}-item list, {'replace' if replace else 'append'} 1 per step "
                    f"({steps} steps)",
                    kind,
                    "ms/step",
                    1e3,
                    times[TL] / steps,
                    times[LG] / steps,
                    target=None if replace else 0.25,
                )
            )
    return rows


# -- (5) processes on one database, (6) asyncio tasks on one async saver -----------------


def _throughput_rows(
    what: str, kind: str, counts: list[int], outcomes: dict[str, dict[int, list[Outcome]]]
) -> list[Row]:
    """Per size: cycles/s and cycles per CPU-second (medians over rounds), then the growth
    exponents of cycles/s; errors, when a side had any, in the label."""
    rows: list[Row] = []
    rates: dict[str, list[float]] = {lib: [] for lib in LIBRARIES}
    for n in counts:
        rate = {lib: statistics.median(o.rate for o in outcomes[lib][n]) for lib in LIBRARIES}
        cpu = {lib: statistics.median(o.per_cpu for o in outcomes[lib][n]) for lib in LIBRARIES}
        errors = {lib: sum(len(o.errors) for o in outcomes[lib][n]) for lib in LIBRARIES}
        failed = ", ".join(f"{lib} {e} failed" for lib, e in errors.items() if e)
        label = f"approval cycles, {n} {what}" + (f" ({failed})" if failed else "")
        rows.append(_row(label, kind, "cycles/s", 1, rate[TL], rate[LG]))
        rows.append(
            _row(f"  per CPU-second, {n} {what}", kind, "cycles/cpu-s", 1, cpu[TL], cpu[LG])
        )
        for lib in LIBRARIES:
            rates[lib].append(rate[lib])
    rows.append(
        {
            "label": f"cycles/s growth, {counts[0]}->{counts[-1]} {what}",
            "saver": kind,
            "unit": "exponent",
            "tl": _exponent(counts, rates[TL]),
            "lg": _exponent(counts, rates[LG]),
            "ratio": rates[TL][-1] / rates[TL][0],
            "target": None,
            "growth": True,
            "note": "ours last/first cycles/s",
        }
    )
    return rows


def _first_errors(outcome: Outcome, lib: str, kind: str, n: int) -> None:
    if outcome.errors:
        print(f"  {lib} on {kind}, {n}: {len(outcome.errors)} cycles failed, first: "
              f"{outcome.errors[0][:200]}", file=sys.stderr)


def processes_figures(
    kinds: list[str], counts: list[int], seconds: float, rounds: int
) -> list[Row]:
    """Approval cycles per second with ``counts`` processes sharing one database."""
    rows: list[Row] = []
    for kind in kinds:
        if kind not in ("sqlite", "postgres") or any(unavailable(lib, kind) for lib in LIBRARIES):
            continue
        outcomes: dict[str, dict[int, list[Outcome]]] = {
            lib: {n: [] for n in counts} for lib in LIBRARIES
        }
        for round_ in range(rounds):
            for i, n in enumerate(counts):
                for lib in alternating(list(LIBRARIES), round_ + i):
                    with shared_target(lib, kind) as target:
                        outcome = run_processes(lib, kind, target, n, seconds)
                        check_threads(lib, kind, target, outcome.threads, f"{lib}-n{n}-w0-warm")
                    _first_errors(outcome, lib, kind, n)
                    outcomes[lib][n].append(outcome)
            diff = first_difference(outcomes[TL][counts[0]][0].output,
                                    outcomes[LG][counts[0]][0].output)
            if diff is not None:
                raise AssertionError(f"approval cycle on {kind}: outputs differ: {diff}")
        rows += _throughput_rows("processes", kind, counts, outcomes)
    return rows


def tasks_figures(kinds: list[str], counts: list[int], seconds: float, rounds: int) -> list[Row]:
    """Approval cycles per second with ``counts`` asyncio tasks on one async saver."""
    rows: list[Row] = []
    for kind in kinds:
        akind = f"{kind}-async"
        if kind not in ("sqlite", "postgres") or any(
            unavailable(lib, akind) for lib in LIBRARIES
        ):
            continue
        outcomes: dict[str, dict[int, list[Outcome]]] = {
            lib: {n: [] for n in counts} for lib in LIBRARIES
        }
        for round_ in range(rounds):
            for i, n in enumerate(counts):
                for lib in alternating(list(LIBRARIES), round_ + i):
                    with open_saver(lib, akind) as saver:
                        gc.collect()
                        outcome = run_async(
                            run_tasks(lib, saver, n, seconds, f"{lib}-t{n}-r{round_}")
                        )
                    _first_errors(outcome, lib, akind, n)
                    outcomes[lib][n].append(outcome)
            diff = first_difference(outcomes[TL][counts[0]][0].output,
                                    outcomes[LG][counts[0]][0].output)
            if diff is not None:
                raise AssertionError(f"async approval cycle on {kind}: outputs differ: {diff}")
        rows += _throughput_rows("tasks", akind, counts, outcomes)
    return rows


# -- the table --------------------------------------------------------------------------


def _row(
    label: str,
    kind: str,
    unit: str,
    scale: float,
    tl: float,
    lg: float,
    target: float | None = None,
    judged: bool = False,
) -> Row:
    """A figure: ours and LangGraph's, their ratio, and its target (``judged``: the
    figure of its family the target is judged on, where the family reports several)."""
    return {
        "label": label,
        "saver": kind,
        "unit": unit,
        "tl": tl * scale,
        "lg": lg * scale,
        "ratio": tl / lg,
        "target": target,
        "judged": judged,
    }


def _growth(
    label: str,
    kind: str,
    sizes: list[int],
    per_unit: dict[str, list[float]],
    target: float | None = None,
    judged: bool = False,
) -> Row:
    """How each library's time per unit grows from the smallest size to the largest: the
    exponent of each, and our own last/first ratio (``target``: its largest allowed)."""
    return {
        "label": label,
        "saver": kind,
        "unit": "exponent",
        "tl": _exponent(sizes, per_unit[TL]),
        "lg": _exponent(sizes, per_unit[LG]),
        "ratio": per_unit[TL][-1] / per_unit[TL][0],  # our own last/first per-unit time
        "lg_ratio": per_unit[LG][-1] / per_unit[LG][0],
        "target": target,
        "judged": judged,
        "growth": True,
        "note": "last/first per turn",
    }


def _own(label: str, kind: str, unit: str, scale: float, tl: float) -> Row:
    """A figure of ours alone, where LangGraph has nothing that does the same."""
    return {"label": label, "saver": kind, "unit": unit, "tl": tl * scale, "lg": None,
            "ratio": None, "target": None, "judged": False}  # fmt: skip


def _own_growth(label: str, kind: str, sizes: list[int], per_unit: list[float]) -> Row:
    """``_growth`` of ours alone: our exponent and last/first ratio."""
    return {"label": label, "saver": kind, "unit": "exponent",
            "tl": _exponent(sizes, per_unit), "lg": None, "ratio": per_unit[-1] / per_unit[0],
            "target": None, "judged": False, "growth": True,
            "note": "last/first"}  # fmt: skip


JUDGED = "*"
"""Marks, in the result column, the figure a target is judged on where its family reports
several (wall clock and CPU time, with and without the chat model)."""


def table(rows: list[Row]) -> str:
    head = (
        f"{'figure':<52}  {'saver':<14}  {'unit':<9}  {'threadloom':>10}  {'LangGraph':>10}  "
        f"{'tl/lg':>6}  result"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        result = "-"
        if r["target"] is not None:
            ok = r["ratio"] <= r["target"]
            bound = f"{r['target']}{'x' if r.get('growth') else ''}"
            result = f"{'PASS' if ok else 'FAIL'} (<= {bound})"
            result += f" {JUDGED}" if r.get("judged") else ""
        if r.get("growth"):
            last_first = f"{r['ratio']:.2f}x" + (
                f" / {r['lg_ratio']:.2f}x" if "lg_ratio" in r else ""
            )
            lg = "-" if r["lg"] is None else f"{r['lg']:.2f}"
            lines.append(
                f"{r['label']:<52}  {r['saver']:<14}  {r['unit']:<9}  {r['tl']:>10.2f}  "
                f"{lg:>10}  {'':>6}  {r['note']} {last_first}"
                + ("" if result == "-" else f"; {result}")
            )
            continue
        if r["lg"] is None:  # ours alone (``_own``)
            lines.append(
                f"{r['label']:<52}  {r['saver']:<14}  {r['unit']:<9}  {r['tl']:>10,.3g}  "
                f"{'-':>10}  {'-':>6}  {result}"
            )
            continue
        lines.append(
            f"{r['label']:<52}  {r['saver']:<14}  {r['unit']:<9}  {r['tl']:>10,.3g}  "
            f"{r['lg']:>10,.3g}  {r['ratio']:>6.3f}  {result}"
        )
    if any(r.get("judged") for r in rows):
        lines.append(
            f"{JUDGED} the figure its target is judged on (agent loop: CPU time of the "
            "benchmark process, the 1.5x growth net of the chat model)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=["turns", "listing", "big", "items", "processes", "tasks"],
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="window per processes/tasks sample"
    )
    parser.add_argument(
        "--saver", action="append", default=[], choices=["memory", "sqlite", "postgres"]
    )
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args(argv)
    families = args.only or ["turns", "listing", "big", "items", "processes", "tasks"]
    kinds = args.saver or ["memory", "sqlite", "postgres"]
    apis = {lib: load_api(lib) for lib in LIBRARIES}
    quick = args.quick
    started = time.perf_counter()
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[Row] = []
    if "turns" in families:
        rows += turns_figures(kinds, [10, 100] if quick else [10, 100, 1000], apis)
    if "listing" in families:
        rows += listing_figures(kinds, 1000 if quick else 10_000, 3)
        rows += thread_figures(kinds, [300, 3000] if quick else [3000, 30_000], 3)
    if "big" in families:
        rows += big_value_figures([k for k in kinds if k != "memory"], 5 * 2**20, apis, 3)
    if "items" in families:
        rows += items_figures(kinds, 1000 if quick else 10_000, 20, apis, 3)
    window = args.seconds or (2.0 if quick else 5.0)
    if "processes" in families:
        rows += processes_figures(kinds, [1, 2, 4, 8], window, 1 if quick else 2)
    if "tasks" in families:
        rows += tasks_figures(kinds, [1, 10, 100], window, 1 if quick else 2)
    elapsed = time.perf_counter() - started
    text = table(rows)
    header = (
        f"threadloom {apis[TL].version} vs langgraph {apis[LG].version}; Python "
        f"{platform.python_version()}; {'quick' if quick else 'full'} run of "
        f"`bench/scale.py {' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"in {elapsed:.0f} s on {date.today().isoformat()}; {os.cpu_count()} CPUs, load "
        f"average {load_before} at the start, "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end"
    )
    print(header)
    print(text)
    if args.write:
        with open(_HERE / "RESULTS.md", "a") as out:
            out.write(
                f"\n## Growth at scale (`make bench-scale`)\n\n{header}\n\n```\n{text}\n```\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
