"""``threadloom serve``: run the server on uvicorn.

    threadloom serve --config langgraph.json [--host 127.0.0.1] [--port 2024]
                     [--database threadloom.db | postgresql://...] [--dev]

``--database`` defaults to ``$THREADLOOM_DATABASE_URL``, else ``threadloom.db`` beside
the config file. ``--dev`` (alias ``--no-auth``) accepts unauthenticated callers: local
development only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_serve_parser", "serve"]


def add_serve_parser(commands: argparse._SubParsersAction) -> None:
    """The ``serve`` subcommand's options."""
    parser = commands.add_parser("serve", help="serve graphs over LangGraph's Agent Server API")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="langgraph.json-style config (default: ./langgraph.json if any)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2024)
    parser.add_argument("--database", default=None, metavar="PATH_OR_URL",
                        help="SQLite file (default: $THREADLOOM_DATABASE_URL or threadloom.db)")
    parser.add_argument("--dev", "--no-auth", dest="dev", action="store_true",
                        help="accept unauthenticated callers (local development only)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="runs executed at once by the embedded worker (default 8)")
    parser.add_argument("--log-level", default="info")


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted."""
    import uvicorn

    from threadloom.server import Server, create_app, load_config

    config_path = args.config
    if config_path is None and Path("langgraph.json").is_file():
        config_path = "langgraph.json"
    config = load_config(config_path, dev=args.dev or None, workers=args.workers)
    database = args.database or os.environ.get("THREADLOOM_DATABASE_URL")
    config.database = database or str(config.base_dir / "threadloom.db")
    server = Server.from_config(config)
    print(f"threadloom approval inbox: http://{args.host}:{args.port}/inbox", flush=True)
    uvicorn.run(create_app(server), host=args.host, port=args.port, log_level=args.log_level)
    return 0
