"""Unregistered user classes: stored by name by the savers' default (non-strict) serializer,
rebuilt only from modules the reading process already imported; strict mode refuses."""

from __future__ import annotations

import dataclasses
import enum
import logging
import sys
from typing import Any, NamedTuple

import msgpack
import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import InMemorySaver
from threadloom.checkpoint.serde import (
    EncryptedSerializer,
    MsgpackSerializer,
    UnknownTypeError,
    UnregisteredTypeError,
)
from threadloom.checkpoint.serde.jsonplus import JsonPlusSerializer
from threadloom.checkpoint.serde.msgpack import EXT_OBJECT, default_serializer
from threadloom.checkpoint.sqlite import SqliteSaver
from threadloom.graph import END, START, StateGraph
from threadloom.types import Command, interrupt


class Mood(enum.Enum):
    HAPPY = "happy"
    SAD = "sad"


@dataclasses.dataclass
class Note:
    text: str
    tags: list[str] = dataclasses.field(default_factory=list)


class Span(NamedTuple):
    start: int
    end: int


class Profile(BaseModel):
    name: str
    mood: Mood = Mood.HAPPY
    note: Note | None = None


@dataclasses.dataclass
class ReadOnly:  # only ever written by a strict serializer with it allowed (another process)
    n: int


@dataclasses.dataclass
class StrictOnly:
    n: int


class PlainThing:
    def __init__(self, n: int = 0) -> None:
        self.n = n


def _ext(code: int, value: Any) -> bytes:
    return msgpack.packb(msgpack.ExtType(code, msgpack.packb(value)))


def roundtrip(serde: Any, value: Any) -> Any:
    return serde.loads_typed(serde.dumps_typed(value))


def test_savers_default_serializer_stores_unregistered_user_classes() -> None:
    serde = InMemorySaver().serde
    assert isinstance(serde, MsgpackSerializer) and serde.strict is False
    value = {
        "profile": Profile(name="ada", mood=Mood.SAD, note=Note("hi", ["x"])),
        "span": Span(1, 3),
        "mood": Mood.HAPPY,
        "notes": [Note("a")],
    }
    got = roundtrip(serde, value)
    assert got == value
    assert type(got["profile"]) is Profile and type(got["profile"].note) is Note
    assert type(got["span"]) is Span and got["mood"] is Mood.HAPPY
    assert roundtrip(JsonPlusSerializer(), value) == value
    enc = EncryptedSerializer.from_aes_gcm(key=b"k" * 32) if _has_crypto() else None
    if enc is not None:
        assert roundtrip(enc, value) == value


def _has_crypto() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def test_classes_defined_in_functions_round_trip_in_the_writing_process() -> None:
    serde = default_serializer()

    def make() -> tuple[type, type]:
        class Local(BaseModel):
            x: int

        @dataclasses.dataclass
        class LocalDc:
            y: int

        return Local, LocalDc

    first, first_dc = make()
    got = roundtrip(serde, [first(x=1), first_dc(2)])
    assert type(got[0]) is first and type(got[1]) is first_dc
    # the same qualified name redefined (a re-run test, a notebook cell): the new class
    second, _ = make()
    assert type(roundtrip(serde, second(x=2))) is second
    assert type(roundtrip(serde, first(x=3))) is first


def test_reading_an_imported_class_written_elsewhere_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = MsgpackSerializer(allowed_types=[ReadOnly])  # "another process": registered
    data = writer.dumps_typed(ReadOnly(5))
    with caplog.at_level(logging.WARNING, "threadloom.checkpoint.serde"):
        assert MsgpackSerializer(strict=False).loads_typed(data) == ReadOnly(5)
        assert MsgpackSerializer(strict=False).loads_typed(data) == ReadOnly(5)
    warnings = [r for r in caplog.records if "ReadOnly" in r.getMessage()]
    assert len(warnings) == 1 and "register_type" in warnings[0].getMessage()
    # a strict reader refuses it, naming the class and how to allow it
    with pytest.raises(UnknownTypeError) as info:
        MsgpackSerializer(strict=True).loads_typed(data)
    message = str(info.value)
    assert f"{__name__}:ReadOnly" in message
    assert "register_type" in message and "allowed_msgpack_modules" in message
    allowed = JsonPlusSerializer(allowed_msgpack_modules=[(__name__, "ReadOnly")])
    assert allowed.loads_typed(data) == ReadOnly(5)


def test_stored_names_never_import_or_resolve_other_things() -> None:
    serde = MsgpackSerializer(strict=False)
    assert "antigravity" not in sys.modules
    with pytest.raises(UnknownTypeError, match="antigravity:fly") as info:
        serde.loads_typed(("msgpack", _ext(EXT_OBJECT, ["antigravity:fly", {}])))
    assert "import its module" in str(info.value)
    assert "antigravity" not in sys.modules
    for key in (
        "os:system",  # a function of an imported module
        "threading:Thread",  # a plain class: not rebuilt without registration
        f"{__name__}:PlainThing",
        f"{__name__}:_ext",
        f"{__name__}:Mood.HAPPY",  # an enum member, not a class
        f"{__name__}:dataclasses.dataclass",  # attribute chains through modules
        f"{__name__}:Profile.__class__",  # reached, but not under its own name
        "typing:NamedTuple",
    ):
        with pytest.raises(UnknownTypeError):
            serde.loads_typed(("msgpack", _ext(EXT_OBJECT, [key, {"n": 1}])))


def test_aliases_are_refused() -> None:
    # a module attribute naming a class defined elsewhere is not that class's stored name
    sys.modules[__name__].__dict__["NoteAlias"] = Note
    try:
        with pytest.raises(UnknownTypeError, match="NoteAlias"):
            MsgpackSerializer(strict=False).loads_typed(
                ("msgpack", _ext(EXT_OBJECT, [f"{__name__}:NoteAlias", {"text": "x"}]))
            )
    finally:
        del sys.modules[__name__].__dict__["NoteAlias"]


def test_plain_classes_still_need_registration() -> None:
    with pytest.raises(UnregisteredTypeError, match="PlainThing") as info:
        default_serializer().dumps_typed({"x": PlainThing(1)})
    assert "only pydantic models, dataclasses, NamedTuples and enums" in str(info.value)


def test_strict_mode_refuses_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    for strict in (
        MsgpackSerializer(),
        MsgpackSerializer(strict=True),
        JsonPlusSerializer(allowed_msgpack_modules=None),
        JsonPlusSerializer(allowed_msgpack_modules=[Note]),
    ):
        assert strict.strict is True
        with pytest.raises(UnregisteredTypeError, match="StrictOnly.*strict"):
            strict.dumps_typed(StrictOnly(1))
    data = MsgpackSerializer(strict=False).dumps_typed(StrictOnly(1))
    with pytest.raises(UnknownTypeError, match="StrictOnly"):
        JsonPlusSerializer(allowed_msgpack_modules=None).loads_typed(data)
    assert JsonPlusSerializer(allowed_msgpack_modules=True).strict is False
    monkeypatch.setenv("LANGGRAPH_STRICT_MSGPACK", "true")
    assert JsonPlusSerializer().strict is True
    assert InMemorySaver().serde.strict is True  # type: ignore[attr-defined]
    assert JsonPlusSerializer(allowed_msgpack_modules=True).strict is False
    monkeypatch.delenv("LANGGRAPH_STRICT_MSGPACK")
    monkeypatch.setenv("THREADLOOM_STRICT_MSGPACK", "1")
    assert default_serializer().strict is True


class ProfileState(BaseModel):
    profile: Profile
    spans: list[Span] = []


class Review(TypedDict):
    profile: Profile


@pytest.mark.parametrize("saver_kind", ["memory", "sqlite"])
def test_graph_state_and_interrupts_with_unregistered_classes(saver_kind: str) -> None:
    def ask(state: ProfileState) -> dict[str, Any]:
        answer = interrupt(Note("how do you feel?", ["q"]))
        return {"profile": Profile(name=state.profile.name, mood=answer), "spans": [Span(0, 1)]}

    builder = StateGraph(ProfileState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)

    def run(saver: Any) -> None:
        graph = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        out = graph.invoke({"profile": Profile(name="ada")}, config)
        (pending,) = out["__interrupt__"]
        assert pending.value == Note("how do you feel?", ["q"])
        state = graph.get_state(config)
        assert type(state.values["profile"]) is Profile
        assert state.tasks[0].interrupts[0].value == Note("how do you feel?", ["q"])
        out = graph.invoke(Command(resume=Mood.SAD), config)
        assert out["profile"] == Profile(name="ada", mood=Mood.SAD)
        assert out["spans"] == [Span(0, 1)] and type(out["spans"][0]) is Span
        assert graph.get_state(config).values["profile"].mood is Mood.SAD

    if saver_kind == "memory":
        run(InMemorySaver())
    else:
        with SqliteSaver.from_conn_string(":memory:") as saver:
            run(saver)


def test_compile_allows_schema_classes_in_a_strict_serializer() -> None:
    def ask(state: ProfileState) -> dict[str, Any]:
        answer = interrupt(Note("mood?"))
        return {"profile": Profile(name=state.profile.name, mood=answer)}

    def leak(state: ProfileState) -> dict[str, Any]:
        interrupt(StrictOnly(1))  # not declared by any schema
        return {}

    strict = MsgpackSerializer(strict=True)
    saver = InMemorySaver(serde=strict)
    builder = StateGraph(ProfileState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    graph = builder.compile(checkpointer=saver)
    assert {Profile, Mood, Note, Span} <= set(strict.registry)
    config = {"configurable": {"thread_id": "t"}}
    graph.invoke({"profile": Profile(name="ada")}, config)
    out = graph.invoke(Command(resume=Mood.SAD), config)
    assert out["profile"] == Profile(name="ada", mood=Mood.SAD)

    other = StateGraph(ProfileState)
    other.add_node("leak", leak)
    other.add_edge(START, "leak")
    with pytest.raises(UnregisteredTypeError, match="StrictOnly"):
        other.compile(checkpointer=InMemorySaver(serde=MsgpackSerializer(strict=True))).invoke(
            {"profile": Profile(name="x")}, {"configurable": {"thread_id": "t"}}
        )
    # a non-strict serializer is left as it is
    loose = MsgpackSerializer(strict=False)
    builder.compile(checkpointer=InMemorySaver(serde=loose))
    assert len(loose.registry) == 0
