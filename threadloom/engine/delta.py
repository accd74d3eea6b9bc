"""The engine's side of ``DeltaChannel`` (see ``threadloom.channels.delta``).

Writing: a delta channel stores nothing at most checkpoints. Its writes are kept as the
steps' pending writes (the loop records them even for a task that ran alone), and every
``snapshot_frequency`` updates - or after ``MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS``
checkpoints - the whole value is stored as ``_DeltaSnapshot(value)``. Checkpoint
metadata carries ``counters_since_delta_snapshot``: per channel, ``(updates,
checkpoints)`` since its last snapshot (absent right after one).

Reading: a channel that has a version but no stored value is rebuilt from the saver's
``get_delta_channel_history`` - the nearest stored value up the parent chain (the seed)
and the writes recorded after it, oldest first. Plain reducer channels read the same
way, so a thread written with ``DeltaChannel`` reads (and continues) under a plain
reducer, and the other way round.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.channels.binop import BinaryOperatorAggregate
from threadloom.channels.delta import MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS, DeltaChannel
from threadloom.checkpoint.serde.types import _DeltaSnapshot

__all__ = [
    "COUNTERS_KEY",
    "apply_history",
    "delta_channels_to_snapshot",
    "exit_delta_task_id",
    "history_channels",
    "is_delta",
    "next_counters",
    "restore_stored",
]

COUNTERS_KEY = "counters_since_delta_snapshot"


def is_delta(channel: BaseChannel) -> bool:
    return isinstance(channel, DeltaChannel)


def delta_channels_to_snapshot(
    channels: Mapping[str, BaseChannel],
    counters: Mapping[str, tuple[int, int]],
    versions: Mapping[str, Any],
) -> set[str]:
    """The delta channels whose whole value the next checkpoint stores.

    ``counters``: per channel, ``(updates, checkpoints)`` since its last snapshot, this
    step included; ``versions``: the channel versions (a channel without one was never
    written and has nothing to store).
    """
    due: set[str] = set()
    for name, chan in channels.items():
        if not isinstance(chan, DeltaChannel) or name not in versions:
            continue
        updates, supersteps = counters.get(name, (0, 0))
        if updates >= chan.snapshot_frequency or supersteps >= _max_supersteps():
            due.add(name)
    return due


def _max_supersteps() -> int:
    """``MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS``, or the value of LangGraph's knob for it
    (``langgraph.pregel._checkpoint.DELTA_MAX_SUPERSTEPS_SINCE_SNAPSHOT``) when code
    has set that on the compatibility module."""
    compat = sys.modules.get("threadloom.pregel._checkpoint")
    return getattr(compat, "DELTA_MAX_SUPERSTEPS_SINCE_SNAPSHOT", MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS)


def prepare_writes(
    channels: Mapping[str, BaseChannel], writes: list[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """``writes`` with each write to a delta channel in its recorded form."""
    out = []
    for ch, value in writes:
        chan = channels.get(ch)
        out.append((ch, chan.prepare_write(value)) if isinstance(chan, DeltaChannel)
                   else (ch, value))
    return out


def next_counters(
    channels: Mapping[str, BaseChannel],
    previous: Mapping[str, Any] | None,
    updated: Iterable[str] | None,
) -> dict[str, tuple[int, int]]:
    """Counters after one more checkpoint in which ``updated`` channels changed."""
    prev = previous or {}
    changed = set(updated or ())
    out: dict[str, tuple[int, int]] = {}
    for name, chan in channels.items():
        if not isinstance(chan, DeltaChannel):
            continue
        updates, supersteps = prev.get(name, (0, 0))
        out[name] = (int(updates) + (name in changed), int(supersteps) + 1)
    return out


def exit_delta_task_id(step: int, task_id: str) -> str:
    """A task id for writes recorded at a run's end (durability="exit"): still a UUID, with
    the step in its first group so that the ids sort by step."""
    if step < 0 or step > 0xFFFFFFFF:
        raise ValueError(f"step out of range for an exit task id: {step}")
    new = f"{step:08x}{task_id[8:]}"
    if new == task_id:  # keep it distinct from the task's own id
        new = new[:-1] + ("1" if new[-1] != "1" else "2")
    return new


def history_channels(
    channels: Mapping[str, BaseChannel],
    values: Mapping[str, Any],
    versions: Mapping[str, Any],
) -> list[str]:
    """Channels whose value must be rebuilt from history: reducer channels (delta or
    plain) that have a version but whose value is not stored at this checkpoint."""
    out = []
    for name, chan in channels.items():
        if name not in versions:
            continue
        stored = values.get(name, MISSING)
        if isinstance(chan, DeltaChannel):
            if stored is MISSING or isinstance(stored, _DeltaSnapshot):
                if stored is MISSING:
                    out.append(name)
        elif isinstance(chan, BinaryOperatorAggregate) and stored is MISSING:
            out.append(name)
    return out


def restore_stored(spec: BaseChannel, stored: Any) -> BaseChannel:
    """A channel from its stored value: a snapshot a ``DeltaChannel`` stored is a plain
    value to any other channel (a thread written with delta channels read with plain
    reducers)."""
    if isinstance(stored, _DeltaSnapshot) and not isinstance(spec, DeltaChannel):
        stored = stored.value
    return spec.from_checkpoint(stored)


def apply_history(spec: BaseChannel, history: Mapping[str, Any]) -> BaseChannel:
    """A channel rebuilt from ``{"seed": value (optional), "writes": [(task, ch, v)]}``."""
    seed = history.get("seed", MISSING)
    writes = list(history.get("writes") or ())
    if isinstance(spec, DeltaChannel):
        chan = spec.from_checkpoint(seed)
        assert isinstance(chan, DeltaChannel)
        chan.replay_writes(writes)
        return chan
    if isinstance(seed, _DeltaSnapshot):
        seed = seed.value
    chan = spec.from_checkpoint(seed)
    for _task, _channel, value in writes:
        chan.update([value])
    return chan
