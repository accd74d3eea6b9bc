"""Channels: how each state key combines the writes of a superstep."""

from threadloom.channels.base import MISSING, BaseChannel
from threadloom.channels.binop import BinaryOperatorAggregate
from threadloom.channels.topic import NamedBarrierValue, Topic
from threadloom.channels.values import (
    AnyValue,
    EphemeralValue,
    LastValue,
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
    "NamedBarrierValue",
    "Topic",
    "TriggerFlag",
    "UntrackedValue",
]
