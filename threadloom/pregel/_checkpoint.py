"""Compatibility path ``langgraph.pregel._checkpoint``: checkpoint helpers that tests and
libraries import from there. The code is ``threadloom.checkpoint.base``'s and the
engine's (``threadloom.engine.delta`` for delta channels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadloom.channels import MISSING, BaseChannel
from threadloom.channels.delta import MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS, DeltaChannel
from threadloom.checkpoint.base import (
    Checkpoint,
    copy_checkpoint,
    create_checkpoint_id,
    empty_checkpoint,
)
from threadloom.engine.delta import (
    apply_history,
    delta_channels_to_snapshot,
    exit_delta_task_id,
    history_channels,
)

DELTA_MAX_SUPERSTEPS_SINCE_SNAPSHOT = MAX_SUPERSTEPS_BETWEEN_SNAPSHOTS
"""LangGraph's name for the checkpoints-between-snapshots bound; setting it here (as
tests do with ``unittest.mock.patch``) changes the bound the engine applies."""


def _restore(
    specs: Mapping[str, BaseChannel], checkpoint: Checkpoint, histories: Mapping[str, Any]
) -> dict[str, BaseChannel]:
    values = checkpoint["channel_values"]
    return {
        k: apply_history(spec, histories[k])
        if k in histories
        else spec.from_checkpoint(values.get(k, MISSING))
        for k, spec in specs.items()
    }


def channels_from_checkpoint(
    specs: Mapping[str, BaseChannel],
    checkpoint: Checkpoint,
    *,
    saver: Any = None,
    config: Any = None,
) -> tuple[dict[str, BaseChannel], dict[str, Any]]:
    """Fresh channels holding ``checkpoint``'s values, and the managed values (none are
    channels in threadloom: they are computed per task). Reducer channels stored as
    deltas are rebuilt through ``saver.get_delta_channel_history`` when a saver is given."""
    histories: Mapping[str, Any] = {}
    wanted = _wanted(specs, checkpoint, saver, config)
    if wanted:
        histories = saver.get_delta_channel_history(config=config, channels=wanted)
    return _restore(specs, checkpoint, histories), {}


async def achannels_from_checkpoint(
    specs: Mapping[str, BaseChannel],
    checkpoint: Checkpoint,
    *,
    saver: Any = None,
    config: Any = None,
) -> tuple[dict[str, BaseChannel], dict[str, Any]]:
    """``channels_from_checkpoint`` reading history through the saver's async API."""
    histories: Mapping[str, Any] = {}
    wanted = _wanted(specs, checkpoint, saver, config)
    if wanted:
        histories = await saver.aget_delta_channel_history(config=config, channels=wanted)
    return _restore(specs, checkpoint, histories), {}


def _wanted(specs: Mapping[str, BaseChannel], checkpoint: Checkpoint, saver: Any,
            config: Any) -> list[str]:
    """The channels to rebuild from the saver's history. A delta channel that was written
    but has no stored value cannot be rebuilt without a saver and a config to walk."""
    wanted = history_channels(
        specs, checkpoint["channel_values"], checkpoint.get("channel_versions", {})
    )
    if saver is not None and config is not None:
        return wanted
    unreadable = [k for k in wanted if isinstance(specs[k], DeltaChannel)]
    if unreadable:
        raise ValueError(
            f"Cannot read delta channel(s) {unreadable}: they were written but the "
            "checkpoint stores no value for them, and there is no checkpointer to read "
            "their history from. Pass saver= (the checkpointer) and config= (the "
            "checkpoint's config)."
        )
    return []


__all__ = [
    "achannels_from_checkpoint",
    "channels_from_checkpoint",
    "copy_checkpoint",
    "create_checkpoint_id",
    "delta_channels_to_snapshot",
    "empty_checkpoint",
    "exit_delta_task_id",
]
