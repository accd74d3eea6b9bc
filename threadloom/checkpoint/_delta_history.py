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

__all__ = ["DeltaChannelHistory", "HistoryWalk"]


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

    def visit(self, tup: Any) -> Any:
        """Take one checkpoint tuple in; the config of the next one to visit, or None."""
        if not self.first:
            by_channel: dict[str, list[tuple[str, str, Any]]] = {}
            for write in tup.pending_writes or ():
                if write[1] in self.remaining:
                    by_channel.setdefault(write[1], []).append(tuple(write))
            for ch, writes in by_channel.items():
                self.segments[ch].append(writes)
        self.first = False
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
