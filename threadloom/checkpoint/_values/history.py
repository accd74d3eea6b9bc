"""``get_delta_channel_history``: what a saver returns to rebuild delta-stored channels.

A ``DeltaChannel`` (and a plain reducer channel reading a thread written with one) has no
value stored at most checkpoints. Its value at checkpoint C is its nearest stored value
up C's parent chain (the *seed*: a ``_DeltaSnapshot`` or a plain value) followed by every
write recorded, on the way from that ancestor down to C, for the channel: the writes
stored on an ancestor are the ones its step applied to make its child. The writes stored
on C itself are not applied yet, so they are left out.

The walk here uses only ``get_tuple`` / ``aget_tuple``, so it works for every saver;
savers may override it with a faster one returning the same result.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

__all__ = ["APPLIED_KEY", "DeltaChannelHistory", "HistoryWalk"]

APPLIED_KEY = "delta_writes_applied"
"""Checkpoint metadata: the task ids of the parent's recorded writes this checkpoint
applied, in order (see the module docstring)."""


class DeltaChannelHistory(TypedDict):
    """One channel's history: ``seed`` absent means "start empty"."""

    writes: list[tuple[str, str, Any]]
    seed: NotRequired[Any]


class HistoryWalk:
    """Accumulates the walk from a checkpoint up its parents, one tuple at a time."""

    def __init__(self, channels: Iterable[str]) -> None:
        self.remaining = set(channels)
        self.segments: dict[str, list[list[tuple[str, str, Any]]]] = {
            ch: [] for ch in self.remaining
        }
        self.seeds: dict[str, Any] = {}
        self.first = True
        self.applied: list[str] | None = None  # what the child just visited applied

    def _parent_writes(self, tup: Any) -> list[tuple[str, str, Any]]:
        """The writes of ``tup`` (a parent) that the child visited before it applied."""
        writes = [tuple(w) for w in tup.pending_writes or () if w[1] in self.remaining]
        if self.applied is None or not writes:
            return writes
        by_task: dict[str, list[tuple[str, str, Any]]] = {}
        for write in writes:
            by_task.setdefault(write[0], []).append(write)
        return [w for tid in dict.fromkeys(self.applied) for w in by_task.get(tid, ())]

    def visit(self, tup: Any) -> Any:
        """Take one checkpoint tuple in; the config of the next one to visit, or None."""
        if not self.first:
            by_channel: dict[str, list[tuple[str, str, Any]]] = {}
            for write in self._parent_writes(tup):
                by_channel.setdefault(write[1], []).append(write)
            for ch, writes in by_channel.items():
                self.segments[ch].append(writes)
        self.first = False
        applied = (tup.metadata or {}).get(APPLIED_KEY)
        self.applied = None if applied is None else [str(t) for t in applied]
        values = tup.checkpoint.get("channel_values") or {}
        for ch in list(self.remaining):
            if ch in values:
                self.seeds[ch] = values[ch]
                self.remaining.discard(ch)
        if not self.remaining:
            return None
        return tup.parent_config

    def result(self) -> dict[str, DeltaChannelHistory]:
        out: dict[str, DeltaChannelHistory] = {}
        for ch, segments in self.segments.items():
            writes = [w for segment in reversed(segments) for w in segment]
            history: DeltaChannelHistory = {"writes": writes}
            if ch in self.seeds:
                history["seed"] = self.seeds[ch]
            out[ch] = history
        return out
