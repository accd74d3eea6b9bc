"""LangGraph's module path for the channel holding a value never stored in checkpoints.

The channel lives in ``threadloom.channels.values``; this module names it where
LangGraph code imports it from.
"""

from threadloom.channels.values import UntrackedValue

__all__ = ["UntrackedValue"]
