"""LangGraph's module path for the channel holding a value that lives for one superstep.

The channel lives in ``threadloom.channels.values``; this module names it where
LangGraph code imports it from.
"""

from threadloom.channels.values import EphemeralValue

__all__ = ["EphemeralValue"]
