"""``threadloom serve`` and ``threadloom worker``: the server's processes.

    threadloom serve --config langgraph.json [--host 127.0.0.1] [--port 2024]
                     [--database threadloom.db | postgresql://...] [--dev]
    threadloom worker --config langgraph.json --database postgresql://...
                      [--concurrency 32] [--lease-seconds 30]

``--database`` defaults to ``$THREADLOOM_DATABASE_URL``, else ``threadloom.db`` beside
the config file. On a SQLite file ``serve`` executes the runs itself. On PostgreSQL it
only queues them (unless ``--embedded-worker``), and ``threadloom worker`` processes -
any number, on any machine reaching the database, with the same config and graph
files - execute them. ``--dev`` (alias ``--no-auth``) accepts unauthenticated callers:
local development only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threadloom.server.config import RUN_SLOTS

__all__ = ["add_serve_parser", "add_worker_parser", "serve", "work"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="langgraph.json-style config (default: ./langgraph.json if any)")
    parser.add_argument("--database", default=None, metavar="PATH_OR_URL",
                        help="SQLite file or postgresql:// URL (default: "
                             "$THREADLOOM_DATABASE_URL or threadloom.db)")
    parser.add_argument("--log-level", default="info")


def add_serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``serve`` subcommand's options."""
    parser = commands.add_parser("serve", help="serve graphs over LangGraph's Agent Server API")
    _common(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2024)
    parser.add_argument("--dev", "--no-auth", dest="dev", action="store_true",
                        help="accept unauthenticated callers (local development only)")
    parser.add_argument("--workers", type=_at_least_one, default=None, metavar="N",
                        help="runs executed at once by the embedded worker (default "
                             f"{RUN_SLOTS})")
    parser.add_argument("--embedded-worker", action="store_true",
                        help="on PostgreSQL, execute runs in this process too")


def add_worker_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``worker`` subcommand's options."""
    parser = commands.add_parser(
        "worker", help="execute the runs queued on a PostgreSQL server database"
    )
    _common(parser)
    parser.add_argument("--concurrency", type=_at_least_one, default=None, metavar="N",
                        help=f"runs executed at once (default {RUN_SLOTS})")
    parser.add_argument("--lease-seconds", type=_seconds, default=None, metavar="S",
                        help="a run is handed to another worker when this one has not "
                             "renewed its lease for S seconds (default 30)")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a positive number of seconds, not {text!r}")
    return value


def _config(args: argparse.Namespace, **overrides: Any) -> Any:
    from threadloom.server import load_config

    config_path = args.config
    if config_path is None and Path("langgraph.json").is_file():
        config_path = "langgraph.json"
    config = load_config(config_path, **overrides)
    database = args.database or os.environ.get("THREADLOOM_DATABASE_URL")
    config.database = database or str(config.base_dir / "threadloom.db")
    return config


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from threadloom.server import Server, create_app
    from threadloom.server.storage.sqlite import DatabaseInUseError

    config = _config(args, dev=args.dev or None, workers=args.workers)
    _wait_for_database(config.database, "serve")
    try:
        server = Server.from_config(config, run_worker=True if args.embedded_worker else None)
    except DatabaseInUseError as exc:
        raise SystemExit(f"threadloom serve: {exc}") from None
    print(f"threadloom approval inbox: http://{args.host}:{args.port}/inbox", flush=True)
    _settle_heap()
    uvicorn.run(create_app(server), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def work(args: argparse.Namespace) -> int:
    """Run a worker until SIGTERM or SIGINT; its runs in progress then go back to the
    queue at once, for another worker to continue from their last checkpoints."""
    import logging
    import signal

    from threadloom.server import Server

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # a worker serves no HTTP: it authenticates nobody (runs carry their caller)
    config = _config(args, dev=True, workers=args.concurrency,
                     lease_seconds=args.lease_seconds)
    if not config.database.startswith(("postgres://", "postgresql://")):
        raise SystemExit(
            "threadloom worker needs a shared database: --database postgresql://... (or "
            "$THREADLOOM_DATABASE_URL); with a SQLite file, `threadloom serve` runs the runs."
        )
    _wait_for_database(config.database, "worker")
    server = Server.from_config(config, run_worker=True)
    server.ctx.storage.serve_workers_only()  # it serves no API

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        _settle_heap()
        logging.getLogger("threadloom.server").info(
            "worker %s ready (event loop: %s)", server.worker.worker_id if server.worker
            else "?", type(loop).__module__.split(".")[0],
        )
        try:
            await stop.wait()
        finally:
            await server.stop()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    return 0


#: the young generation's threshold in a server process (Python's default: 700)
GC_YOUNG_THRESHOLD = 7000


def _settle_heap() -> None:
    """Tune the cyclic garbage collector for a long-lived server process, once its code
    and graphs are loaded (a command's own process only: ``create_app`` in a process of
    the caller's touches nothing).

    What is loaded by now - modules, graphs, models, their classes - lives as long as
    the process: ``gc.freeze()`` moves it out of the collector's way, where every full
    collection went over it again (a worker on PostgreSQL spent ~12 % of its CPU in the
    collector, most of it in those). And a run allocates thousands of short-lived
    objects that reference counting frees: collecting the young generation every 7,000
    allocations rather than 700 looks at them ten times less often (cycles are still
    collected, a little later)."""
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def _wait_for_database(database: str, command: str) -> None:
    """On PostgreSQL, wait (``DATABASE_WAIT_SECONDS``) until the database accepts
    connections; exit with the reason if it never does - not a pool's warnings for half
    a minute, then a traceback."""
    if not database.startswith(("postgres://", "postgresql://")):
        return
    import sys

    from threadloom.server.config import DATABASE_WAIT_SECONDS
    from threadloom.server.storage.postgres import DatabaseUnreachableError, wait_for_database

    def say(message: str) -> None:
        print(f"threadloom {command}: {message}", file=sys.stderr, flush=True)

    try:
        wait_for_database(database, DATABASE_WAIT_SECONDS, say)
    except DatabaseUnreachableError as exc:
        raise SystemExit(f"threadloom {command}: {exc}") from None


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when installed (the ``server`` extra), as uvicorn picks for
    ``threadloom serve``: a worker's time is mostly the loop's own (socket waits, task
    switches between its runs); None: asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
