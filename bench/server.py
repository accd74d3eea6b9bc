"""Server throughput: runs per second and the approval round trip, over HTTP.

    .venv/bin/python bench/server.py [--clients 50] [--seconds 20] [--url URL]

Starts ``threadloom serve --dev`` on a temporary SQLite file in a subprocess (or uses
``--url``, e.g. a reference server serving the same graph as ``payment``), then runs
``--clients`` concurrent official async clients for ``--seconds``. Each client loops:
create a thread, ``runs.wait`` until the approval pauses, ``runs.wait`` the resume
until done - one *round trip* (two runs). Prints round trips/s, runs/s and the p50/p99
latency of a round trip. The graph is ``bench/server_graph.py`` (an ``interrupt()``
asking to approve a payment), so any server can serve it.
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
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client_loop(url: str, deadline: float, latencies: list[float],
                       errors: list[str]) -> None:
    from langgraph_sdk import get_client

    client = get_client(url=url, api_key=None, timeout=120)
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            tid = (await client.threads.create())["thread_id"]
            paused = await client.runs.wait(tid, "payment", input={"amount": 10})
            assert paused["__interrupt__"], paused
            done = await client.runs.wait(tid, "payment", command={"resume": "approve"})
            assert done["outcome"] == "paid", done
        except Exception as exc:  # counted and shown, the loop goes on
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.perf_counter() - start)


async def measure(url: str, clients: int, seconds: float) -> dict[str, float]:
    """Drive ``url`` with ``clients`` concurrent loops for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(_client_loop(url, deadline, latencies, errors)
                           for _ in range(clients)))
    elapsed = time.monotonic() - start
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


def _serve(folder: Path, port: int) -> subprocess.Popen:
    (folder / "langgraph.json").write_text(
        json.dumps({"graphs": {"payment": str(HERE / "server_graph.py") + ":graph"}})
    )
    return subprocess.Popen(
        [sys.executable, "-m", "threadloom.cli", "serve", "--config",
         str(folder / "langgraph.json"), "--port", str(port), "--dev", "--log-level",
         "warning", "--database", str(folder / "bench.db")],
        cwd=folder,
    )


def _wait_up(url: str, proc: subprocess.Popen | None) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ok").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit("the server exited while starting")
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer /ok within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--url", default=None, help="bench a running server instead")
    args = parser.parse_args()
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url is None:
            from threadloom.server.embedded import free_port

            port = free_port()
            proc = _serve(Path(tmp), port)
            url = f"http://127.0.0.1:{port}"
        try:
            _wait_up(url, proc)
            result = asyncio.run(measure(url, args.clients, args.seconds))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"server {url if args.url else 'threadloom serve (SQLite, 1 process)'}; "
          f"{args.clients} clients, {args.seconds:.0f} s; cpu count {os.cpu_count()}")
    print(json.dumps({k: round(v, 2) for k, v in result.items()}))


if __name__ == "__main__":
    main()
