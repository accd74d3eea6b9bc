"""Compatibility path ``langgraph.pregel._checkpoint``: checkpoint helpers that tests and
libraries import from there. The code is ``threadloom.checkpoint.base``'s and the
engine's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from threadloom.channels import MISSING, BaseChannel
from threadloom.checkpoint.base import (
    Checkpoint,
    copy_checkpoint,
    create_checkpoint_id,
    empty_checkpoint,
)


def channels_from_checkpoint(
    specs: Mapping[str, BaseChannel], checkpoint: Checkpoint
) -> tuple[dict[str, BaseChannel], dict[str, Any]]:
    """Fresh channels holding ``checkpoint``'s values, and the managed values (none are
    channels in threadloom: they are computed per task)."""
    values = checkpoint["channel_values"]
    channels = {k: spec.from_checkpoint(values.get(k, MISSING)) for k, spec in specs.items()}
    return channels, {}


__all__ = [
    "channels_from_checkpoint",
    "copy_checkpoint",
    "create_checkpoint_id",
    "empty_checkpoint",
]
