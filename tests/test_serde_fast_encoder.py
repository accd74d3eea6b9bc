"""The serializer's two encoders write one format (``serde.msgpack``, "Two encoders, one
format"): values are packed by ``ormsgpack`` where it can, by msgpack's packer where it
cannot, and the bytes are the very bytes every earlier version wrote.

``GOLDEN`` holds, for each value of ``cases()``, the bytes written for it before the fast
encoder existed (by msgpack's packer alone, at the commit before it): checkpoints stored
then and now are the same bytes, so both stay readable and a store never holds two
spellings of one value.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import http
import math
import pathlib
import uuid
from collections import OrderedDict, deque
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from threadloom.checkpoint.serde import MsgpackSerializer


class Label(str):
    """A plain ``str`` subclass, not registered: stored as a ``str``."""


class Tagged(str):
    """A ``str`` subclass registered with the serializer: stored as an object."""


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Pair(NamedTuple):
    left: int
    right: Any


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0
    tags: list[str] = dataclasses.field(default_factory=list)


# stable type keys, whatever name pytest imports this module under
for _cls in (Label, Tagged, Color, Level, Pair, Point):
    _cls.__module__ = "threadloom_fast_encoder_cases"


def serializer() -> MsgpackSerializer:
    return MsgpackSerializer(allowed_types=[Tagged, Color, Level, Pair, Point, http.HTTPStatus])


def cases() -> dict[str, Any]:
    """Values of every kind the format stores, at the edges of msgpack's forms."""
    plain_ints = [0, 1, -1, 127, 128, -32, -33, -128, -129, 255, 256, 65535, 65536,
                  -32768, -32769, 2**31, 2**32 - 1, 2**32, -(2**31), -(2**31) - 1,
                  2**63 - 1, 2**63, 2**64 - 1, -(2**63)]
    return {
        "ints": plain_ints,
        "big ints": [2**64, -(2**63) - 1, 10**30, -(10**30), 2**200],
        "floats": [0.0, -0.0, 1.5, -2.25, 1e300, 5e-324, math.inf, -math.inf],
        "bools and none": [True, False, None, [None, True]],
        "strs": ["", "a", "x" * 31, "x" * 32, "y" * 255, "y" * 256, "z" * 65535,
                 "z" * 65536, "é", "snow ☃ and 🎉", "\x00nul"],
        "bytes": [b"", b"\x00", b"b" * 255, b"b" * 256, b"c" * 65536],
        "bytearray and memoryview": [bytearray(b"ab"), memoryview(b"cd")],
        "lists": [[], [[]], list(range(15)), list(range(16)), list(range(70_000))],
        "dicts": {
            "empty": {},
            "fifteen": {f"k{i}": i for i in range(15)},
            "sixteen": {f"k{i}": i for i in range(16)},
            "many": {f"k{i}": i for i in range(70_000)},
            "nested": {"a": {"b": {"c": [1, {"d": None}]}}},
        },
        "items of a long list": [{"i": -k, "note": "already there"} for k in range(10_000)],
        "tuples and sets": [(), (1, 2), ((1,), [2, (3,)]), {1, 2}, frozenset({"a"}),
                            {"t": (1, "x")}],
        "non-str keys": [{1: "a"}, {-5: "b", 2**70: "c"}, {(1, 2): "d"}, {None: 1},
                         {1.5: 2}, {b"k": 1}, {True: 0}, {"s": 1, 2: 3},
                         {"inner": {1: [2]}}, {Label("lab"): 1}, {Tagged("tag"): 2}],
        "stdlib values": [
            dt.datetime(2024, 5, 6, 7, 8, 9, 10),
            dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
            dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=ZoneInfo("Europe/Paris")),
            dt.date(2024, 5, 6),
            dt.time(7, 8, 9, 10),
            dt.timedelta(days=1, seconds=2, microseconds=3),
            dt.timezone(dt.timedelta(hours=-3), "X"),
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            Decimal("1.10"),
            pathlib.PurePosixPath("/a/b"),
            deque([1, 2], maxlen=5),
            complex(1, -2),
            OrderedDict([("b", 1), ("a", 2)]),
        ],
        "subclasses of builtins": [Label("plain"), Tagged("registered"), [Label("in list")]],
        "enums": [Color.RED, Level.HIGH, http.HTTPStatus.OK, {"status": Level.HIGH}],
        "objects": [Pair(1, "a"), Point(1, 2.5, ["t"]), [Point(0)], {"p": Pair(2, (3,))}],
        "messages": [HumanMessage("hi", id="1"),
                     AIMessage("yo", id="2",
                               tool_calls=[{"name": "t", "args": {"a": 1}, "id": "c"}])],
        "msgpack ext value": [msgpack.ExtType(99, b"raw")],
        "deep plain nesting": _nest(300),
    }


def _nest(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (``1 == 1.0 == True`` is not)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            _same(k, j) and _same(a[k], b[j]) for k, j in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple | deque):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Bytes written for each case by msgpack's packer alone (before the fast encoder):
# xxh3-128 hex digests of the data, and its length (the data itself runs to megabytes).
GOLDEN: dict[str, tuple[int, str]] = {
    'ints': (107, 'f62ea4fc28cc3b125e861e5cbe099c4f'),
    'big ints': (86, 'bc0952c73443563293faa8f5abb4cf74'),
    'floats': (73, '06a44e4263c20e43356c72b515ce62a3'),
    'bools and none': (7, '950ce98c5686ac5c6728ba9755d57863'),
    'strs': (131691, '8b3e5599dec8f31754d9fa51f445cafd'),
    'bytes': (66063, '38155a74a738f2f630fc15bdb7f0ca83'),
    'bytearray and memoryview': (9, '0061ea9d331dde98f1e46a8ecb1faaab'),
    'lists': (218588, 'ad99f3b6edb790ddbc3651d8c53b1485'),
    'dicts': (697629, '331e871baa1c446cccb3571953782c6c'),
    'items of a long list': (249841, 'b2a2cf0c4a2bc527a3412454f27cb444'),
    'tuples and sets': (45, '1c5a1c2cdd20e489aece8fec5e67df24'),
    'non-str keys': (125, 'e17d1a0558940e822484784c64db6d5a'),
    'stdlib values': (171, 'adc45ae18a894400df3a1b95825daedb'),
    'subclasses of builtins': (69, '664be4f2dd5d3b9efc3f6eccbf3d163b'),
    'enums': (160, '92af817ff598648ddeff0f9e438a8846'),
    'objects': (213, '934c6bfcff6130356b453dff1a8222de'),
    'messages': (94, '55944fa304d82afd4c86ef680671894d'),
    'msgpack ext value': (7, 'fab1543b3aa44ce96876bd1c27cacd32'),
    'deep plain nesting': (301, '73d5931f3bbb8b0715750d3fc49a9032'),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_bytes_are_those_written_before(name: str) -> None:
    from xxhash import xxh3_128_hexdigest

    tag, data = serializer().dumps_typed(cases()[name])
    assert tag == "msgpack"
    assert (len(data), xxh3_128_hexdigest(data)) == GOLDEN[name]


def test_every_case_has_golden_bytes() -> None:
    assert sorted(GOLDEN) == sorted(cases())


# a msgpack.ExtType in a value is written as it is (as it always was), and an extension
# code the reader does not know is refused on reading: no round trip to check
@pytest.mark.parametrize("name", [n for n in cases() if n != "msgpack ext value"])
def test_round_trip_keeps_values_and_types(name: str) -> None:
    ser = serializer()
    value = cases()[name]
    back = ser.loads_typed(ser.dumps_typed(value))
    expected = _expected_back(value)
    assert _same(back, expected), name


def _expected_back(value: Any) -> Any:
    """What reading ``value`` gives: bytes-like values come back as ``bytes``, an
    unregistered ``str`` subclass as ``str`` (the documented rules)."""
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if type(value) is Label:
        return str(value)
    if isinstance(value, list):
        return [_expected_back(v) for v in value]
    if type(value) is dict:
        return {_expected_back(k): _expected_back(v) for k, v in value.items()}
    return value


def test_plain_data_is_packed_once() -> None:
    """A value of plain data (and of types the hook stores) is packed by the fast encoder
    alone; a dict with a key that is not a ``str`` is refused by it and packed again,
    whole, by msgpack's packer - the same bytes either way."""
    ser = serializer()
    for name in ("items of a long list", "ints", "strs", "tuples and sets", "objects",
                 "stdlib values", "messages", "big ints"):
        ser.dumps_typed(cases()[name])
    assert ser.repacked == 0
    ser.dumps_typed({1: "a"})
    ser.dumps_typed([{"x": 1}, {(1, 2): "b"}])
    assert ser.repacked == 2
