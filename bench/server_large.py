"""A large state through the server: one approval round trip whose state holds a value
of ``--mb`` megabytes, over HTTP with the official client.

    .venv/bin/python bench/server_large.py [--mb 50] [--rounds 2]
        [--postgres postgresql://postgres@127.0.0.1/test] [--no-postgres]
        [--reference-venv .venv-reference-server]

For each setup - ``threadloom serve`` on SQLite; ``serve`` + 1 ``threadloom worker`` on
a new PostgreSQL database; with ``--reference-venv``, the reference server (``langgraph
dev``, in-memory) - one client creates a thread and times: ``runs.wait`` until the
approval pauses (the graph's first node makes the value), ``threads.get_state``, the
resume (``runs.wait`` with ``command``), ``threads.get_history``, and a new run followed
with ``runs.stream`` (``values`` + ``updates``: the value in every event). Prints seconds
per step (the median over ``--rounds``) and the server processes' resident memory at the
end. The graph is ``bench/server_graph.py``'s ``large_graph``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server import (  # noqa: E402  (the repository on the path first)
    SETUP_LABELS,
    _process_tree,
    add_setup_args,
    setup_kinds,
    started,
)

STEPS = ("pause", "get_state", "resume", "history", "stream")


def drive(url: str, size: int) -> dict[str, float]:
    """One round trip with a ``size``-character value; seconds per step."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=None, timeout=600)
    took: dict[str, float] = {}

    def timed(step: str, call: object) -> object:
        start = time.perf_counter()
        out = call()  # type: ignore[operator]
        took[step] = time.perf_counter() - start
        return out

    tid = client.threads.create()["thread_id"]
    paused = timed("pause", lambda: client.runs.wait(tid, "large", input={"size": size}))
    assert len(paused["blob"]) == size and paused["__interrupt__"], list(paused)
    state = timed("get_state", lambda: client.threads.get_state(tid))
    assert len(state["values"]["blob"]) == size
    done = timed("resume", lambda: client.runs.wait(tid, "large",
                                                    command={"resume": "approve"}))
    assert done["outcome"] == "paid", done.get("outcome")
    timed("history", lambda: client.threads.get_history(tid, limit=10))
    parts = timed("stream", lambda: list(client.runs.stream(
        client.threads.create()["thread_id"], "large", input={"size": size},
        stream_mode=["values", "updates"])))
    assert len(parts) > 2  # type: ignore[arg-type]
    return took


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def _setup(kind: str, args: argparse.Namespace, size: int) -> tuple[dict[str, float], float]:
    with started(kind, args) as (url, procs, _):
        took = drive(url, size)
        return took, _rss_mb([pid for proc in procs for pid in _process_tree(proc.pid)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=50.0)
    parser.add_argument("--rounds", type=int, default=2)
    add_setup_args(parser)
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    kinds = setup_kinds(args)
    labels = SETUP_LABELS
    print(f"a state of {args.mb:g} MB, {args.rounds} round(s); cpu count {os.cpu_count()}")
    results: dict[str, list[tuple[dict[str, float], float]]] = {k: [] for k in kinds}
    for n in range(args.rounds):
        for kind in kinds if n % 2 == 0 else kinds[::-1]:
            results[kind].append(_setup(kind, args, size))
            took, rss = results[kind][-1]
            print(f"{labels[kind]}: " + ", ".join(f"{s} {took[s]:.2f} s" for s in STEPS)
                  + f"; server RSS {rss:.0f} MB", flush=True)
    print()
    print("| setup | " + " | ".join(f"{s} s" for s in STEPS) + " | server RSS MB |")
    print("|---|" + "---:|" * (len(STEPS) + 1))
    for kind in kinds:
        runs = results[kind]
        cells = [f"{statistics.median(t[s] for t, _ in runs):.2f}" for s in STEPS]
        rss = statistics.median(r for _, r in runs)
        print(f"| {labels[kind]} | " + " | ".join(cells) + f" | {rss:.0f} |")


if __name__ == "__main__":
    main()
