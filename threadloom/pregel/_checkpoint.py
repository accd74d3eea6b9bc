"""Compatibility path ``langgraph.pregel._checkpoint``: checkpoint helpers that tests and
libraries import from there. The code is ``threadloom.checkpoint.base``'s."""

from threadloom.checkpoint.base import copy_checkpoint, create_checkpoint_id, empty_checkpoint

__all__ = ["copy_checkpoint", "create_checkpoint_id", "empty_checkpoint"]
