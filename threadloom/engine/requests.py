"""The I/O requests the engine yields, and the one place each driver performs them.

The run loop (``Loop.run``) and the thread-state operations of ``get_state`` /
``update_state`` are generators: they never call a saver, they yield one of these small
records and get the answer sent back. A request is never changed once yielded; the
classes are slotted dataclasses, not frozen ones, only because a frozen dataclass's
``__init__`` costs three times as much (~7,600 CPU instructions against ~2,500, under
callgrind) and the loop makes about ten requests per approval cycle.

``perform`` (plain calls) and ``aperform`` (the saver's ``a``-methods, awaited) dispatch
on the record's type, so the algorithm exists once and a new request is a new class
here, checked by the type checker, rather than a method name spelled in a string.

``RunTasks`` and ``NodeWrites`` are not saver calls: the drivers run a step's tasks, and
an ``update_state`` asks for a node's writes (so an async routing function is awaited).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from threadloom.checkpoint.base import Checkpoint

__all__ = [
    "CacheGet",
    "CacheSet",
    "GetDeltaHistory",
    "GetTuple",
    "LatestBefore",
    "NodeWrites",
    "Put",
    "PutWithWrites",
    "PutWrites",
    "Request",
    "RunTasks",
    "Settle",
    "aperform",
    "perform",
]

Config = dict[str, Any]


@dataclass(slots=True)
class GetTuple:
    """``saver.get_tuple(config)``: a checkpoint (the newest, or the one named)."""

    config: Config


@dataclass(slots=True)
class LatestBefore:
    """The newest checkpoint of ``config``'s thread older than ``checkpoint_id`` (one
    ``saver.list(..., before=..., limit=1)``)."""

    config: Config
    checkpoint_id: str


@dataclass(slots=True)
class GetDeltaHistory:
    """``saver.get_delta_channel_history(config=, channels=)``: what rebuilds the channels
    a checkpoint stores as deltas (see ``threadloom.engine.delta``)."""

    config: Config
    channels: Sequence[str]


@dataclass(slots=True)
class Put:
    """``saver.put(config, checkpoint, metadata, new_versions)``: save a checkpoint."""

    config: Config
    checkpoint: Checkpoint
    metadata: dict[str, Any]
    new_versions: dict[str, Any]


@dataclass(slots=True)
class PutWrites:
    """``saver.put_writes(config, writes, task_id, task_path)``: a task's pending writes
    on the checkpoint ``config`` names (the path is left out for a saver whose
    ``put_writes`` predates the parameter)."""

    config: Config
    writes: Sequence[tuple[str, Any]]
    task_id: str
    task_path: str = ""


@dataclass(slots=True)
class PutWithWrites:
    """A checkpoint and the first writes kept on it, in one saver call when the saver
    combines them (``put_with_writes``), else ``put`` then ``put_writes``."""

    put: Put
    writes: PutWrites


@dataclass(slots=True)
class Settle:
    """The end of a run: the saver stores what its per-step checks left for later (only
    threadloom's savers have ``settle``; for others this does nothing)."""

    config: Config


@dataclass(slots=True)
class CacheGet:
    """``cache.get(keys)`` of the node cache: the cached writes found, by key."""

    keys: list[Any]


@dataclass(slots=True)
class CacheSet:
    """``cache.set(pairs)`` of the node cache: ``{key: (encoded writes, ttl)}``."""

    pairs: dict[Any, Any]


@dataclass(slots=True)
class RunTasks:
    """Run a superstep's tasks (the driver's part); the loop reads their outcome from
    the tasks themselves."""

    tasks: list[Any]


@dataclass(slots=True)
class NodeWrites:
    """The writes ``writer`` (a node's write function) makes of ``values`` for ``task``:
    what an ``update_state`` as that node writes."""

    writer: Any
    task: Any
    values: Any


Request = (GetTuple | LatestBefore | GetDeltaHistory | Put | PutWrites | PutWithWrites
           | Settle | CacheGet | CacheSet | RunTasks | NodeWrites)


def perform(saver: Any, request: Request, cache: Any = None) -> Any:
    """Do ``request`` with plain calls: on ``saver``, or on the node ``cache``.
    (``RunTasks`` is the driver's own: it never comes here.)"""
    if request.__class__ is Put:  # a step's checkpoint: skips the match's class patterns
        return saver.put(request.config, request.checkpoint, request.metadata,
                         request.new_versions)
    match request:
        # (the usual requests first)
        case Put(config, checkpoint, metadata, new_versions):
            return saver.put(config, checkpoint, metadata, new_versions)
        case GetTuple(config):
            return saver.get_tuple(config)
        case PutWrites(config, writes, task_id, task_path):
            if _takes_task_path(saver.__class__, "put_writes"):
                return saver.put_writes(config, writes, task_id, task_path)
            return saver.put_writes(config, writes, task_id)
        case PutWithWrites(put, writes):
            if _combines(saver.__class__, "put_with_writes"):
                return saver.put_with_writes(put.config, put.checkpoint, put.metadata,
                                             put.new_versions, writes.writes,
                                             writes.task_id, writes.task_path)
            saved = perform(saver, put)
            perform(saver, writes)
            return saved
        case Settle(config):
            settle = getattr(saver, "settle", None)
            return None if settle is None else settle(config)
        case GetDeltaHistory(config, channels):  # keyword-only in the saver API
            return saver.get_delta_channel_history(config=config, channels=channels)
        case LatestBefore(config, checkpoint_id):
            return next(iter(saver.list(config, before=_before(config, checkpoint_id),
                                        limit=1)), None)
        case CacheGet(keys):
            return cache.get(keys)
        case CacheSet(pairs):
            return cache.set(pairs)
        case NodeWrites(writer, task, values):
            return writer(task, values)
    raise TypeError(f"Not a request a driver performs: {request!r}")


async def aperform(saver: Any, request: Request, cache: Any = None) -> Any:
    """The async twin of ``perform`` (the saver's and cache's ``a``-prefixed methods; an
    async write function of ``NodeWrites`` is awaited)."""
    match request:
        case Put(config, checkpoint, metadata, new_versions):
            return await saver.aput(config, checkpoint, metadata, new_versions)
        case GetTuple(config):
            return await saver.aget_tuple(config)
        case PutWrites(config, writes, task_id, task_path):
            if _takes_task_path(saver.__class__, "aput_writes"):
                return await saver.aput_writes(config, writes, task_id, task_path)
            return await saver.aput_writes(config, writes, task_id)
        case PutWithWrites(put, writes):
            if _combines(saver.__class__, "aput_with_writes"):
                return await saver.aput_with_writes(put.config, put.checkpoint, put.metadata,
                                                    put.new_versions, writes.writes,
                                                    writes.task_id, writes.task_path)
            saved = await aperform(saver, put)
            await aperform(saver, writes)
            return saved
        case Settle(config):
            settle = getattr(saver, "asettle", None)
            return None if settle is None else await settle(config)
        case GetDeltaHistory(config, channels):
            return await saver.aget_delta_channel_history(config=config, channels=channels)
        case LatestBefore(config, checkpoint_id):
            async for tup in saver.alist(config, before=_before(config, checkpoint_id),
                                         limit=1):
                return tup
            return None
        case CacheGet(keys):
            return await cache.aget(keys)
        case CacheSet(pairs):
            return await cache.aset(pairs)
        case NodeWrites(writer, task, values):
            if getattr(writer, "is_async", False):
                return await writer.acall(task, values)
            return writer(task, values)
    raise TypeError(f"Not a request a driver performs: {request!r}")


def _before(config: Config, checkpoint_id: str) -> Config:
    return {"configurable": {**config["configurable"], "checkpoint_id": checkpoint_id}}


@functools.lru_cache(maxsize=64)
def _combines(cls: type, method: str) -> bool:
    """Whether ``cls`` has ``method`` (``put_with_writes`` or its async twin) from the
    class whose put and put_writes it combines: a subclass that overrides one of those
    gets them called one by one instead."""
    owner = next((c for c in cls.__mro__ if method in c.__dict__), None)
    if owner is None:
        return False
    put, writes = ("aput", "aput_writes") if method.startswith("a") else ("put", "put_writes")
    return all(getattr(cls, name, None) is getattr(owner, name, None) for name in (put, writes))


@functools.lru_cache(maxsize=64)
def _takes_task_path(cls: type, method: str) -> bool:
    """Whether ``cls.<method>`` (``put_writes`` or ``aput_writes``) takes the
    ``task_path`` argument (savers written against an older signature do not)."""
    try:
        params = inspect.signature(getattr(cls, method)).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 5
