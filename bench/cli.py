"""``bench/run.py``: the figures on both libraries, checked, timed, tabulated, judged."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench import report
from bench.api import LIBRARIES, Api, load_api
from bench.cases import AGENT_TURNS, Figure, async_nodes_approval, figures, peak_programs
from bench.harness import Prepared, Stats, measure, peak_bytes
from bench.normalize import first_difference
from bench.savers import open_saver, pg_url, unavailable

TL, LG = LIBRARIES


@dataclass
class Outcome:
    figure: Figure
    status: str  # ok | skipped | diff | error
    note: str = ""
    stats: dict[str, Stats] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.status != "ok":
            return None
        return self.stats[TL].median / self.stats[LG].median


@dataclass(frozen=True)
class Settings:
    repeats: int
    target_s: float


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_group(group: list[Figure], apis: dict[str, Api], settings: Settings) -> list[Outcome]:
    """Figures that share one saver per library (all of one saver kind)."""
    kind = group[0].saver
    reasons = [r for lib in LIBRARIES if (r := unavailable(lib, kind))]
    if reasons:
        return [Outcome(fig, "skipped", "; ".join(reasons)) for fig in group]
    outcomes: list[Outcome] = []
    try:
        with ExitStack() as stack:
            savers = {lib: stack.enter_context(open_saver(lib, kind)) for lib in LIBRARIES}
            for fig in group:
                outcomes.append(run_figure(fig, apis, savers, settings))
    except Exception as exc:  # opening or closing a saver failed
        outcomes += [Outcome(fig, "error", _error(exc, fig)) for fig in group[len(outcomes) :]]
    return outcomes


def run_figure(
    fig: Figure, apis: dict[str, Api], savers: dict[str, Any], settings: Settings
) -> Outcome:
    try:
        prepared: dict[str, Prepared] = {
            lib: fig.prepare(apis[lib], savers[lib], fig.saver, fig.key) for lib in LIBRARIES
        }
        diff = first_difference(prepared[TL].output, prepared[LG].output)
        extra = {lib: prepared[lib].extra for lib in LIBRARIES}
        if diff is not None:
            return Outcome(fig, "diff", diff, extra=extra)
        stats = measure(prepared, settings.repeats, settings.target_s)
        return Outcome(fig, "ok", stats=stats, extra=extra)
    except Exception as exc:
        return Outcome(fig, "error", _error(exc, fig))


def _error(exc: BaseException, fig: Figure) -> str:
    last = traceback.format_exception(exc)[-1].strip()
    return f"{type(exc).__name__} in {fig.key}: {last}"[:300]


def _groups(chosen: list[Figure]) -> list[list[Figure]]:
    return [list(g) for _, g in itertools.groupby(chosen, key=lambda f: f.group or f.key)]


def _cell(stats: Stats, scale: float) -> str:
    lo, hi = stats.iqr
    return f"{report.num(stats.median * scale)} [{report.num(lo * scale)}–{report.num(hi * scale)}]"


def main_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        f = o.figure
        head = [f.label, f.saver, f.unit]
        if o.status == "ok":
            ratio = o.ratio
            rows.append(
                head
                + [
                    _cell(o.stats[TL], f.scale),
                    _cell(o.stats[LG], f.scale),
                    f"{ratio:.3f}",
                    report.target_text(f.target),
                    report.verdict(ratio, f.target),
                ]
            )
        else:
            rows.append(head + ["-", "-", "-", report.target_text(f.target), o.status.upper()])
    headers = [
        "figure",
        "saver",
        "unit",
        "threadloom median [IQR]",
        "LangGraph median [IQR]",
        "tl/lg",
        "target",
        "result",
    ]
    return report.table(headers, rows, right=3)


def bytes_section(outcomes: list[Outcome]) -> tuple[str, list[tuple[str, bool, str]]]:
    """The stored-bytes table of the agent loops, and the storage targets' verdicts."""
    by_key = {o.figure.key: o for o in outcomes}
    rows: list[list[str]] = []
    verdicts: list[tuple[str, bool, str]] = []
    notes: set[str] = set()
    for saver in ("memory", "sqlite", "postgres"):
        sizes: dict[str, dict[int, int]] = {TL: {}, LG: {}}
        for turns in AGENT_TURNS:
            o = by_key.get(f"agent/{saver}/{turns}")
            if o is None or TL not in o.extra or "bytes" not in o.extra.get(TL, {}):
                continue
            for lib in LIBRARIES:
                sizes[lib][turns] = o.extra[lib]["bytes"]
                if not o.extra[lib].get("bytes_exact", True):
                    notes.add(f"{lib} {saver}: estimated (saver has no stored_bytes yet)")
            tl, lg = sizes[TL][turns], sizes[LG][turns]
            rows.append(
                [
                    saver,
                    str(turns),
                    f"{tl:,}",
                    f"{lg:,}",
                    f"{tl / lg:.3f}",
                    f"{tl / turns:,.0f}",
                    f"{lg / turns:,.0f}",
                    _increment(sizes[TL], turns),
                    _increment(sizes[LG], turns),
                ]
            )
        if saver == "sqlite" and len(sizes[TL]) == len(AGENT_TURNS):
            ratio = sizes[TL][100] / sizes[LG][100]
            verdicts.append(
                (
                    "bytes after 100 agent turns, SQLite",
                    ratio <= 0.1,
                    f"ratio {ratio:.3f} (target <= 1/10)",
                )
            )
            linear, growth = _linear(sizes[TL])
            verdicts.append(
                (
                    "threadloom storage grows linearly in turns, SQLite",
                    linear,
                    f"bytes per added turn 50->100 / 25->50 = {growth:.2f} (linear: <= 1.25)",
                )
            )
    headers = [
        "saver",
        "turns",
        "threadloom B",
        "LangGraph B",
        "tl/lg",
        "tl B/turn",
        "lg B/turn",
        "tl B/added turn",
        "lg B/added turn",
    ]
    text = report.table(headers, rows, right=1)
    if notes:
        text += "\n" + "\n".join(f"note: {n}" for n in sorted(notes))
    return text, verdicts


def _increment(sizes: dict[int, int], turns: int) -> str:
    earlier = [t for t in sizes if t < turns]
    if not earlier:
        return "-"
    prev = max(earlier)
    return f"{(sizes[turns] - sizes[prev]) / (turns - prev):,.0f}"


def _linear(sizes: dict[int, int]) -> tuple[bool, float]:
    """Bytes per added turn from 50 to 100 over that from 25 to 50: 1 when linear, 2 when
    quadratic."""
    first = (sizes[50] - sizes[25]) / 25
    second = (sizes[100] - sizes[50]) / 50
    growth = second / first if first > 0 else float("inf")
    return growth <= 1.25, growth


ASYNC_SHARE = 0.8  # async cycles per second at least this share of the sync ones
AsyncResults = dict[str, dict[str, dict[str, Stats]]]
"""saver kind -> library -> {"sync": ..., "async": ...}: seconds per approval cycle."""


def measure_async_beside_sync(apis: dict[str, Api], settings: Settings) -> AsyncResults:
    """Each library's approval cycle through its async API and its sync API, on the
    same kind of database, samples alternating sync, async, sync, ... (the two figures'
    own runs are minutes apart on a shared machine: their ratio would be mostly noise)."""
    by_key = {f.key: f for f in figures()}
    results: AsyncResults = {}
    for kind in ("sqlite", "postgres"):
        if any(unavailable(lib, k) for lib in LIBRARIES for k in (kind, f"{kind}-async")):
            continue
        for lib in LIBRARIES:
            with ExitStack() as stack:
                prepared = {}
                for mode, key in (("sync", kind), ("async", f"{kind}-async")):
                    fig = by_key[f"approval/{key}"]
                    saver = stack.enter_context(open_saver(lib, key))
                    prepared[mode] = fig.prepare(apis[lib], saver, key, f"{fig.key}/beside")
                # the same cycle with its nodes written async: no thread handoff per node
                key = f"{kind}-async"
                prepared["async nodes"] = async_nodes_approval()(
                    apis[lib], stack.enter_context(open_saver(lib, key)), key,
                    f"approval/{key}/async-nodes",
                )
                stats = measure(prepared, settings.repeats, settings.target_s)
            results.setdefault(kind, {})[lib] = stats
            log(f"async beside sync, {kind}, {lib}: done")
    return results


def async_section(results: AsyncResults) -> tuple[str, list[tuple[str, bool, str]]]:
    """Each library's async approval cycles per second beside its sync ones, and the
    target on threadloom's PostgreSQL saver."""
    rows: list[list[str]] = []
    verdicts: list[tuple[str, bool, str]] = []
    for kind, per_lib in results.items():
        shares = {lib: s["sync"].median / s["async"].median for lib, s in per_lib.items()}
        noded = {lib: s["sync"].median / s["async nodes"].median for lib, s in per_lib.items()}
        rows.append(
            [kind]
            + [
                f"{1 / per_lib[lib]['sync'].median:,.0f} / {1 / per_lib[lib]['async'].median:,.0f}"
                f" / {1 / per_lib[lib]['async nodes'].median:,.0f}"
                for lib in LIBRARIES
            ]
            + [f"{shares[TL]:.2f} / {noded[TL]:.2f}", f"{shares[LG]:.2f} / {noded[LG]:.2f}"]
        )
        if kind == "postgres":
            verdicts.append(
                (
                    "async approval cycles/s vs sync, threadloom PostgreSQL",
                    shares[TL] >= ASYNC_SHARE,
                    f"{shares[TL]:.2f} of sync (target >= {ASYNC_SHARE})",
                )
            )
    headers = [
        "saver",
        "threadloom cycles/s sync / async / async nodes",
        "LangGraph cycles/s sync / async / async nodes",
        "tl async/sync",
        "lg async/sync",
    ]
    return (report.table(headers, rows, right=1) if rows else ""), verdicts


def peak_table(apis: dict[str, Api], quick: bool) -> str:
    rows = []
    for name, program in peak_programs().items():
        if quick and ("agent" in name or "history" in name):
            continue  # the two slow ones under tracemalloc
        peaks: dict[str, int] = {}
        for lib in LIBRARIES:
            program(apis[lib])  # first-use costs (lazy imports, caches) are not the program's
            peaks[lib] = peak_bytes(lambda prog=program, lib=lib: prog(apis[lib]))
        rows.append(
            [name, report.kib(peaks[TL]), report.kib(peaks[LG]), f"{peaks[TL] / peaks[LG]:.3f}"]
        )
    return report.table(
        ["program (one run)", "threadloom peak", "LangGraph peak", "tl/lg"], rows, right=1
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run")
    parser.add_argument(
        "--only",
        metavar="NAME",
        help="only figures whose key contains NAME (chain, approval, "
        "interrupt, agent, fanout, wide, history, compile, peak, async, "
        "sqlite, postgres/..., or a full key such as agent/sqlite/100)",
    )
    parser.add_argument("--repeats", type=int, help="samples per library and figure")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = Settings(
        repeats=args.repeats or (3 if args.quick else 7), target_s=0.015 if args.quick else 0.12
    )
    started = time.perf_counter()
    print("threadloom vs LangGraph - same programs, one process, samples alternating")
    for line in report.machine_lines(pg_url()):
        print("  " + line)
    print(
        f"  {settings.repeats} samples per library and figure, ~{settings.target_s * 1e3:g} ms"
        " each; both libraries' default durability (async), except the */*-full"
        " figures (a flush per commit on both sides);"
        " [IQR] is min-max below 4 samples",
        flush=True,
    )
    apis = {lib: load_api(lib) for lib in LIBRARIES}

    only = args.only
    chosen = [f for f in figures() if not only or only in f.key or only == f.program]
    if only == "async":  # only the async figures and the async-beside-sync table
        chosen = [f for f in figures() if f.saver.endswith("-async")]
    if args.quick:
        chosen = [f for f in chosen if not _slow_in_quick(f)]
    if not chosen and only != "peak":
        print(
            f"no figure matches --only {only!r}; keys are: " + ", ".join(f.key for f in figures()),
            file=sys.stderr,
        )
        return 2
    outcomes: list[Outcome] = []
    for group in _groups(chosen):
        for outcome in run_group(group, apis, settings):
            log(
                f"[{time.perf_counter() - started:6.1f}s] {outcome.figure.key}: "
                f"{outcome.status}" + (f" ({outcome.note})" if outcome.note else "")
            )
            outcomes.append(outcome)

    outcomes = _retry_skipped(outcomes, apis, settings)

    if outcomes:
        print("\n== Time (lower is better; ratio = threadloom / LangGraph, same run)")
        print(main_table(outcomes))
    bytes_text, byte_verdicts = bytes_section(outcomes)
    beside: AsyncResults = {}
    if not only or only in ("approval", "async"):
        beside = measure_async_beside_sync(apis, settings)
    async_text, async_verdicts = async_section(beside)
    if async_text:
        print(
            "\n== Async API beside sync (approval cycle, cycles per second: medians of"
            " samples alternating sync, async, async nodes; same savers as above; 'async"
            " nodes': the same cycle with its two nodes written async def, so no node is"
            " handed to a worker thread; the target is judged on the plain async column)"
        )
        print(async_text)
    byte_verdicts += async_verdicts
    if any(o.figure.program == "agent" for o in outcomes):
        print("\n== Bytes the saver holds after one agent run (payload columns)")
        print(bytes_text)
    if not only or only == "peak":
        print("\n== Peak memory (tracemalloc, one run each, graph building included)")
        print(peak_table(apis, args.quick))
        if args.quick:
            print("(quick run: the agent-loop and history peaks are left out)")
    _print_problems(outcomes)
    _print_verdicts(outcomes, byte_verdicts)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


def _slow_in_quick(fig: Figure) -> bool:
    """The smoke run keeps every program but runs the agent loop on SQLite only (where
    the storage target is), still at 25, 50 and 100 turns."""
    return fig.program == "agent" and fig.saver != "sqlite"


def _retry_skipped(
    outcomes: list[Outcome], apis: dict[str, Api], settings: Settings
) -> list[Outcome]:
    """Savers still being written may have become importable meanwhile: try once more."""
    retry = [o.figure for o in outcomes if o.status == "skipped" and "not importable" in o.note]
    if not retry:
        return outcomes
    again = {o.figure.key: o for g in _groups(retry) for o in run_group(g, apis, settings)}
    for key, o in again.items():
        log(f"retry {key}: {o.status}")
    return [again.get(o.figure.key, o) for o in outcomes]


def _print_problems(outcomes: list[Outcome]) -> None:
    problems = [o for o in outcomes if o.status != "ok"]
    if not problems:
        return
    print("\n== Figures not reported")
    for o in problems:
        what = {
            "diff": "OUTPUTS DIFFER (threadloom vs LangGraph)",
            "skipped": "skipped",
            "error": "error",
        }[o.status]
        print(f"  {o.figure.key}: {what}: {o.note}")


def _print_verdicts(outcomes: list[Outcome], byte_verdicts: list[tuple[str, bool, str]]) -> None:
    if not outcomes:
        return
    print("\n== Targets")
    for o in outcomes:
        f = o.figure
        if f.target is None:
            continue
        ratio = o.ratio
        shown = f"{ratio:.3f}" if ratio is not None else o.status
        print(
            f"  {report.verdict(ratio, f.target):4}  {f.label} [{f.saver}]: "
            f"{shown} (target {report.target_text(f.target)})"
        )
    for name, ok, detail in byte_verdicts:
        print(f"  {'PASS' if ok else 'FAIL':4}  {name}: {detail}")
