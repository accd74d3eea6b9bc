"""Server throughput: runs per second and the approval round trip, over HTTP.

    .venv/bin/python bench/server.py [--clients 50] [--seconds 20] [--url URL]
        [--postgres-workers 1,2,4] [--postgres postgresql://postgres@127.0.0.1/test]
        [--reference-venv .venv-reference-server] [--reference-jobs 10] [--wait SECONDS]
        [--rounds N]

Starts ``threadloom serve --dev`` on a temporary SQLite file in a subprocess (or uses
``--url``, e.g. a reference server serving the same graph as ``payment``); with
``--postgres-workers``, also, for each count N, ``threadloom serve`` (API only) and N
``threadloom worker`` processes on a new PostgreSQL database (created through the
``--postgres`` URL, dropped afterwards). Each setup gets ``--clients`` concurrent
official async clients for ``--seconds``. With ``--reference-venv`` (``make bench-server``
builds one: ``langgraph-cli[inmem]``, never in ``.venv``), the reference server too -
``langgraph dev`` serving the same graph file - measured in the same run by the same
clients, running up to ``--reference-jobs`` runs at once (10, the default its ``--help``
states, passed explicitly: left unset, ``langgraph dev`` runs one run at a time), and
the table ends with threadloom's throughput over the reference's. Each client loops:
create a thread, ``runs.wait`` until the approval pauses, ``runs.wait`` the resume
until done - one *round trip* (two runs). Prints round trips/s, runs/s and the p50/p99
latency of a round trip. The graph is ``bench/server_graph.py`` (an ``interrupt()``
asking to approve a payment), so any server can serve it; with ``--wait SECONDS`` its
node first waits that long (``asyncio.sleep``, as a node calling a model waits), so
that runs hold workers' slots (``--concurrency``, 8 a worker by default) rather than
CPU - where more workers are more slots. With ``--rounds N`` every setup is measured N
times, every other round in the opposite order, and the table gives medians and the
median of each round's ratio to that round's reference (a shared machine's speed drifts
by a third within minutes: one measurement of each, one after the other, compares the
machine as much as the servers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client_loop(client: Any, deadline: float, latencies: list[float],
                       errors: list[str], wait: float) -> None:
    graph, given = ("payment_wait", {"wait": wait}) if wait else ("payment", {})
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            tid = (await client.threads.create())["thread_id"]
            paused = await client.runs.wait(tid, graph, input={"amount": 10, **given})
            assert paused["__interrupt__"], paused
            done = await client.runs.wait(tid, graph, command={"resume": "approve"})
            assert done["outcome"] == "paid", done
        except Exception as exc:  # counted and shown, the loop goes on
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - start)


async def measure(url: str, clients: int, seconds: float, wait: float = 0.0
                  ) -> dict[str, float]:
    """Drive ``url`` with ``clients`` concurrent loops for ``seconds`` (``wait``: on the
    graph whose node waits that long, each time it runs)."""
    # made before the clock starts: the SDK's first import (about 0.5 s of CPU, seconds
    # on a busy machine) and each client's (~20 ms of CPU: its TLS context), blocking
    # every client, fell into the measured window
    from langgraph_sdk import get_client

    made = [get_client(url=url, api_key=None, timeout=120) for _ in range(clients)]
    latencies: list[float] = []
    errors: list[str] = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(_client_loop(client, deadline, latencies, errors, wait)
                           for client in made))
    elapsed = time.monotonic() - start
    await asyncio.gather(*(client.aclose() for client in made))
    if errors:
        print(f"{len(errors)} failed round trips, e.g. {errors[0]}", file=sys.stderr)
    if not latencies:
        raise SystemExit("no round trip completed")
    return {
        "round_trips": len(latencies),
        "round_trips_per_s": len(latencies) / elapsed,
        "runs_per_s": 2 * len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * _percentile(latencies, 0.99),
        "errors": len(errors),
    }


def _config(folder: Path) -> Path:
    """A ``langgraph.json`` serving ``bench/server_graph.py`` as ``payment`` (the
    reference's CLI also asks for ``dependencies``: the graph needs nothing beyond it)."""
    path = folder / "langgraph.json"
    path.write_text(json.dumps({
        "dependencies": [str(HERE)],
        "graphs": {"payment": str(HERE / "server_graph.py") + ":graph",
                   "payment_wait": str(HERE / "server_graph.py") + ":waiting_graph",
                   "large": str(HERE / "server_graph.py") + ":large_graph"},
    }))
    return path


def _serve(folder: Path, port: int, database: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "serve", "--config",
         str(_config(folder)), "--port", str(port), "--dev", "--log-level",
         "warning", "--database", database or str(folder / "bench.db")],
        cwd=folder,
    )


def _worker(folder: Path, database: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "worker", "--config", str(_config(folder)),
         "--log-level", "warning", "--database", database],
        cwd=folder,
    )


@contextmanager
def _postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the server ``admin_url`` reaches, dropped on exit."""
    import uuid

    import psycopg

    name = f"threadloom_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield admin_url.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


SETUP_LABELS = {"sqlite": "threadloom serve (SQLite)",
                "postgres": "threadloom serve + 1 worker (PostgreSQL)",
                "reference": "reference (langgraph dev, in-memory)"}
"""The one-server setups of the single-client benches (``server_large``,
``thread_search``), by ``setup_kinds`` name."""


def add_setup_args(parser: argparse.ArgumentParser) -> None:
    """``--postgres``, ``--no-postgres`` and ``--reference-venv``, for ``setup_kinds``."""
    parser.add_argument("--postgres", default=os.environ.get(
        "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--reference-venv", default=None, metavar="DIR")


def setup_kinds(args: argparse.Namespace) -> list[str]:
    """The setups ``add_setup_args``' arguments ask for: SQLite always, PostgreSQL
    unless ``--no-postgres``, the reference with ``--reference-venv``."""
    return (["sqlite"] + ([] if args.no_postgres else ["postgres"])
            + (["reference"] if args.reference_venv else []))


@contextmanager
def started(kind: str, args: argparse.Namespace) -> Iterator[
        tuple[str, list[subprocess.Popen], str | None]]:
    """A server of ``kind`` up (PostgreSQL: the API and one worker on a new database,
    dropped afterwards); yields its URL, its processes and the database's URL (None
    but on PostgreSQL); stopped on exit."""
    from threadloom.server.embedded import free_port, wait_until_up

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        port = free_port()
        database = None
        if kind == "reference":
            procs = [_reference(folder, port, Path(args.reference_venv).resolve(), 10)]
        elif kind == "postgres":
            database = stack.enter_context(_postgres_database(args.postgres))
            procs = [_serve(folder, port, database), _worker(folder, database)]
        else:
            procs = [_serve(folder, port)]
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, procs[0])
            yield url, procs, database
        finally:
            _stop(procs)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run_setup(label: str, args: argparse.Namespace, workers: int | None) -> dict:
    """Start a server (SQLite: one process; ``workers``: API + that many workers on
    PostgreSQL), measure it, stop it."""
    from threadloom.server.embedded import free_port, wait_until_up

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        database = None
        if workers is not None:
            database = stack.enter_context(_postgres_database(args.postgres))
        port = free_port()
        procs = [_serve(folder, port, database)]
        procs += [_worker(folder, database) for _ in range(workers or 0) if database]
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, procs[0])
            roles = _roles(procs, database)
            statements = _statements(database) if database else None
            before = {role: _cpu(pids) for role, pids in roles().items()}
            result = asyncio.run(measure(url, args.clients, args.seconds, args.wait))
            after = {role: _cpu(pids) for role, pids in roles().items()}
            counted = statements() if statements else None
        finally:
            _stop(procs)
    print(f"{label}: {json.dumps({k: round(v, 2) for k, v in result.items()})}", flush=True)
    print(f"  CPU ms per round trip: {_cpu_per_round_trip(before, after, result)}", flush=True)
    if counted:
        runs = 2 * result["round_trips"]
        named, scans, taken, total = counted
        print(f"  claim statements per run: {(named + scans) / runs:.2f} (by key "
              f"{named / runs:.2f}, full looks {scans / runs:.2f}; runs taken per claim "
              f"{taken / max(1, named + scans):.2f}); statements per round trip "
              f"{total / result['round_trips']:.1f}", flush=True)
    return result


def _statements(database: str) -> Callable[[], tuple[int, int, int, int]] | None:
    """With ``pg_stat_statements`` (preloaded on the server), reset the bench database's
    counts now; the function returning, from then: the claim statements by key and
    with a full look, the runs they took, and all statements. None without it."""
    import psycopg

    try:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
                         "WHERE datname = current_database()), 0)")
    except psycopg.Error as exc:
        print(f"  (no statement counts: {exc})", flush=True)
        return None

    def counts() -> tuple[int, int, int, int]:
        with psycopg.connect(database, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(calls) FILTER (WHERE query LIKE '%WITH next AS%' AND "
                "query LIKE '%r.seq = ANY(%'), 0), coalesce(sum(calls) FILTER (WHERE query "
                "LIKE '%WITH next AS%' AND query NOT LIKE '%r.seq = ANY(%'), 0), "
                "coalesce(sum(rows) FILTER (WHERE query LIKE '%WITH next AS%'), 0), "
                "coalesce(sum(calls), 0) FROM pg_stat_statements WHERE dbid = (SELECT oid "
                "FROM pg_database WHERE datname = current_database())").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    return counts


def _roles(procs: list[subprocess.Popen], database: str | None
           ) -> Callable[[], dict[str, list[int]]]:
    """The setup's processes by role: ``client`` (this one), ``api``, ``worker 1``...,
    and ``postgres`` (the
    backends connected to the bench database, looked up again at each call: pools open
    connections as they go)."""
    def roles() -> dict[str, list[int]]:
        found = {"client": [os.getpid()], "api": [procs[0].pid]}
        found.update({f"worker {i}": [p.pid] for i, p in enumerate(procs[1:], 1)})
        if database is not None:
            import psycopg

            name = database.rsplit("/", 1)[1]
            with psycopg.connect(database, autocommit=True) as conn:
                found["postgres"] = [row[0] for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s "
                    "AND pid != pg_backend_pid()", (name,))]
        return found
    return roles


def _cpu(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process of ``pids`` still alive (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return out


def _cpu_per_round_trip(before: dict[str, dict[int, float]],
                        after: dict[str, dict[int, float]], result: dict) -> str:
    """Each role's CPU over the run per round trip (a process seen only at the end
    counts from zero: it started during the run), and the total."""
    spent = {role: sum(cpu - before.get(role, {}).get(pid, 0.0) for pid, cpu in pids.items())
             for role, pids in after.items()}
    per = {role: 1000 * s / result["round_trips"] for role, s in spent.items()}
    parts = [f"{role} {ms:.1f}" for role, ms in per.items()]
    return ", ".join([*parts, f"total {sum(per.values()):.1f}"])


def _reference(folder: Path, port: int, venv: Path, jobs: int) -> subprocess.Popen:
    """``langgraph dev`` (in-memory runtime, no reload, no tracing) on ``port``, serving
    the same graph file as ``payment``, running up to ``jobs`` runs at once; its output
    goes to ``reference.log`` there.

    ``jobs`` is passed as ``--n-jobs-per-worker``: without it, ``langgraph dev``
    (langgraph-api 0.16.7, runtime-inmem 0.36.7) starts ONE background worker ("Starting
    1 background workers" in its log, though its ``--help`` says 10) and runs one run
    at a time - with ``--wait 0.2``, 2.2 round trips/s against 19.0 with 10 jobs."""
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false"}
    with open(folder / "reference.log", "wb") as log:
        return subprocess.Popen(
            [str(venv / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload", "--port",
             str(port), "--config", str(_config(folder)), "--server-log-level", "warning",
             "--n-jobs-per-worker", str(jobs)],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
        )


def _run_reference(label: str, args: argparse.Namespace) -> dict:
    """Start the reference server from ``--reference-venv``, measure it, stop it."""
    from threadloom.server.embedded import free_port, wait_until_up

    venv = Path(args.reference_venv).resolve()
    if not (venv / "bin" / "langgraph").exists():
        raise SystemExit(f"--reference-venv {venv}: no bin/langgraph there (make "
                         "bench-server installs langgraph-cli[inmem] into it)")
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = _reference(Path(tmp), port, venv, args.reference_jobs)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url, proc)
            roles = {"client": [os.getpid()], "server": _process_tree(proc.pid)}
            before = {role: _cpu(pids) for role, pids in roles.items()}
            result = asyncio.run(measure(url, args.clients, args.seconds, args.wait))
            after = {role: _cpu(pids) for role, pids in roles.items()}
        except BaseException:
            print((Path(tmp) / "reference.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            _stop([proc])
    print(f"{label}: {json.dumps({k: round(v, 2) for k, v in result.items()})}", flush=True)
    print(f"  CPU ms per round trip: {_cpu_per_round_trip(before, after, result)}", flush=True)
    return result


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``langgraph dev`` serves from a child process)."""
    found = [pid]
    for parent in found:
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                found += [int(child) for child in children.read_text().split()]
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return found


def _table(results: dict[str, list[dict]], reference: str | None) -> None:
    """The figures side by side (each the median of the setup's rounds), and each
    setup's throughput over the reference's: the median of the rounds' ratios, each
    against the reference measured in the same round (with several rounds, every
    round's ratio follows)."""
    print(f"\n| {'setup':<50} | round trips/s | runs/s | p50 ms | p99 ms | vs reference |")
    print(f"|{'-' * 52}|--------------:|-------:|-------:|-------:|-------------:|")
    rounds = {}
    for label, measured in results.items():
        r = {k: statistics.median(m[k] for m in measured)
             for k in ("round_trips_per_s", "runs_per_s", "p50_ms", "p99_ms")}
        ratio = ""
        if reference is not None and label != reference:
            ratios = [m["round_trips_per_s"] / b["round_trips_per_s"]
                      for m, b in zip(measured, results[reference], strict=True)]
            ratio = f"{statistics.median(ratios):.1f}x"
            rounds[label] = ratios
        print(f"| {label:<50} | {r['round_trips_per_s']:13.1f} | {r['runs_per_s']:6.1f} | "
              f"{r['p50_ms']:6.0f} | {r['p99_ms']:6.0f} | {ratio:>12} |")
    if any(len(ratios) > 1 for ratios in rounds.values()):
        print("\nvs reference, round by round:")
        for label, ratios in rounds.items():
            print(f"  {label}: {', '.join(f'{x:.2f}x' for x in ratios)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--url", default=None, help="bench a running server instead")
    parser.add_argument("--postgres-workers", default="", metavar="1,2,4",
                        help="also bench PostgreSQL with these numbers of workers")
    parser.add_argument("--postgres", default=os.environ.get(
        "THREADLOOM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="a PostgreSQL URL whose server may create (and drop) a bench database")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite setup")
    parser.add_argument("--reference-venv", default=None, metavar="DIR",
                        help="also bench the reference server (langgraph dev) of this venv")
    parser.add_argument("--reference-jobs", type=int, default=10, metavar="N",
                        help="runs the reference server runs at once (its "
                        "--n-jobs-per-worker; 10, the default its --help states: left "
                        "unset, it runs one at a time)")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the reference server even with --reference-venv")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="measure every setup N times, in alternating order (the "
                        "table: medians, and the median of each round's ratio to the "
                        "reference): on a shared machine whose speed drifts")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="the graph whose node waits SECONDS each time it runs (as a "
                        "model call does): runs hold worker slots, not CPU")
    args = parser.parse_args()
    if args.wait:
        print(f"the graph's node waits {args.wait} s each time it runs", flush=True)
    print(f"{args.clients} clients, {args.seconds:.0f} s per setup; cpu count "
          f"{os.cpu_count()}; load average {_load()}", flush=True)
    if args.url is not None:
        from threadloom.server.embedded import wait_until_up

        wait_until_up(args.url, None)
        result = asyncio.run(measure(args.url, args.clients, args.seconds, args.wait))
        print(f"server {args.url}: {json.dumps({k: round(v, 2) for k, v in result.items()})}")
        return
    setups: list[tuple[str, Callable[[str], dict]]] = []
    reference = None
    if args.reference_venv and not args.no_reference:
        reference = f"reference (langgraph dev, in-memory, {args.reference_jobs} jobs)"
        setups.append((reference, lambda label: _run_reference(label, args)))
    if not args.no_sqlite:
        setups.append(("threadloom serve (SQLite, 1 process)",
                       lambda label: _run_setup(label, args, None)))
    for count in [int(n) for n in args.postgres_workers.split(",") if n.strip()]:
        setups.append((f"threadloom serve + {count} worker(s) (PostgreSQL)",
                       lambda label, count=count: _run_setup(label, args, count)))
    results: dict[str, list[dict]] = {label: [] for label, _ in setups}
    for n in range(args.rounds):
        if args.rounds > 1:
            print(f"-- round {n + 1} of {args.rounds}", flush=True)
        # every other round in the opposite order: a machine getting slower or faster
        # during the run favours no setup
        for label, setup in setups if n % 2 == 0 else setups[::-1]:
            results[label].append(setup(label))
    _table(results, reference)
    print(f"load average at the end: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
