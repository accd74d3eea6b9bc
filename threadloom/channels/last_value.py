"""LangGraph's module path for the channel keeping the last value written.

The channel lives in ``threadloom.channels.values``; this module names it where
LangGraph code imports it from.
"""

from threadloom.channels.values import LastValue, LastValueAfterFinish

__all__ = ["LastValue", "LastValueAfterFinish"]
