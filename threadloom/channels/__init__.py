"""Channels: how each state key combines the writes of a superstep.

A channel is what a state key is at run time. It takes a step's writes all at once
(``LastValue`` refuses two, a reducer's ``BinaryOperatorAggregate`` folds them, a
``Topic`` collects them), so the result does not depend on the order in which tasks
finished; the engine versions each channel, so only the ones that changed are stored.
"""

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.channels.binop import BinaryOperatorAggregate
from threadloom.channels.topic import NamedBarrierValue, NamedBarrierValueAfterFinish, Topic
from threadloom.channels.values import (
    AnyValue,
    EphemeralValue,
    LastValue,
    LastValueAfterFinish,
    TriggerFlag,
    UntrackedValue,
)

__all__ = [
    "MISSING",
    "AnyValue",
    "BaseChannel",
    "BinaryOperatorAggregate",
    "EphemeralValue",
    "LastValue",
    "LastValueAfterFinish",
    "NamedBarrierValue",
    "NamedBarrierValueAfterFinish",
    "Topic",
    "TriggerFlag",
    "UntrackedValue",
]
