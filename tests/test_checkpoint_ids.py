"""Time-ordered ids (``threadloom.checkpoint.base.id``), checkpoint ids and timestamps."""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from threadloom.checkpoint._stored.records import timestamp
from threadloom.checkpoint.base import checkpoint_ts, create_checkpoint_id
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


def test_checkpoint_ids_are_uuid6_text_of_now_across_prefix_changes() -> None:
    # ids span several 0.4 ms windows (the part formatted once per window): each is the
    # canonical text of a version-6, RFC 4122 UUID whose timestamp is now
    ids = []
    deadline = time.monotonic() + 0.005
    while time.monotonic() < deadline or len(ids) < 1000:
        ids.append(create_checkpoint_id())
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(u) for u in parsed] == ids
    assert all(u.version == 6 and u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len({i[:13] for i in ids}) > 1  # the prefix changed while minting
    last = parsed[-1]
    ticks = (last.int >> 80) << 12 | (last.int >> 64) & 0x0FFF
    assert abs((ticks - 0x01B21DD213814000) / 10_000_000 - time.time()) < 5
    assert len({u.node for u in parsed}) > len(parsed) // 2  # node bits stay random


def test_checkpoint_ts_is_now_in_datetimes_iso_text() -> None:
    before = datetime.now(UTC)
    made = [checkpoint_ts() for _ in range(2000)]
    after = datetime.now(UTC)
    for ts in made:
        parsed = datetime.fromisoformat(ts)
        assert parsed.isoformat() == ts  # the same text datetime writes, to the microsecond
        assert before - timedelta(milliseconds=1) <= parsed <= after + timedelta(milliseconds=1)


def test_timestamp_reads_every_iso_text_as_datetime_does() -> None:
    # the fast path (a second read before) and the slow one agree with datetime to the bit,
    # and text the fast path cannot read goes the slow way (damaged text: now)
    rng = random.Random(7)
    start = datetime(2026, 12, 5, 17, tzinfo=UTC)
    for _ in range(20_000):
        ts = (start + timedelta(microseconds=rng.randrange(10**10))).isoformat()
        assert timestamp(ts) == datetime.fromisoformat(ts).timestamp(), ts
        assert timestamp(ts) == datetime.fromisoformat(ts).timestamp(), ts  # second time
        ts = checkpoint_ts()
        assert timestamp(ts) == datetime.fromisoformat(ts).timestamp(), ts
    same_second = start.isoformat()[:19]
    assert timestamp(f"{same_second}.000001+00:00") == start.timestamp() + 1e-6
    for damaged in (f"{same_second}.12345x+00:00", f"{same_second}.12345\u00b2+00:00"):
        assert abs(timestamp(damaged) - time.time()) < 5
    naive = "2026-12-05T17:00:00.250000"  # no zone: read as UTC
    assert timestamp(naive) == start.timestamp() + 0.25
