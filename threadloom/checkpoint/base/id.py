"""Time-ordered UUIDs: checkpoint ids whose string order is creation order.

* ``uuid6(node=None, clock_seq=None)``: RFC 9562 version 6 - a 60-bit timestamp in 100 ns
  ticks since 1582-10-15, most significant bits first, then ``clock_seq`` (14 bits) and
  ``node`` (48 bits). Checkpoint ids are UUIDv6 strings, so ``max(id)`` is the newest.
* ``uuid7()``: RFC 9562 version 7 - milliseconds since the Unix epoch, a 12-bit sub-
  millisecond fraction, then random bits.

Both are strictly increasing within a process: ids made in the same clock tick (or after
the clock stepped back) take the next tick instead. ``clock_seq`` and ``node`` default to
random bits; a given ``clock_seq`` keeps its low 14 bits (so ``-1`` gives ``0x3fff``).
"""

from __future__ import annotations

import random
import threading
import time
import uuid

__all__ = ["UUID_EPOCH_OFFSET", "next_uuid6_tick", "uuid6", "uuid7"]

# 100 ns intervals between the Gregorian epoch (1582-10-15) and the Unix epoch
UUID_EPOCH_OFFSET = 0x01B21DD213814000

_lock = threading.Lock()
_last_v6 = 0
_last_v7 = 0


def next_uuid6_tick() -> int:
    """The current time in 100 ns ticks since 1582-10-15, greater than any returned before."""
    global _last_v6
    t = time.time_ns() // 100 + UUID_EPOCH_OFFSET
    with _lock:
        if t <= _last_v6:
            t = _last_v6 + 1
        _last_v6 = t
    return t


def uuid6(node: int | None = None, clock_seq: int | None = None) -> uuid.UUID:
    """A version 6 UUID for now (see the module docstring)."""
    t = next_uuid6_tick()
    if node is None:
        node = random.getrandbits(48)
    if clock_seq is None:
        clock_seq = random.getrandbits(14)
    value = (
        ((t >> 12) & 0xFFFF_FFFF_FFFF) << 80
        | 0x6 << 76
        | (t & 0x0FFF) << 64
        | 0b10 << 62
        | (clock_seq & 0x3FFF) << 48
        | (node & 0xFFFF_FFFF_FFFF)
    )
    return uuid.UUID(int=value)


def uuid7() -> uuid.UUID:
    """A version 7 UUID for now (see the module docstring)."""
    global _last_v7
    ns = time.time_ns()
    # milliseconds, then the sub-millisecond part in 1/4096 ms: one 60-bit counter
    t = (ns // 1_000_000) << 12 | ((ns % 1_000_000) * 4096 // 1_000_000)
    with _lock:
        if t <= _last_v7:
            t = _last_v7 + 1
        _last_v7 = t
    value = (
        (t >> 12) << 80
        | 0x7 << 76
        | (t & 0x0FFF) << 64
        | 0b10 << 62
        | random.getrandbits(62)
    )
    return uuid.UUID(int=value)
