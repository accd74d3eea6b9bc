"""Checkpoint serializer tests: round trips, allowlist errors, forged data, encryption."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import os
import pathlib
import pickle
import random
import sys
import uuid
from collections import OrderedDict, deque
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import msgpack
import pytest
from langchain_core.documents import Document
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
    ToolMessageChunk,
)
from pydantic import BaseModel, ConfigDict, Field

from threadloom.checkpoint.serde import (
    CorruptCheckpointError,
    DecryptionError,
    EncryptedSerializer,
    EncryptionKeyError,
    MsgpackSerializer,
    PickleNotAllowedError,
    SerializerProtocol,
    UnencryptedValueError,
    UnknownKeyError,
    UnknownTypeError,
    UnregisteredTypeError,
    key_id,
    register_type,
)
from threadloom.checkpoint.serde.msgpack import EXT_OBJECT, EXT_TUPLE
from threadloom.types import (
    Command,
    Interrupt,
    Overwrite,
    PregelTask,
    Send,
    StateSnapshot,
)

# -- user types ------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 1
    W = 2


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    norm: float = dataclasses.field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.norm = float(abs(self.x) + abs(self.y))


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    name: str
    when: dt.datetime


class Pair(NamedTuple):
    left: Any
    right: Any = None


class Ticket(BaseModel):
    id: int
    title: str = ""
    point: Point | None = None
    created: dt.datetime | None = None
    labels: list[str] = Field(default_factory=list)
    color: Color = Color.RED


class Aliased(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    user_name: str = Field(alias="userName")


class Plain:
    def __init__(self, a: int) -> None:
        self.a = a
        self.items = [a]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plain) and vars(self) == vars(other)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a: int, b: Any) -> None:
        self.a = a
        self.b = b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slotted) and (self.a, self.b) == (other.a, other.b)


class UserId(str):
    pass


class AppError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"failed with {code}")
        self.code = code


@register_type
class GloballyRegistered(BaseModel):
    value: int


class NotRegistered:
    pass


class NotRegisteredModel(BaseModel):
    x: int = 1


USER_TYPES = [
    Color,
    Level,
    Perm,
    Point,
    Frozen,
    Pair,
    Ticket,
    Aliased,
    Plain,
    Slotted,
    UserId,
    AppError,
]


@pytest.fixture
def serde() -> MsgpackSerializer:
    return MsgpackSerializer(allowed_types=USER_TYPES)


def roundtrip(serde: SerializerProtocol, value: Any) -> Any:
    tag, data = serde.dumps_typed(value)
    assert isinstance(tag, str) and isinstance(data, bytes)
    return serde.loads_typed((tag, data))


def assert_same(value: Any, result: Any) -> None:
    """Equal, and the same types all the way down (so tuples stay tuples, 1 != True)."""
    assert result == value
    assert type(result) is type(value)
    if isinstance(value, dict):
        assert list(result) == list(value)
        for (k1, v1), (k2, v2) in zip(value.items(), result.items(), strict=True):
            assert_same(k1, k2)
            assert_same(v1, v2)
    elif isinstance(value, list | tuple):
        for a, b in zip(value, result, strict=True):
            assert_same(a, b)


# -- native values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        1,
        -1,
        127,
        -33,
        2**31,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1.5,
        -0.0,
        float("inf"),
        "",
        "héllo ✓",
        "x" * 70000,
        b"\x00\xff" * 10,
        [],
        {},
        [1, "a", None, [2.5, {"k": [b"x"]}]],
        {"a": {"b": {"c": [1, 2, {"d": None}]}}},
    ],
)
def test_native_roundtrip(serde: MsgpackSerializer, value: Any) -> None:
    assert_same(value, roundtrip(serde, value))


def test_tags(serde: MsgpackSerializer) -> None:
    assert serde.dumps_typed(None) == ("null", b"")
    assert serde.dumps_typed(b"raw") == ("bytes", b"raw")
    assert serde.dumps_typed({"a": 1})[0] == "msgpack"
    assert serde.loads_typed(("null", b"")) is None
    assert serde.loads_typed(("bytes", b"raw")) == b"raw"


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**40, -(10**40), 2**1000 + 7, -(2**200)])
def test_big_ints(serde: MsgpackSerializer, value: int) -> None:
    assert_same(value, roundtrip(serde, value))
    assert_same([value, {"k": (value,)}], roundtrip(serde, [value, {"k": (value,)}]))


def test_nan(serde: MsgpackSerializer) -> None:
    result = roundtrip(serde, float("nan"))
    assert result != result


def test_tuples_stay_tuples_lists_stay_lists(serde: MsgpackSerializer) -> None:
    value = {"t": (1, (2, [3, (4,)]), ()), "l": [1, [2, (3,)]], "e": ()}
    result = roundtrip(serde, value)
    assert_same(value, result)
    assert type(result["t"][1][1]) is list
    assert type(result["t"][1][1][1]) is tuple


def test_non_string_dict_keys(serde: MsgpackSerializer) -> None:
    value = {
        1: "int",
        -5: "neg",
        2.5: "float",
        None: "none",
        False: "bool",
        b"k": "bytes",
        (1, "a"): "tuple",
        ((1, 2), ("x",)): "nested tuple",
        frozenset({1, 2}): "frozenset",
        uuid.UUID(int=5): "uuid",
        dt.date(2024, 1, 2): "date",
        Color.RED: "enum",
        Pair(1, 2): "namedtuple",
    }
    result = roundtrip(serde, value)
    assert result == value
    for key in value:
        match = next(k for k in result if k == key and type(k) is type(key))
        assert_same(key, match)


def test_containers(serde: MsgpackSerializer) -> None:
    values = [
        {1, 2, "a", (1, 2)},
        frozenset({"x", frozenset({1})}),
        set(),
        deque([1, (2,), [3]], maxlen=5),
        deque(),
        OrderedDict([("b", 1), ("a", (2,))]),
        complex(1.5, -2),
    ]
    for value in values:
        result = roundtrip(serde, value)
        assert result == value and type(result) is type(value)
    assert roundtrip(serde, deque([1], maxlen=3)).maxlen == 3
    # msgpack's C packer writes bytearray as bin before any hook: it comes back as bytes
    assert roundtrip(serde, {"b": bytearray(b"ab\x00")}) == {"b": b"ab\x00"}
    assert list(roundtrip(serde, OrderedDict([("b", 1), ("a", 2)]))) == ["b", "a"]


# -- dates, numbers, ids, paths --------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 5, 6, 7, 8, 9, 123456),
        dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
        dt.datetime(2024, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.datetime(2024, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2), "CEST")),
        dt.datetime(2024, 3, 31, 3, 30, tzinfo=ZoneInfo("Europe/Paris")),
        dt.datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),
        dt.date(1999, 12, 31),
        dt.time(23, 59, 59, 999999),
        dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        dt.timedelta(days=-3, seconds=5, microseconds=7),
        dt.timedelta(0),
        dt.UTC,
        dt.timezone(dt.timedelta(seconds=-1, microseconds=5)),
        ZoneInfo("Asia/Kolkata"),
    ],
)
def test_dates_and_times(serde: MsgpackSerializer, value: Any) -> None:
    result = roundtrip(serde, value)
    assert result == value and type(result) is type(value)
    if isinstance(value, dt.datetime | dt.time):
        assert result.tzinfo == value.tzinfo
        assert type(result.tzinfo) is type(value.tzinfo)
        assert result.fold == value.fold
        assert result.utcoffset() == value.utcoffset()
        if isinstance(value, dt.datetime):
            assert result.tzname() == value.tzname()
    if isinstance(value, ZoneInfo):
        assert result is value  # ZoneInfo instances are cached by key


def test_zoneinfo_key_preserved(serde: MsgpackSerializer) -> None:
    value = dt.datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    result = roundtrip(serde, value)
    assert isinstance(result.tzinfo, ZoneInfo)
    assert result.tzinfo.key == "Europe/Paris"
    assert result.utcoffset() == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1.10"),
        Decimal("-0"),
        Decimal("NaN"),
        Decimal("1E+400"),
        Decimal("3.14159265358979323846264338327950288419716939937510"),
    ],
)
def test_decimal(serde: MsgpackSerializer, value: Decimal) -> None:
    result = roundtrip(serde, value)
    assert type(result) is Decimal
    assert str(result) == str(value)


def test_uuid(serde: MsgpackSerializer) -> None:
    value = uuid.uuid4()
    assert_same(value, roundtrip(serde, value))
    assert len(serde.dumps_typed(value)[1]) == 18


def test_enums(serde: MsgpackSerializer) -> None:
    for value in (Color.RED, Color.BLUE, Level.HIGH, Perm.R | Perm.W, Perm.W):
        result = roundtrip(serde, value)
        assert result is value


def test_paths(serde: MsgpackSerializer) -> None:
    for value in (
        pathlib.PurePosixPath("/a/b.txt"),
        pathlib.PureWindowsPath(r"C:\x\y"),
        pathlib.Path("rel/dir"),
    ):
        assert_same(value, roundtrip(serde, value))


# -- langchain types ---------------------------------------------------------------------


def _messages() -> list[Any]:
    return [
        HumanMessage("hi"),
        HumanMessage(
            content=[{"type": "text", "text": "look"}, {"type": "image", "url": "http://x"}],
            id="h-1",
            name="bob",
            additional_kwargs={"k": (1, 2)},
        ),
        SystemMessage("be brief", id="s-1"),
        AIMessage(
            content="",
            id="run-1",
            tool_calls=[
                {"name": "search", "args": {"q": "weather", "n": 3}, "id": "call_1"},
                {"name": "calc", "args": {}, "id": "call_2"},
            ],
            invalid_tool_calls=[
                {
                    "name": "bad",
                    "args": "{oops",
                    "id": "call_3",
                    "error": "json",
                    "type": "invalid_tool_call",
                }
            ],
            additional_kwargs={"refusal": None},
            response_metadata={"model_name": "m-1", "finish_reason": "tool_calls"},
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        ),
        AIMessageChunk(
            content="par",
            id="run-2",
            tool_call_chunks=[{"name": "search", "args": '{"q": ', "id": "call_9", "index": 0}],
        ),
        HumanMessageChunk(content="chunk"),
        ToolMessage(
            "42", tool_call_id="call_1", id="t-1", artifact={"raw": [1, 2]}, status="error"
        ),
        ToolMessageChunk(content="4", tool_call_id="call_1"),
        ChatMessage(content="hey", role="critic"),
        FunctionMessage(content="out", name="fn"),
        RemoveMessage(id="h-1"),
        AIMessage("extra", custom_field={"x": 1}),
    ]


@pytest.mark.parametrize("message", _messages(), ids=lambda m: type(m).__name__)
def test_messages_roundtrip(serde: MsgpackSerializer, message: Any) -> None:
    result = roundtrip(serde, message)
    assert type(result) is type(message)
    assert result == message
    assert result.model_dump() == message.model_dump()
    assert result.model_fields_set == message.model_fields_set
    assert result.__pydantic_extra__ == message.__pydantic_extra__
    if isinstance(message, AIMessage):
        assert result.tool_calls == message.tool_calls
        assert result.invalid_tool_calls == message.invalid_tool_calls
        assert result.usage_metadata == message.usage_metadata
    assert result.id == message.id
    assert result.additional_kwargs == message.additional_kwargs
    assert result.response_metadata == message.response_metadata


def test_message_list_in_state(serde: MsgpackSerializer) -> None:
    state = {"messages": _messages(), "count": 3, "pair": ("a", "b")}
    result = roundtrip(serde, state)
    assert result == state
    assert [type(m) for m in result["messages"]] == [type(m) for m in state["messages"]]
    # defaults are fresh objects, not shared between revived messages
    a, b = roundtrip(serde, [HumanMessage("a"), HumanMessage("b")])
    assert a.additional_kwargs is not b.additional_kwargs


def test_message_mutated_default_is_kept(serde: MsgpackSerializer) -> None:
    msg = HumanMessage("hi")
    msg.additional_kwargs["late"] = True  # mutated without going through __setattr__
    assert roundtrip(serde, msg).additional_kwargs == {"late": True}


def test_messages_are_compact(serde: MsgpackSerializer) -> None:
    assert len(serde.dumps_typed(HumanMessage("hi"))[1]) <= 20
    assert b"langchain" not in serde.dumps_typed(AIMessage("x"))[1]


def test_chunks_still_add(serde: MsgpackSerializer) -> None:
    a = roundtrip(serde, AIMessageChunk(content="Hel", id="r"))
    b = roundtrip(serde, AIMessageChunk(content="lo", id="r"))
    assert (a + b).content == "Hello"


def test_document(serde: MsgpackSerializer) -> None:
    doc = Document(page_content="text", metadata={"source": "x", "page": (1, 2)}, id="d1")
    result = roundtrip(serde, doc)
    assert result == doc and type(result) is Document
    assert result.metadata["page"] == (1, 2)


# -- threadloom types --------------------------------------------------------------------


def test_threadloom_types(serde: MsgpackSerializer) -> None:
    send = Send("worker", {"item": (1, 2), "msg": HumanMessage("x")}, timeout=2.5)
    result = roundtrip(serde, send)
    assert type(result) is Send and result == send and result.timeout == 2.5
    assert roundtrip(serde, Send("n", 1)).timeout is None

    intr = Interrupt({"question": "ok?"}, id="0123456789abcdef0123456789abcdef")
    result = roundtrip(serde, intr)
    assert type(result) is Interrupt and result == intr and result.id == intr.id

    for cmd in (
        Command(resume="yes"),
        Command(update={"x": 1}, goto=[Send("a", 1), "b"]),
        Command(graph=Command.PARENT, goto="n", update=[("k", (1,))]),
        Command(resume={"0123456789abcdef0123456789abcdef": 3}),
    ):
        result = roundtrip(serde, cmd)
        assert type(result) is Command and result == cmd

    assert roundtrip(serde, Overwrite([1, 2])) == Overwrite([1, 2])

    task = PregelTask("t1", "node", ("__pregel_pull", "node"), None, (intr,), None, {"r": 1})
    assert_same(task, roundtrip(serde, task))

    snap = StateSnapshot(
        values={"m": [AIMessage("x")]},
        next=("a",),
        config={"configurable": {"thread_id": "1"}},
        metadata={"step": 1},
        created_at="2024-01-01T00:00:00+00:00",
        parent_config=None,
        tasks=(task,),
        interrupts=(intr,),
    )
    result = roundtrip(serde, snap)
    assert type(result) is StateSnapshot and result == snap


def test_builtin_exceptions(serde: MsgpackSerializer) -> None:
    for exc in (ValueError("bad", 3), KeyError("k"), TimeoutError(), RuntimeError("x")):
        result = roundtrip(serde, exc)
        assert type(result) is type(exc) and result.args == exc.args
    result = roundtrip(serde, AppError(7))
    assert type(result) is AppError and result.code == 7 and str(result) == "failed with 7"


# -- registered user types ---------------------------------------------------------------


def test_registered_pydantic_model_with_nested_types(serde: MsgpackSerializer) -> None:
    ticket = Ticket(
        id=1,
        title="t",
        point=Point(3, -4, ["a"]),
        created=dt.datetime(2024, 1, 1, tzinfo=ZoneInfo("Europe/Berlin")),
        labels=["x"],
        color=Color.BLUE,
    )
    result = roundtrip(serde, ticket)
    assert type(result) is Ticket and result == ticket
    assert type(result.point) is Point and result.point.norm == 7.0
    assert result.color is Color.BLUE
    assert result.created.tzinfo == ZoneInfo("Europe/Berlin")
    assert result.model_fields_set == ticket.model_fields_set

    minimal = Ticket(id=2)
    result = roundtrip(serde, minimal)
    assert result == minimal and result.model_fields_set == {"id"}
    assert result.labels == [] and result.labels is not roundtrip(serde, minimal).labels


def test_pydantic_alias_and_extra(serde: MsgpackSerializer) -> None:
    value = Aliased(userName="ann", other=(1, 2))
    result = roundtrip(serde, value)
    assert result == value and result.user_name == "ann"
    assert result.__pydantic_extra__ == {"other": (1, 2)}


def test_registered_dataclasses(serde: MsgpackSerializer) -> None:
    p = Point(1, 2, ["t"])
    p.norm = 99.0  # non-init field set after construction is kept
    result = roundtrip(serde, p)
    assert type(result) is Point and result == p and result.norm == 99.0
    f = Frozen("a", dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    assert_same(f, roundtrip(serde, f))


def test_registered_namedtuple_plain_and_str_subclass(serde: MsgpackSerializer) -> None:
    assert_same(Pair((1,), [2]), roundtrip(serde, Pair((1,), [2])))
    assert roundtrip(serde, Plain(3)) == Plain(3)
    assert roundtrip(serde, Slotted(1, (2,))) == Slotted(1, (2,))
    half = Slotted(1, 2)
    del half.b
    result = roundtrip(serde, half)
    assert result.a == 1 and not hasattr(result, "b")
    uid = roundtrip(serde, UserId("u-1"))
    assert type(uid) is UserId and uid == "u-1"


def test_unregistered_subclass_of_a_builtin_is_stored_as_the_builtin() -> None:
    """Like langchain_core's ``AIMessage.text`` (a ``str`` subclass): the value is kept,
    as its builtin base; registering the class keeps the class."""

    class Label(str):
        pass

    class Counts(dict):
        pass

    class Row(tuple):
        pass

    class Tags(frozenset):
        pass

    class Big(int):
        pass

    serde = MsgpackSerializer()
    text = AIMessage("a summary").text
    assert type(text) is not str  # the library's own subclass
    value = {
        "text": text, "label": Label("x"), "counts": Counts(a=[Row((1, Big(2)))]),
        "tags": Tags({"t"}), "big": Big(2**70), "rate": type("Rate", (float,), {})(0.5),
    }  # fmt: skip
    got = roundtrip(serde, value)
    assert got == {"text": "a summary", "label": "x", "counts": {"a": [(1, 2)]},
                   "tags": frozenset({"t"}), "big": 2**70, "rate": 0.5}  # fmt: skip
    assert [type(got[k]) for k in ("text", "label", "counts", "tags", "big", "rate")] == [
        str, str, dict, frozenset, int, float,
    ]  # fmt: skip
    assert type(got["counts"]["a"][0]) is tuple and type(got["counts"]["a"][0][1]) is int
    serde.register(Label)  # registered: the class survives
    assert type(roundtrip(serde, Label("y"))) is Label
    with pytest.raises(UnregisteredTypeError):  # enums are not plain subclasses
        serde.dumps_typed(Level.LOW)


def test_register_type_global_and_instance_register() -> None:
    default = MsgpackSerializer()
    assert roundtrip(default, GloballyRegistered(value=3)) == GloballyRegistered(value=3)
    with pytest.raises(UnregisteredTypeError):
        default.dumps_typed(Pair(1, 2))
    default.register(Pair)  # after a miss: caches must not remember the failure
    assert_same(Pair(1, 2), roundtrip(default, Pair(1, 2)))
    # the registration was for that serializer only
    with pytest.raises(UnregisteredTypeError):
        MsgpackSerializer().dumps_typed(Pair(1, 2))


def test_register_rejects_unstorable_types() -> None:
    with pytest.raises(TypeError, match="cannot be registered"):
        register_type(type(lambda: 0))
    with pytest.raises(TypeError):
        register_type("not a class")  # type: ignore[arg-type]


# -- write-time errors -------------------------------------------------------------------


def test_unregistered_type_error_message() -> None:
    serde = MsgpackSerializer()
    with pytest.raises(TypeError) as info:
        serde.dumps_typed({"deep": [1, {"x": NotRegistered()}]})
    assert isinstance(info.value, UnregisteredTypeError)
    message = str(info.value)
    assert f"{__name__}.NotRegistered" in message
    assert "register_type(NotRegistered)" in message
    assert "MsgpackSerializer(allowed_types=[NotRegistered])" in message
    assert "pickle_fallback=True" in message


def test_unregistered_pydantic_and_subclass_of_registered() -> None:
    serde = MsgpackSerializer(allowed_types=[Ticket])
    with pytest.raises(UnregisteredTypeError, match="NotRegisteredModel"):
        serde.dumps_typed(NotRegisteredModel())

    class SubTicket(Ticket):
        pass

    with pytest.raises(UnregisteredTypeError, match="SubTicket"):
        serde.dumps_typed(SubTicket(id=1))

    class MyMessage(HumanMessage):
        pass

    with pytest.raises(UnregisteredTypeError, match="MyMessage"):
        serde.dumps_typed(MyMessage("x"))


def test_unstorable_values_explain_why() -> None:
    serde = MsgpackSerializer()
    with pytest.raises(UnregisteredTypeError, match="builtins.function.*plain data"):
        serde.dumps_typed({"f": lambda: 0})
    from collections import defaultdict

    with pytest.raises(UnregisteredTypeError, match="dict\\(value\\)"):
        serde.dumps_typed(defaultdict(list))


def test_cycles_are_a_clear_error() -> None:
    serde = MsgpackSerializer(allowed_types=[Plain])
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="reference cycle"):
        serde.dumps_typed(loop)
    p = Plain(1)
    p.items.append(p)
    with pytest.raises(ValueError, match="reference cycle"):
        serde.dumps_typed(p)


# -- forged and corrupted data -----------------------------------------------------------


def _ext(code: int, payload: Any) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(payload)))


def test_random_bytes_never_crash_uncleanly() -> None:
    serde = MsgpackSerializer()
    rng = random.Random(1234)
    for _ in range(3000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        try:
            serde.loads_typed(("msgpack", data))
        except ValueError as exc:
            assert isinstance(exc, CorruptCheckpointError)


def test_random_ext_payloads_never_crash_uncleanly() -> None:
    serde = MsgpackSerializer(allowed_types=USER_TYPES)
    rng = random.Random(99)
    for _ in range(3000):
        code = rng.choice([1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 32, 33])
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24)))
        data = msgpack.packb(msgpack.ExtType(code, payload))
        try:
            serde.loads_typed(("msgpack", data))
        except ValueError as exc:
            assert isinstance(exc, CorruptCheckpointError)


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\x92\x01", b"\xa5ab", b"\x81\x91\x01\x02", b"\x01\x02", b"\x91" * 5000],
)
def test_malformed_msgpack(data: bytes) -> None:
    with pytest.raises(CorruptCheckpointError, match="corrupt"):
        MsgpackSerializer().loads_typed(("msgpack", data))


def test_forged_type_key_is_never_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    serde = MsgpackSerializer()
    forged = _ext(EXT_OBJECT, ["os:system", ["echo pwned"]])
    with pytest.raises(UnknownTypeError) as info:
        serde.loads_typed(("msgpack", forged))
    assert isinstance(info.value, ValueError)
    assert "'os:system'" in str(info.value) and "register_type" in str(info.value)
    assert called == []

    assert "antigravity" not in sys.modules
    with pytest.raises(UnknownTypeError, match="antigravity:fly"):
        serde.loads_typed(("msgpack", _ext(EXT_OBJECT, ["antigravity:fly", {}])))
    assert "antigravity" not in sys.modules

    # registered-looking keys of unregistered classes are refused too
    key = f"{__name__}:NotRegistered"
    with pytest.raises(UnknownTypeError, match="NotRegistered"):
        serde.loads_typed(("msgpack", _ext(EXT_OBJECT, [key, [None, {}]])))
    with pytest.raises(UnknownTypeError, match="#9999"):
        serde.loads_typed(("msgpack", _ext(EXT_OBJECT, [9999, {}])))


def test_forged_nested_in_valid_data() -> None:
    serde = MsgpackSerializer()
    inner = msgpack.ExtType(EXT_OBJECT, msgpack.packb(["subprocess:call", ["ls"]]))
    data = msgpack.packb({"messages": [1, inner]})
    with pytest.raises(UnknownTypeError, match="subprocess:call"):
        serde.loads_typed(("msgpack", data))
    tup = msgpack.ExtType(EXT_TUPLE, msgpack.packb([inner]))
    with pytest.raises(UnknownTypeError):
        serde.loads_typed(("msgpack", msgpack.packb([tup])))


def test_malformed_records_of_known_types(serde: MsgpackSerializer) -> None:
    cases = [
        _ext(EXT_OBJECT, [2, "not a dict"]),  # HumanMessage
        _ext(EXT_OBJECT, [2, {1: 2}]),
        _ext(EXT_OBJECT, [14]),  # Send without fields
        _ext(EXT_OBJECT, [f"{__name__}:Point", {"nope": 1, "x": "a", "y": None}]),
        _ext(EXT_OBJECT, [f"{__name__}:Color", "green"]),
        _ext(EXT_OBJECT, [[1], {}]),
        _ext(EXT_OBJECT, []),
        _ext(6, [2024, 13, 1, 0, 0, 0, 0]),
        _ext(6, [2024, 1, 1, 0, 0, 0, 0, "not a tz"]),
        msgpack.packb(msgpack.ExtType(11, b"../../etc/passwd")),
        msgpack.packb(msgpack.ExtType(11, b"/etc/passwd")),
        _ext(14, [7, "x"]),
        msgpack.packb(msgpack.ExtType(12, b"short")),
        msgpack.packb(msgpack.ExtType(13, b"not-a-number")),
        msgpack.packb(msgpack.ExtType(99, b"")),
        # a slot the class does not declare (e.g. __class__) is refused
        _ext(
            EXT_OBJECT,
            [
                f"{__name__}:Slotted",
                msgpack.ExtType(EXT_TUPLE, msgpack.packb([None, {"__class__": 1}])),
            ],
        ),
    ]
    for data in cases:
        with pytest.raises(CorruptCheckpointError):
            serde.loads_typed(("msgpack", data))
    with pytest.raises(CorruptCheckpointError, match="Color"):
        serde.loads_typed(("msgpack", _ext(EXT_OBJECT, [f"{__name__}:Color", "green"])))


class _Canary:
    fired = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (_fire_canary, ())


def _fire_canary() -> None:
    _Canary.fired = True


def test_pickle_data_refused_by_default_serializer() -> None:
    payload = pickle.dumps(_Canary())
    with pytest.raises(PickleNotAllowedError, match="pickle_fallback=True") as info:
        MsgpackSerializer().loads_typed(("pickle", payload))
    assert isinstance(info.value, ValueError)
    assert _Canary.fired is False


def test_pickle_only_with_opt_in() -> None:
    value = {"obj": NotRegistered(), "n": 1}
    with pytest.raises(UnregisteredTypeError):
        MsgpackSerializer().dumps_typed(value)
    unsafe = MsgpackSerializer(pickle_fallback=True)
    tag, data = unsafe.dumps_typed(value)
    assert tag == "pickle"
    result = unsafe.loads_typed((tag, data))
    assert type(result["obj"]) is NotRegistered and result["n"] == 1
    # allowlisted values still use msgpack with the opt-in serializer
    assert unsafe.dumps_typed({"n": (1,)})[0] == "msgpack"
    with pytest.raises(PickleNotAllowedError):
        MsgpackSerializer().loads_typed((tag, data))


@pytest.mark.parametrize("data", [("json", b"{}"), ("msgpack+aesgcm", b"x"), ("", b"")])
def test_unknown_tags(data: tuple[str, bytes]) -> None:
    with pytest.raises(ValueError, match="Unknown checkpoint type tag"):
        MsgpackSerializer().loads_typed(data)


def test_bad_loads_arguments() -> None:
    serde = MsgpackSerializer()
    with pytest.raises(CorruptCheckpointError):
        serde.loads_typed("msgpack")  # type: ignore[arg-type]
    with pytest.raises(CorruptCheckpointError):
        serde.loads_typed(("msgpack", "text"))  # type: ignore[arg-type]


# -- encryption --------------------------------------------------------------------------

KEY = bytes(range(32))


@pytest.fixture
def encrypted() -> EncryptedSerializer:
    pytest.importorskip("cryptography")
    return EncryptedSerializer.from_aes_gcm(KEY, serde=MsgpackSerializer(allowed_types=[Point]))


def test_encrypted_roundtrip(encrypted: EncryptedSerializer) -> None:
    for value in (
        None,
        b"raw",
        "text",
        {"m": _messages(), "t": (1, 2)},
        Point(1),
        Send("a", 1),
    ):
        tag, data = encrypted.dumps_typed(value)
        assert tag.endswith(f"+aesgcm:{key_id(KEY)}")
        assert encrypted.loads_typed((tag, data)) == value
    tag, data = encrypted.dumps_typed({"secret": "hunter2"})
    assert tag == f"msgpack+aesgcm:{key_id(KEY)}" and b"hunter2" not in data
    assert encrypted.dumps_typed("same")[1] != encrypted.dumps_typed("same")[1]  # nonce


def test_tampered_ciphertext(encrypted: EncryptedSerializer) -> None:
    tag, data = encrypted.dumps_typed({"a": 1})
    for i in (0, 12, len(data) - 1):
        flipped = bytearray(data)
        flipped[i] ^= 1
        with pytest.raises(DecryptionError, match="tampered"):
            encrypted.loads_typed((tag, bytes(flipped)))
    with pytest.raises(DecryptionError, match="truncated"):
        encrypted.loads_typed((tag, data[:10]))
    with pytest.raises(DecryptionError):
        encrypted.loads_typed((tag.replace("msgpack", "bytes"), data))  # tag swapped
    with pytest.raises(DecryptionError, match="cipher"):
        encrypted.loads_typed(("msgpack+rot13", data))
    other = EncryptedSerializer.from_aes_gcm(bytes(32))
    with pytest.raises(UnknownKeyError, match="not among this serializer's keys"):
        other.loads_typed((tag, data))  # the key id says which key it needs
    assert isinstance(DecryptionError("x"), ValueError)


def test_plaintext_refused_unless_opted_in(encrypted: EncryptedSerializer) -> None:
    """An encrypting serializer refuses unencrypted values by default (anyone with write
    access to the store could slip one in); a migration opts in by name."""
    plain = MsgpackSerializer()
    with pytest.raises(UnencryptedValueError, match="allow_plaintext_reads") as info:
        encrypted.loads_typed(plain.dumps_typed({"old": 1}))
    assert isinstance(info.value, CorruptCheckpointError)
    migrating = EncryptedSerializer.from_aes_gcm(KEY, allow_plaintext_reads=True)
    for value in ({"old": (1, 2)}, None, b"bytes", [HumanMessage("x")]):
        assert migrating.loads_typed(plain.dumps_typed(value)) == value
    assert migrating.loads_typed(migrating.dumps_typed({"new": 1})) == {"new": 1}


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography")
    monkeypatch.delenv("THREADLOOM_AES_KEY", raising=False)
    with pytest.raises(EncryptionKeyError, match="THREADLOOM_AES_KEY") as info:
        EncryptedSerializer.from_aes_gcm()
    assert isinstance(info.value, ValueError)
    with pytest.raises(EncryptionKeyError, match="MY_KEY"):
        EncryptedSerializer.from_aes_gcm(env_var="MY_KEY")

    for bad in ("tooshort", "zz" * 32, base64.b64encode(b"x" * 20).decode(), "   "):
        monkeypatch.setenv("THREADLOOM_AES_KEY", bad)
        with pytest.raises(EncryptionKeyError, match="THREADLOOM_AES_KEY"):
            EncryptedSerializer.from_aes_gcm()

    reference = EncryptedSerializer.from_aes_gcm(KEY)
    blob = reference.dumps_typed({"v": 1})
    for text in (
        KEY.hex(),
        KEY.hex().upper(),
        base64.b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        f"  {KEY.hex()}\n",
    ):
        monkeypatch.setenv("THREADLOOM_AES_KEY", text)
        assert EncryptedSerializer.from_aes_gcm().loads_typed(blob) == {"v": 1}
    for size in (16, 24):
        monkeypatch.setenv("THREADLOOM_AES_KEY", os.urandom(size).hex())
        serde = EncryptedSerializer.from_aes_gcm()
        assert serde.loads_typed(serde.dumps_typed("x")) == "x"


def test_bad_key_argument() -> None:
    pytest.importorskip("cryptography")
    with pytest.raises(EncryptionKeyError, match="16, 24 or 32"):
        EncryptedSerializer.from_aes_gcm(b"short")
    serde = EncryptedSerializer.from_aes_gcm(KEY.hex())
    assert EncryptedSerializer.from_aes_gcm(KEY).loads_typed(serde.dumps_typed(1)) == 1


def test_missing_cryptography_is_a_helpful_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(ImportError, match=r"threadloom\[crypto\]"):
        EncryptedSerializer.from_aes_gcm(KEY)


def test_encrypted_inner_pickle_requires_opt_in() -> None:
    pytest.importorskip("cryptography")
    unsafe = EncryptedSerializer.from_aes_gcm(KEY, serde=MsgpackSerializer(pickle_fallback=True))
    tag, data = unsafe.dumps_typed(NotRegistered())
    assert tag == f"pickle+aesgcm:{key_id(KEY)}"
    assert type(unsafe.loads_typed((tag, data))) is NotRegistered
    with pytest.raises(PickleNotAllowedError):
        EncryptedSerializer.from_aes_gcm(KEY).loads_typed((tag, data))


def test_schema_evolution(serde: MsgpackSerializer) -> None:
    """Fields added or removed between writing and reading do not break old checkpoints."""
    old_point = _ext(EXT_OBJECT, [f"{__name__}:Point", {"x": 1, "removed_field": 5}])
    assert serde.loads_typed(("msgpack", old_point)) == Point(1)
    old_ticket = _ext(EXT_OBJECT, [f"{__name__}:Ticket", {"id": 4, "removed_field": 5}])
    result = serde.loads_typed(("msgpack", old_ticket))
    assert result == Ticket(id=4) and result.labels == []


def test_models_read_back_after_their_class_changed() -> None:
    """Stored by one version of a class, read by the next: fields it gained take their
    defaults (fresh containers, user factories called), fields it lost are dropped (or
    kept as extras where the model allows them), field order is the new class's."""

    class Ticket(BaseModel):
        title: str
        old: str = "gone"

    Ticket.__qualname__ = "Ticket"  # every version below is stored under this one name
    stored = MsgpackSerializer(allowed_types=[Ticket]).dumps_typed(
        Ticket(title="t", old="was here")
    )

    def newer(extra: str) -> type[BaseModel]:
        class Ticket(BaseModel):
            model_config = ConfigDict(extra=extra)  # type: ignore[typeddict-item]
            tags: list[str] = Field(default_factory=list)
            title: str
            note: str = "none"
            stamp: list[str] = Field(default_factory=lambda: ["made on read"])

        Ticket.__qualname__ = "Ticket"
        return Ticket

    for extra in ("ignore", "allow"):
        cls = newer(extra)
        first = MsgpackSerializer(allowed_types=[cls]).loads_typed(stored)
        second = MsgpackSerializer(allowed_types=[cls]).loads_typed(stored)
        assert type(first) is cls
        assert list(first.__dict__) == ["tags", "title", "note", "stamp"]
        assert (first.tags, first.title, first.note, first.stamp) == (
            [], "t", "none", ["made on read"]
        )
        assert first.tags is not second.tags and first.stamp is not second.stamp
        assert first.model_extra == ({"old": "was here"} if extra == "allow" else None)
        assert first.model_fields_set == {"title", "old"}  # as stored

    class Ticket(BaseModel):  # noqa: F811 - a required field the stored one lacks
        title: str
        owner: str

    Ticket.__qualname__ = "Ticket"
    lacking = MsgpackSerializer(allowed_types=[Ticket]).loads_typed(stored)
    assert lacking.title == "t" and "owner" not in lacking.__dict__


# -- nesting depth and damaged rows (hostile bytes) -----------------------------------------


def _forged_nest(depth: int) -> bytes:
    """``depth`` tuple extension records, each holding the next one: the shape of a
    forged value that used to exhaust the reader's C stack (a segfault at ~200 levels)."""
    data = msgpack.packb([])
    for _ in range(depth):
        data = msgpack.packb(msgpack.ExtType(EXT_TUPLE, b"\x91" + data))
    return data


def test_forged_deep_nesting_is_refused_not_a_crash(tmp_path: pathlib.Path) -> None:
    import sqlite3
    import subprocess
    import textwrap

    from threadloom.checkpoint.base import empty_checkpoint
    from threadloom.checkpoint.sqlite import SqliteSaver

    db = tmp_path / "forged.db"
    with SqliteSaver.from_conn_string(str(db)) as saver:
        cp = empty_checkpoint()
        cp["channel_values"] = {"x": (1,)}
        cp["channel_versions"] = {"x": "00000000000000000000000000000001.1"}
        config = {"configurable": {"thread_id": "victim", "checkpoint_ns": ""}}
        saved = saver.put(config, cp, {}, cp["channel_versions"])
    forged = _forged_nest(200)
    assert 900 < len(forged) < 1000
    conn = sqlite3.connect(db)
    assert conn.execute("UPDATE threadloom_blobs SET blob = ? WHERE channel = 'x'", (forged,))
    conn.commit()
    conn.close()
    # in a child process: before the bound, the read killed the whole process (SIGSEGV)
    script = textwrap.dedent(
        f"""
        from threadloom.checkpoint.sqlite import SqliteSaver
        from threadloom.checkpoint.serde import CorruptCheckpointError
        with SqliteSaver.from_conn_string({str(db)!r}) as saver:
            try:
                saver.get_tuple({{"configurable": {{"thread_id": "victim"}}}})
            except CorruptCheckpointError as exc:
                print("REFUSED", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.startswith("REFUSED"), done.stdout
    assert "'victim'" in done.stdout
    assert repr(saved["configurable"]["checkpoint_id"]) in done.stdout
    assert "nests extension records more than 64 levels" in done.stdout


def test_extension_nesting_is_bounded_on_both_sides() -> None:
    from threadloom.checkpoint.serde import NestingTooDeepError
    from threadloom.checkpoint.serde.msgpack import MAX_NESTING_DEPTH

    serde = MsgpackSerializer()
    ok: Any = "leaf"
    for _ in range(MAX_NESTING_DEPTH):
        ok = (ok,)
    assert serde.loads_typed(serde.dumps_typed(ok)) == ok  # the deepest value allowed
    too_deep: Any = ()
    for _ in range(200):
        too_deep = (too_deep,)
    with pytest.raises(NestingTooDeepError, match="more than 64 levels deep") as info:
        serde.dumps_typed(too_deep)
    assert isinstance(info.value, ValueError)
    # objects, sets and datetimes count too; plain lists and dicts do not
    deep_objects: Any = "leaf"
    for _ in range(100):
        deep_objects = Send("node", {"arg": deep_objects})
    with pytest.raises(NestingTooDeepError):
        serde.dumps_typed(deep_objects)
    lists: Any = []
    for _ in range(300):
        lists = [lists]
    assert serde.loads_typed(serde.dumps_typed(lists)) == lists
    with pytest.raises(CorruptCheckpointError, match="forged or damaged"):
        serde.loads_typed(("msgpack", _forged_nest(MAX_NESTING_DEPTH + 1)))
    assert serde.loads_typed(("msgpack", _forged_nest(MAX_NESTING_DEPTH))) is not None
    # the failed calls left no depth behind: a normal value still reads and writes
    assert serde.loads_typed(serde.dumps_typed(((1,), {2}))) == ((1,), {2})


def _damage_sqlite_row(db: pathlib.Path, table: str, column: str, change: Any) -> None:
    """Decode each msgpack row of ``table``, let ``change`` alter it, store it back."""
    import sqlite3

    serde = MsgpackSerializer()
    conn = sqlite3.connect(db)
    rows = conn.execute(f"SELECT rowid, type, {column} FROM {table}").fetchall()
    for rowid, typ, blob in rows:
        if typ != "msgpack":
            continue
        changed = change(serde.loads_typed((typ, blob)))
        if changed is not None:
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                (serde.dumps_typed(changed)[1], rowid),
            )
    conn.commit()
    conn.close()


def _paused_sqlite_graph(db: pathlib.Path) -> tuple[Any, str]:
    from typing import TypedDict

    from threadloom.checkpoint.sqlite import SqliteSaver
    from threadloom.graph import END, START, StateGraph
    from threadloom.types import interrupt

    class State(TypedDict):
        x: int

    def ask(state: State) -> dict[str, int]:
        return {"x": interrupt("ok?")}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    with SqliteSaver.from_conn_string(str(db)) as saver:
        builder.compile(checkpointer=saver).invoke({"x": 1}, {"configurable": {"thread_id": "t"}})
        head = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert head is not None
    return builder, head.config["configurable"]["checkpoint_id"]


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(stored: Any) -> Any:
        target = stored
        for key in path[:-1]:
            if not isinstance(target, dict) or key not in target:
                return None
            target = target[key]
        if not isinstance(target, dict) or path[-1] not in target:
            return None
        target[path[-1]] = value
        return stored

    return change


def _damage_version(stored: Any) -> Any:
    if isinstance(stored, dict) and stored.get("channel_versions"):
        channel = next(iter(stored["channel_versions"]))
        stored["channel_versions"][channel] = "00v00000000000000000000000000003.5"
        return stored
    return None


@pytest.mark.parametrize(
    "table, column, change",
    [
        ("threadloom_checkpoints", "checkpoint", _set(("versions_seen",), None)),
        ("threadloom_checkpoints", "checkpoint", _set(("versions_seen",), [["a"]])),
        ("threadloom_checkpoints", "checkpoint", _set(("channel_versions",), [1])),
        ("threadloom_checkpoints", "checkpoint", _damage_version),
        (
            "threadloom_writes",
            "blob",
            lambda v: [{"value": "ok?", "id": "x"}] if isinstance(v, list) else None,
        ),
        ("threadloom_writes", "blob", lambda v: True if isinstance(v, list) else None),
    ],
    ids=["seen-none", "seen-list", "versions-list", "version-text", "interrupt-dict",
         "interrupt-bool"],
)
def test_damaged_rows_raise_corrupt_checkpoint_error_naming_the_row(
    tmp_path: pathlib.Path, table: str, column: str, change: Any
) -> None:
    """Rows that decode cleanly but are damaged used to surface as raw TypeError /
    AttributeError / ValueError from deep inside a run."""
    from threadloom.checkpoint.sqlite import SqliteSaver
    from threadloom.types import Command

    db = tmp_path / "damaged.db"
    builder, checkpoint_id = _paused_sqlite_graph(db)
    _damage_sqlite_row(db, table, column, change)
    config = {"configurable": {"thread_id": "t"}}
    with SqliteSaver.from_conn_string(str(db)) as saver:
        graph = builder.compile(checkpointer=saver)
        with pytest.raises(CorruptCheckpointError) as info:
            graph.get_state(config)
            graph.invoke(Command(resume=2), config)
    assert "thread 't'" in str(info.value)
    assert repr(checkpoint_id) in str(info.value)


def test_payload_loader_decodes_as_loads_typed(serde: MsgpackSerializer) -> None:
    """``payload_loader`` (a listing decodes many rows with it) gives what ``loads_typed``
    gives for 'msgpack' payloads, registered classes included; a subclass that decodes
    otherwise gets None, so its own ``loads_typed`` is used."""
    value = {"p": Point(1, 2), "c": Color.RED, "when": dt.date(2024, 1, 2), "n": [1, "a"]}
    tag, data = serde.dumps_typed(value)
    load = serde.payload_loader()
    assert tag == "msgpack" and load is not None
    assert load(data) == serde.loads_typed((tag, data)) == value
    with pytest.raises(Exception):  # noqa: B017 - raw errors: the caller decodes again
        load(data[:-3])

    class Upper(MsgpackSerializer):
        def loads_typed(self, data: tuple[str, bytes]) -> Any:
            return str(super().loads_typed(data)).upper()

    assert Upper().payload_loader() is None
