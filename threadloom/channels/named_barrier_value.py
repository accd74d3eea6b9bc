"""LangGraph's module path for the join barriers behind ``add_edge([a, b], c)``.

The channels live in ``threadloom.channels.topic``; this module names them where
LangGraph code imports them from.
"""

from threadloom.channels.topic import NamedBarrierValue, NamedBarrierValueAfterFinish

__all__ = ["NamedBarrierValue", "NamedBarrierValueAfterFinish"]
