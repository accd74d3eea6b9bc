"""Addresses, metadata and filters of stored checkpoints, the same for every saver.

Why here: the memory saver and the SQL savers name a checkpoint the same way (a config of
thread, namespace and checkpoint id), store metadata as the same JSON, check list filters
alike and prune the same checkpoints; none of that depends on how rows are stored.
``FILTER_KEY_RE`` is what a metadata filter key may be: the SQL savers turn keys into
(parameterized) JSON paths, so a key is checked before any SQL is built from it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from threadloom.checkpoint.base import CheckpointMetadata

__all__ = [
    "FILTER_KEY_RE",
    "PAGE_SIZE",
    "canonical_json",
    "expiry_cutoff",
    "dump_metadata",
    "make_config",
    "pruned_checkpoints",
    "thread_and_ns",
    "timestamp",
    "validate_filter",
]

FILTER_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
PAGE_SIZE = 100  # checkpoints loaded per round trip by ``list``


def thread_and_ns(config: dict[str, Any]) -> tuple[str, str]:
    conf = config.get("configurable") or {}
    if "thread_id" not in conf:
        raise ValueError(
            "The checkpointer needs config['configurable']['thread_id'] to know which "
            "thread to read or write, e.g. {'configurable': {'thread_id': 'my-thread'}}."
        )
    return str(conf["thread_id"]), str(conf.get("checkpoint_ns") or "")


def make_config(thread_id: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def canonical_json(value: Any) -> str:
    """Key-sorted compact JSON, so equal dicts are equal strings (used for filters)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def dump_metadata(metadata: CheckpointMetadata | dict[str, Any]) -> str:
    """Metadata as JSON text; a value JSON cannot hold is a ``TypeError`` naming its key."""
    try:
        return canonical_json(dict(metadata))
    except (TypeError, ValueError) as exc:
        for key, value in dict(metadata).items():
            try:
                canonical_json(value)
            except (TypeError, ValueError):
                raise TypeError(
                    f"Checkpoint metadata must be JSON (str, int, float, bool, None, dict, "
                    f"list); key {key!r} holds a {type(value).__name__}: {value!r:.80}"
                ) from exc
        raise TypeError(f"Checkpoint metadata must be a JSON object: {exc}") from exc


def validate_filter(filter: dict[str, Any] | None) -> dict[str, Any]:
    """Check metadata filter keys before any SQL is built from them."""
    if not filter:
        return {}
    for key, value in filter.items():
        if not isinstance(key, str) or not FILTER_KEY_RE.match(key):
            raise ValueError(
                f"Invalid metadata filter key {key!r}: keys must be 1-64 characters of "
                "letters, digits, '_' or '-'."
            )
        try:
            canonical_json(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Metadata filter value for key {key!r} must be JSON-like, got {value!r:.80}"
            ) from exc
    return dict(filter)


_parsed_second: tuple[str, int] = ("", 0)  # (an ISO second in UTC, seconds since epoch)


def timestamp(ts: Any) -> float:
    """Seconds since the epoch of a checkpoint's ISO ``ts`` (now, if it has none).

    A ``ts`` as ``checkpoint_ts`` writes it, in the same second as the one read before
    (a run's checkpoints), is read from its microseconds alone; the result is the same
    float ``datetime.timestamp`` gives (whole microseconds over 10**6)."""
    global _parsed_second
    if type(ts) is str and len(ts) == 32 and ts[19] == "." and ts.endswith("+00:00"):
        second, seconds = _parsed_second
        micro = ts[20:26]
        micro = micro if micro.isascii() else ""
        if ts.startswith(second) and second and micro.isdigit():
            return (seconds * 1_000_000 + int(micro)) / 1_000_000
        try:
            whole = datetime.fromisoformat(ts[:19]).replace(tzinfo=UTC).timestamp()
        except ValueError:
            whole = None
        if whole is not None and micro.isdigit():
            _parsed_second = (ts[:19], int(whole))
            return (int(whole) * 1_000_000 + int(micro)) / 1_000_000
    try:
        dt = datetime.fromisoformat(str(ts))
    except ValueError:
        return time.time()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def pruned_checkpoints(
    entries: Sequence[tuple[str, str, Any]], keep_last: int
) -> set[tuple[str, str]]:
    """The (namespace, checkpoint id) pairs ``prune(keep_last)`` deletes, of one thread's
    ``entries`` (namespace, checkpoint id, metadata).

    The ``keep_last`` newest of each namespace stay - except in the namespace of a
    subgraph *call* (a segment ``node:task_id``), whose checkpoints go with the parent
    checkpoint they belong to (metadata ``parents``): a call that finished before the kept
    parent checkpoints is gone, an interrupted one (whose parent is kept) stays.
    Namespaces of persistent subgraphs (``checkpointer=True``: no task id) and
    checkpoints naming no parent follow the per-namespace rule only.
    """
    by_ns: dict[str, list[tuple[str, Any]]] = {}
    for ns, checkpoint_id, metadata in entries:
        by_ns.setdefault(ns, []).append((checkpoint_id, metadata))
    dropped: set[tuple[str, str]] = set()
    for ns, items in by_ns.items():
        items.sort(key=lambda item: item[0], reverse=True)
        dropped.update((ns, checkpoint_id) for checkpoint_id, _ in items[keep_last:])
    gone = {checkpoint_id for _, checkpoint_id in dropped}
    for ns in sorted(by_ns, key=lambda n: n.count("|")):  # parents before their children
        if not ns or all(":" not in part for part in ns.split("|")):
            continue
        for checkpoint_id, metadata in by_ns[ns]:
            parents = metadata.get("parents") if isinstance(metadata, dict) else None
            if isinstance(parents, dict) and any(p in gone for p in parents.values()):
                dropped.add((ns, checkpoint_id))
                gone.add(checkpoint_id)
    return dropped


def expiry_cutoff(older_than: timedelta, now: datetime | None) -> float:
    """Seconds since the epoch of ``now`` (default: the current time) minus
    ``older_than``: what ``expire_paused`` compares a thread's newest checkpoint with."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (now - older_than).timestamp()
