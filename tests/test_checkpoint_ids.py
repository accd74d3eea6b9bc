"""Time-ordered ids (``threadloom.checkpoint.base.id``) and checkpoint ids."""

from __future__ import annotations

import time
import uuid

from threadloom.checkpoint.base import create_checkpoint_id
from threadloom.checkpoint.base.id import uuid6, uuid7


def test_uuid6_layout_and_order() -> None:
    made = [uuid6() for _ in range(2000)]
    assert all(isinstance(u, uuid.UUID) and u.version == 6 for u in made)
    assert all(u.variant == uuid.RFC_4122 for u in made)
    texts = [str(u) for u in made]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)  # strictly increasing
    pinned = uuid6(node=0xABCDEF, clock_seq=-1)
    assert pinned.clock_seq == 0x3FFF and pinned.node == 0xABCDEF
    # the timestamp is now, in 100 ns ticks since 1582-10-15
    ticks = (pinned.int >> 80) << 12 | (pinned.int >> 64) & 0x0FFF
    seconds = (ticks - 0x01B21DD213814000) / 10_000_000
    assert abs(seconds - time.time()) < 5


def test_uuid7_layout_and_order() -> None:
    made = [uuid7() for _ in range(2000)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in made)
    texts = [str(u) for u in made]
    assert texts == sorted(texts) and len(set(texts)) == len(texts)
    assert abs((made[-1].int >> 80) / 1000 - time.time()) < 5


def test_checkpoint_ids_and_uuid6_share_one_clock() -> None:
    ids = []
    for i in range(500):
        ids.append(create_checkpoint_id() if i % 2 else str(uuid6(clock_seq=-1)))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert uuid.UUID(ids[1]).version == 6
