"""LangGraph's module path for the channel holding the last of several equal writes.

The channel lives in ``threadloom.channels.values``; this module names it where
LangGraph code imports it from.
"""

from threadloom.channels.values import AnyValue

__all__ = ["AnyValue"]
