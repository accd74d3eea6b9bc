"""Checkpoints LangGraph saved before its 0.4 format, read by a ``StateGraph``.

Those checkpoints name a node's trigger channels differently: ``start:<node>`` for an
edge from START, ``branch:<source>:<condition>:<node>`` for a conditional edge, and a
node's own channel (holding its name) for its plain edges. Today every node listens to
``branch:to:<node>``. ``TriggerRenames`` renames, in place, the channels of such a
checkpoint (values, versions and the versions each node saw) to the ones this graph uses,
and the channels its pending writes went to; a checkpoint already in today's format is
left as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

_TO = "branch:to:"


class TriggerRenames:
    """Renames the trigger channels of a pre-0.4 checkpoint for one graph's nodes/edges."""

    __slots__ = ("nodes", "successors")

    def __init__(self, nodes: Collection[str], edges: Iterable[tuple[str, str]]) -> None:
        self.nodes = frozenset(nodes)
        self.successors: dict[str, list[str]] = {}
        for src, dst in sorted(edges):
            if dst in self.nodes:
                self.successors.setdefault(src, []).append(dst)

    def renamed(self, channel: str) -> list[str]:
        """The channels ``channel`` of an old checkpoint stands for today."""
        if channel in self.nodes:
            return [_TO + dst for dst in self.successors.get(channel, ())]
        if channel.startswith("start:"):
            return [_TO + channel[len("start:"):]]
        if channel.startswith("branch:") and not channel.startswith(_TO):
            return [_TO + channel.rsplit(":", 1)[1]]
        return [channel]

    def __call__(
        self, checkpoint: dict[str, Any], writes: Sequence[tuple[str, str, Any]] = ()
    ) -> list[tuple[str, str, Any]]:
        """Migrate ``checkpoint`` in place (a no-op for one in today's format); return its
        pending ``writes`` (task id, channel, value) with their channels renamed too."""
        checkpoint.setdefault("updated_channels", None)
        writes = [(tid, name, value) for tid, channel, value in writes
                  for name in self.renamed(channel)]
        if not any(self.renamed(k) != [k] for k in checkpoint.get("channel_versions", {})):
            return writes
        values: dict[str, Any] = {}
        for key, value in checkpoint.get("channel_values", {}).items():
            for name in self.renamed(key):
                values.setdefault(name, value)
        checkpoint["channel_values"] = values
        checkpoint["channel_versions"] = self._versions(checkpoint.get("channel_versions", {}))
        checkpoint["versions_seen"] = {
            node: self._versions(seen)
            for node, seen in checkpoint.get("versions_seen", {}).items()
        }
        return writes

    def _versions(self, mapping: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, version in mapping.items():
            for name in self.renamed(key):
                if name not in out or version > out[name]:
                    out[name] = version
        return out

