"""``make serve``: the threadloom server with the approval inbox, on SQLite, with demo work.

    python examples/inbox/serve.py [--port 2024] [--database FILE] [--fresh] [--no-seed]

Serves the workflows of ``workflows.py`` (the seed's tool-approval agent and email
workflow, and a refund with a deadline) with two demo reviewers, prints the inbox URL
and their keys, and - on a database without them - starts a few runs as ``carol`` so approvals
are waiting: the seed's ``delete_file`` call, a batch of two deletions, an email that
needs two finance approvals, and a refund that expires if nobody decides it within ten
minutes. Stop it with Ctrl-C; the database keeps the threads for next time.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:  # run from a fresh clone without installing
    sys.path.insert(0, str(ROOT))

REVIEWERS = (("alice", "demo-alice"), ("bob", "demo-bob"))
REQUESTER = "demo-carol"


def seeded(url: str) -> bool:
    """Whether the database already holds the demo's threads (a database that a failed
    start left empty does not: it is seeded on the next start)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=REQUESTER)
    return bool(client.threads.search(metadata={"demo": True}, limit=1))


def seed(url: str) -> list[str]:
    """Start the demo runs (as carol, who asks); each pauses for an approval."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, api_key=REQUESTER)
    work = [
        ("files", {"messages": [{"role": "user",
                                 "content": "Delete the file /tmp/old_data.csv"}]}),
        ("files", {"messages": [{"role": "user", "content": "Clean up my disk."}]}),
        ("email", {"messages": [{"role": "user", "content": "Send the quarterly report."}]}),
        ("refund", {"order_id": "A-1042", "amount": 129.9, "deadline_seconds": 600}),
    ]
    started = []
    for graph_id, payload in work:
        thread = client.threads.create(metadata={"demo": True})
        client.runs.wait(thread["thread_id"], graph_id, input=payload)
        started.append(f"{graph_id}: thread {thread['thread_id']}")
    return started


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=2024)
    parser.add_argument("--database", default=str(ROOT / ".threadloom" / "inbox-demo.db"))
    parser.add_argument("--fresh", action="store_true", help="start from an empty database")
    parser.add_argument("--no-seed", action="store_true", help="do not start demo runs")
    args = parser.parse_args(argv)

    from threadloom.server import background_server, load_config

    database = Path(args.database)
    database.parent.mkdir(parents=True, exist_ok=True)
    if args.fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(database) + suffix).unlink(missing_ok=True)
    config = load_config(HERE / "langgraph.json", database=str(database))
    keys = json.loads((HERE / "langgraph.json").read_text())["auth"]["api_keys"]
    with background_server(config, port=args.port) as url:
        if not args.no_seed and not seeded(url):
            for line in seed(url):
                print(f"  started {line}")
        print(f"\nthreadloom approval inbox: {url}/inbox")
        for name, key in REVIEWERS:
            roles = ", ".join(keys[key]["permissions"])
            print(f"  sign in as {name} ({roles}) with the key: {key}")
        print(f"  API docs: {url}/docs   database: {database}   (Ctrl-C stops)", flush=True)
        # Ctrl-C and SIGTERM stop it, even when started where SIGINT is ignored (a shell's
        # background job inherits SIG_IGN, and Python then never raises KeyboardInterrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _stop)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nstopping")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
