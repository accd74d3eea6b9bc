"""The ``threadloom`` command.

    threadloom sweep --sqlite checkpoints.db --graph myapp.agent:graph [--now ISO] [--json]
    threadloom sweep --postgres postgresql://... --graph myapp.agent:graph
    threadloom audit --sqlite checkpoints.db --thread t-42 [--out log.jsonl] [--verify]
                     [--key-file audit.key]
    threadloom rekey --sqlite checkpoints.db [--batch-size N] [--allow-plaintext-reads]
                     [--allow-unbound-reads] [--json]

    threadloom serve --config langgraph.json [--port 2024] [--database FILE|URL] [--dev]
    threadloom worker --config langgraph.json --database postgresql://...
    threadloom interrupts list | approve ID | reject ID | runs list   (see threadloom.server)

``sweep`` applies the passed deadlines of approval requests on every paused thread of
the graph (``threadloom.hitl.deadlines.sweep``; threads of other graphs in the same
database are left alone); run it from cron or a timer. ``audit`` prints (or exports as
JSON lines) a thread's audit log; ``--verify`` checks its chain, its anchor and the
anchors in the thread's checkpoints (and the HMAC, with the key), and fails on a thread
with no log. ``rekey`` re-encrypts every stored value with the key in
``THREADLOOM_AES_KEY``, reading those under the old keys in ``THREADLOOM_AES_OLD_KEYS``
(``threadloom.checkpoint.rekey``): resumable, one transaction per batch. A ``--sqlite``
path that does not exist is an error, never a new file. Commands that read an encrypted
store (``sweep``, ``audit``) use the same two variables when ``THREADLOOM_AES_KEY`` is set.

``--graph module:attr`` names a compiled graph, a ``StateGraph`` builder, or a function
taking the checkpointer and returning a compiled graph; the graph is run on the saver
given here, whatever checkpointer it was compiled with. The current directory is on
the import path, as with ``python -m``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["bind_graph", "load_graph", "main"]


def _add_saver_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sqlite", metavar="PATH", help="SQLite checkpoint file")
    where.add_argument("--postgres", metavar="URL", help="PostgreSQL connection URL")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadloom", description="Stateful agent workflows with people in the loop."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser(
        "sweep", help="apply passed approval deadlines on every paused thread"
    )
    _add_saver_options(sweep)
    sweep.add_argument("--graph", required=True, metavar="MODULE:ATTR",
                       help="the graph whose threads to sweep, e.g. myapp.agent:graph")
    sweep.add_argument("--now", metavar="ISO", help="sweep as of this time (default: now)")
    sweep.add_argument("--json", action="store_true", help="print one JSON object per result")

    audit = commands.add_parser("audit", help="print or export a thread's audit log")
    _add_saver_options(audit)
    audit.add_argument("--thread", required=True, metavar="ID", help="thread id")
    audit.add_argument("--out", metavar="FILE", help="write JSON lines to FILE")
    audit.add_argument("--verify", action="store_true",
                       help="check the log's hash chain and its anchors; exit 1 if it is "
                            "broken, cut short or missing")
    audit.add_argument("--key-file", metavar="FILE",
                       help="the saver's audit_key (HMAC), to verify a signed log "
                            "(default: $THREADLOOM_AUDIT_KEY)")

    rekey = commands.add_parser(
        "rekey", help="re-encrypt every stored value with the current key ($THREADLOOM_AES_KEY)"
    )
    _add_saver_options(rekey)
    rekey.add_argument("--batch-size", type=int, default=500, metavar="N",
                       help="rows per transaction (default 500)")
    rekey.add_argument("--allow-plaintext-reads", action="store_true",
                       help="also encrypt values stored unencrypted (migrating a store "
                            "written before encryption was turned on)")
    rekey.add_argument("--allow-unbound-reads", action="store_true",
                       help="also bind values encrypted without their place (written by a "
                            "threadloom older than place binding)")
    rekey.add_argument("--json", action="store_true", help="print the report as JSON")

    from threadloom.server.cli import add_serve_parser, add_worker_parser
    from threadloom.server.operator_cli import add_operator_parsers

    add_serve_parser(commands)
    add_worker_parser(commands)
    add_operator_parsers(commands)
    return parser


class _Refused(Exception):
    """A command-line mistake, reported on stderr with exit status 2."""


@contextmanager
def open_saver(args: argparse.Namespace) -> Iterator[Any]:
    """The saver named on the command line, set up and closed on exit."""
    if args.sqlite:
        import os

        from threadloom.checkpoint.sqlite import SqliteSaver

        if args.sqlite != ":memory:" and not os.path.isfile(args.sqlite):
            # A mistyped path must not quietly create an empty database and "pass".
            raise _Refused(f"--sqlite {args.sqlite!r}: no such database file.")
        with SqliteSaver.from_conn_string(args.sqlite) as saver:
            _use_keys(saver, args)
            yield saver
    else:
        from threadloom.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(args.postgres) as saver:
            saver.setup()
            _use_keys(saver, args)
            yield saver


def _use_keys(saver: Any, args: argparse.Namespace) -> None:
    """Read (and write) an encrypted store with the keys in the environment:
    ``THREADLOOM_AES_KEY`` (required by ``rekey``) and ``THREADLOOM_AES_OLD_KEYS``."""
    import os

    if args.command != "rekey" and not os.environ.get("THREADLOOM_AES_KEY", "").strip():
        return
    from threadloom.checkpoint.serde import EncryptedSerializer, EncryptionKeyError

    try:
        saver.serde = EncryptedSerializer.from_aes_gcm(
            allow_plaintext_reads=getattr(args, "allow_plaintext_reads", False),
            allow_unbound_reads=getattr(args, "allow_unbound_reads", False),
        )
    except EncryptionKeyError as exc:
        raise _Refused(str(exc)) from None


def load_graph(spec: str, checkpointer: Any) -> Any:
    """Import ``module:attr`` and return it as a compiled graph running on ``checkpointer``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--graph {spec!r}: use MODULE:ATTR, e.g. myapp.agent:graph")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"--graph {spec!r}: cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SystemExit(f"--graph {spec!r}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return bind_graph(obj, checkpointer, what=f"--graph {spec!r}")


def bind_graph(obj: Any, checkpointer: Any, *, store: Any = None, what: str = "graph") -> Any:
    """``obj`` (a compiled graph, a ``StateGraph`` builder, or a function taking the
    checkpointer and returning a compiled graph) as a compiled graph running on
    ``checkpointer`` (and on ``store`` when given and the graph has none)."""
    from threadloom.graph import StateGraph

    if isinstance(obj, StateGraph):
        graph = obj.compile(checkpointer=checkpointer)
    elif getattr(obj, "_threadloom_graph", False):
        graph = copy.copy(obj)  # the same graph, on this command's saver
        graph.checkpointer = checkpointer
    elif callable(obj) and getattr(graph := obj(checkpointer), "_threadloom_graph", False):
        pass
    else:
        raise SystemExit(
            f"{what} is a {type(obj).__name__}: give a compiled graph, a StateGraph, "
            "or a function taking the checkpointer and returning a compiled graph."
        )
    if store is not None and getattr(graph, "store", None) is None:
        graph.store = store
    return graph


def _sweep(args: argparse.Namespace) -> int:
    from threadloom.hitl.clock import from_iso
    from threadloom.hitl.deadlines import sweep

    now = from_iso(args.now) if args.now else None
    with open_saver(args) as saver:
        graph = load_graph(args.graph, saver)
        results = sweep(graph, now=now)
    for r in results:
        if args.json:
            print(json.dumps({**r.__dict__, "ok": r.ok}, sort_keys=True))
        else:
            status = "ok" if r.ok else f"FAILED: {r.error}"
            print(f"{r.thread_id}: {r.action} ({r.request_id}) -> {r.decision} "
                  f"[deadline {r.deadline}] {status}")
    if not args.json:
        print(f"{len(results)} expired request(s) handled.")
    return 0 if all(r.ok for r in results) else 1


def _audit_key(args: argparse.Namespace) -> bytes | None:
    import os

    if args.key_file:
        with open(args.key_file, "rb") as fh:
            return fh.read().strip()
    env = os.environ.get("THREADLOOM_AUDIT_KEY")
    return env.encode() if env else None


def _audit(args: argparse.Namespace) -> int:
    from threadloom.hitl.approval_hooks import checkpoint_anchors
    from threadloom.hitl.audit import export_jsonl, verify_chain

    key = _audit_key(args) if args.verify else None
    with open_saver(args) as saver:
        records = saver.list_audit(args.thread)
        head = saver.audit_head(args.thread) if args.verify else None
        anchors = checkpoint_anchors(saver, args.thread) if args.verify else []
    if args.verify:
        if not records and head is None and not anchors:
            print(f"no audit log for thread {args.thread!r} (wrong thread id or database?)",
                  file=sys.stderr)
            return 1
        try:
            verify_chain(records, head=head, key=key, anchors=anchors)
        except ValueError as exc:
            print(f"audit log of {args.thread!r} is broken: {exc}", file=sys.stderr)
            return 1
    if args.out:
        count = export_jsonl(records, args.out)
        print(f"{count} record(s) written to {args.out}")
    else:
        export_jsonl(records, sys.stdout)
    return 0


def _rekey(args: argparse.Namespace) -> int:
    from threadloom.checkpoint.rekey import rekey
    from threadloom.checkpoint.serde import CorruptCheckpointError

    if args.batch_size < 1:
        raise _Refused(f"--batch-size must be at least 1, got {args.batch_size}.")
    with open_saver(args) as saver:
        try:
            report = rekey(saver, batch_size=args.batch_size)
        except CorruptCheckpointError as exc:
            print(f"threadloom rekey stopped: {exc}\nEverything re-encrypted before this row "
                  "is committed; fix or remove the row (or pass the opt-in it names) and run "
                  "the command again: it carries on where it stopped.", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"key_id": report.key_id, "scanned": report.scanned,
                          "resealed": report.resealed}, sort_keys=True))
    else:
        tables = ", ".join(f"{t} {n}" for t, n in report.resealed.items())
        print(f"{report.total_resealed} value(s) re-encrypted with key {report.key_id} "
              f"({tables}).")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "rekey":
            return _rekey(args)
        if args.command == "serve":
            from threadloom.server.cli import serve

            return serve(args)
        if args.command == "worker":
            from threadloom.server.cli import work

            return work(args)
        if args.command in ("interrupts", "approve", "reject", "runs"):
            from threadloom.server.operator_cli import run_operator_command

            return run_operator_command(args)
        return _audit(args)
    except _Refused as exc:
        print(f"threadloom {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
