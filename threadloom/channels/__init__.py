"""Channels: how each state key combines the writes of a superstep."""

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
