"""The serializer's two decoders give one result (``serde.msgpack``, "Two decoders, one
result"): a payload is decoded by ``ormsgpack`` where it decodes it whole, by msgpack's
unpacker otherwise, and every value and every error is the one msgpack's unpacker alone
gives - for the values the encoder writes (``test_serde_fast_encoder.cases``) and for those
bytes damaged: cut short, lengthened, a byte changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from tests.test_serde_fast_encoder import _same, cases, serializer
from threadloom.checkpoint.serde import MsgpackSerializer
from threadloom.checkpoint.serde.base import CorruptCheckpointError, UnknownTypeError
from threadloom.checkpoint.serde.msgpack import _FRAME_END


def _outcome(decode: Callable[[bytes], Any], data: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(data)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def _agree(ser: MsgpackSerializer, data: bytes) -> bool:
    """``loads_typed`` decodes ``data`` as msgpack's unpacker alone does (value or error)."""
    ours = _outcome(lambda d: ser.loads_typed(("msgpack", d)), data)
    theirs = _outcome(ser._msgpack_unpackb, data)
    if ours[0] == "value" or theirs[0] == "value":
        # (a NaN map key is no key equal to another: such values are compared by repr)
        return ours[0] == theirs[0] and (
            _same(ours[1], theirs[1]) or repr(ours[1]) == repr(theirs[1])
        )
    # loads_typed names a raw unpacker error in a CorruptCheckpointError of its own
    return ours[1] == theirs[1] or ours[1].endswith(f"{theirs[0]}: {theirs[1]}")


@pytest.mark.parametrize("name", [n for n in cases() if n != "msgpack ext value"])
def test_values_decode_as_msgpack_decodes_them(name: str) -> None:
    ser = serializer()
    tag, data = ser.dumps_typed(cases()[name])
    assert tag == "msgpack"
    assert _agree(ser, data), name
    assert _agree(ser, bytearray(data)) and _agree(ser, memoryview(data))  # type: ignore[arg-type]


def test_plain_data_is_decoded_once() -> None:
    """Plain data and extension records are decoded by the fast decoder alone; what it
    refuses (a map key that is not a ``str``) is decoded again by msgpack's unpacker."""
    ser = serializer()
    for name in ("items of a long list", "ints", "strs", "tuples and sets", "objects",
                 "stdlib values", "messages", "big ints", "deep plain nesting"):
        ser.loads_typed(ser.dumps_typed(cases()[name]))
    assert ser.redecoded == 0
    assert ser.loads_typed(ser.dumps_typed({1: "a"})) == {1: "a"}
    assert ser.loads_typed(ser.dumps_typed([{"x": 1}, {(1, 2): "b"}])) == [{"x": 1}, {(1, 2): "b"}]
    assert ser.redecoded == 2
    assert ser.payload_loader() == ser._unpackb  # a listing's rows take the same path


def _small_payloads() -> list[bytes]:
    ser = serializer()
    out = []
    for name, value in cases().items():
        if name != "msgpack ext value":
            data = ser.dumps_typed(value)[1]
            if len(data) < 400:
                out.append(data)
    checkpoint = {
        "v": 4, "id": "1f1f070f-13a8-6db0-8002-8519d4e7bee7", "ts": "2026-12-05T05:58:49+00:00",
        "channel_versions": {"x": "00000000000000000000000000000003.ba20b8ad4081805d"},
        "versions_seen": {"n": {"x": "0001.5"}}, "updated_channels": ["x"],
    }
    out.append(ser.dumps_typed(checkpoint)[1])
    return out


def test_damaged_bytes_fail_or_decode_as_msgpack_decides() -> None:
    """Every payload cut short, with bytes appended, or with one byte changed decodes to
    what msgpack's unpacker makes of it, or raises its error: ``ormsgpack`` stops at a
    value's end where msgpack's unpacker refuses what follows (a length made shorter)."""
    ser = serializer()
    checked = 0
    for data in _small_payloads():
        variants = [data[:cut] for cut in range(len(data))]
        variants += [data + b"\x01", data + b"\xc4\x10" + bytes(16), data + data]
        for i in range(len(data)):
            for new in {0x00, 0x7F, 0x80, 0xC0, 0xC4, 0xFF, (data[i] + 1) % 256,
                        (data[i] - 1) % 256}:
                variants.append(data[:i] + bytes([new]) + data[i + 1 :])
        for variant in variants:
            assert _agree(ser, variant), variant
            checked += 1
    assert checked > 10_000


def test_the_one_payload_read_otherwise() -> None:
    """A value followed by the frame's own marker (bytes no writer or shortened length
    leaves) is the one payload the two decoders read differently (the module docstring)."""
    ser = MsgpackSerializer()
    forged = msgpack.packb([1]) + b"\xc4\x10" + _FRAME_END
    assert ser.loads_typed(("msgpack", forged)) == [1]
    with pytest.raises(msgpack.ExtraData):
        ser._msgpack_unpackb(forged)


def test_length_made_shorter_is_corrupt() -> None:
    """A map or list whose length lost an item leaves bytes after the value: the fast
    decoder alone would hand out the shorter value."""
    ser = MsgpackSerializer()
    data = ser.dumps_typed({"a": 1, "b": [1, 2, 3]})[1]
    assert data[0] == 0x82 and data.count(b"\x93") == 1
    for damaged in (b"\x81" + data[1:], data.replace(b"\x93", b"\x92"), data + b"\xc0"):
        with pytest.raises(CorruptCheckpointError, match="ExtraData"):
            ser.loads_typed(("msgpack", damaged))


def test_hook_errors_keep_their_type() -> None:
    """An error the extension hook raises is the serializer's, not ``ormsgpack``'s
    ``ValueError`` wrapping it."""
    ser = MsgpackSerializer()
    unknown_ext = msgpack.packb([1, msgpack.ExtType(99, b"raw")])
    with pytest.raises(CorruptCheckpointError, match="unknown msgpack extension type 99"):
        ser.loads_typed(("msgpack", unknown_ext))
    unknown_type = msgpack.packb(msgpack.ExtType(32, msgpack.packb(["nowhere:Gone", 1])))
    with pytest.raises(UnknownTypeError, match="nowhere:Gone"):
        ser.loads_typed(("msgpack", unknown_type))
    assert ser.redecoded == 2


def test_a_batch_decodes_as_each_payload_alone_or_not_at_all() -> None:
    """``payloads_loader`` (a listing's page in one call): the values of every payload,
    each what ``loads_typed`` makes of it alone - or None, for the caller to decode each
    alone. Damage to a payload (cut short, lengthened, a byte changed) that the batch
    does not refuse shifts the items against the payloads, so an undamaged payload beside
    it does not get its own value: the check the caller makes (a listing compares each
    checkpoint's id with its row's). Where every undamaged payload gets its own value,
    the damaged one's is what it decodes to alone."""
    ser = serializer()
    many = ser.payloads_loader()
    assert many is not None
    everything = _small_payloads()
    # what only msgpack's unpacker decodes (a map key that is not a str) is refused
    payloads = [p for p in everything if many([p]) is not None]
    assert len(payloads) >= 10 and many(everything) is None
    alone = [ser.loads_typed(("msgpack", p)) for p in payloads]
    got = many(payloads)
    assert got is not None and all(_same(a, b) for a, b in zip(got, alone, strict=True))
    assert many([]) == []
    before, after = payloads[-1], payloads[0]
    own = (alone[-1], alone[0])
    handed_out = shifted = 0
    for data in payloads:
        variants = [data[:cut] for cut in range(len(data))]
        variants += [data + b"\x01", data + data, data + before]
        for i in range(len(data)):
            for new in {0x00, 0x7F, 0xC0, 0xC4, 0xFF, (data[i] + 1) % 256}:
                variants.append(data[:i] + bytes([new]) + data[i + 1 :])
        for variant in variants:
            got = many([before, variant, after])
            if got is None:
                continue
            if not (_same(got[0], own[0]) and _same(got[2], own[1])):
                shifted += 1  # the caller's check refuses the batch
                continue
            outcome = _outcome(lambda d: ser.loads_typed(("msgpack", d)), variant)
            assert outcome[0] == "value", variant  # alone it fails: the batch must too
            assert _same(got[1], outcome[1]) or repr(got[1]) == repr(outcome[1]), variant
            handed_out += 1
    assert handed_out > 100  # changed bytes that still decode (another number, a letter)


def test_a_subclass_decoding_otherwise_has_no_batch_loader() -> None:
    class Other(MsgpackSerializer):
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            return super().loads_typed(data)

    assert Other().payloads_loader() is None and Other().payload_loader() is None
