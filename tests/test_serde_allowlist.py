"""``threadloom.checkpoint.serde.allowlist``: the classes a state schema can hold."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    NamedTuple,
    NewType,
    NotRequired,
    Optional,
)

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from pydantic import BaseModel
from typing_extensions import TypedDict

from threadloom.checkpoint.serde import MsgpackSerializer
from threadloom.checkpoint.serde.allowlist import builtin_classes, schema_classes

if TYPE_CHECKING:

    class OnlyForTypeCheckers:
        pass


class Mood(enum.Enum):
    GOOD = "good"


class Note(BaseModel):
    text: str
    mood: Mood | None = None


class Point(NamedTuple):
    x: int
    note: Optional[Note]  # noqa: UP045


@dataclass
class Tree:
    value: int
    children: list[Tree]
    points: deque[Point]


@dataclass
class Dangling:
    what: OnlyForTypeCheckers
    note: Note


class State(TypedDict):
    tree: Tree
    tags: NotRequired[Annotated[dict[str, frozenset[Mood]], "meta"]]
    kind: Literal["a", "b"]
    anything: Any
    user: NewType("UserId", int)  # type: ignore[valid-type]


def test_schema_classes_follows_fields_containers_and_unions() -> None:
    assert schema_classes([State]) == {Tree, Point, Note, Mood}
    assert schema_classes([Note | None, list[Annotated[Point, "x"]]]) == {Note, Point, Mood}
    # unresolvable annotations: the class, and what can still be resolved
    assert schema_classes([Dangling]) == {Dangling, Note, Mood}
    assert schema_classes([Any, Literal["x"], int, str]) == set()

    class Channel:  # channels tell their types as LangGraph's do
        ValueType = Tree
        UpdateType = list[Note]

    assert schema_classes(channels={"a": Channel()}) == {Tree, Point, Note, Mood}


def test_collected_classes_make_a_working_serializer() -> None:
    serde = MsgpackSerializer(allowed_types=schema_classes([State]))
    tree = Tree(1, [Tree(2, [], deque())], deque([Point(1, Note(text="n", mood=Mood.GOOD))]))
    assert serde.loads_typed(serde.dumps_typed(tree)) == tree


def test_builtin_classes() -> None:
    found = builtin_classes()
    assert {AIMessage, HumanMessage, BaseMessage, ValueError} <= found
