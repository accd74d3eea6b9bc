"""interrupt(response_schema=...): the schema shown with the pause, the answer checked."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.errors import is_invalid_resume
from threadloom.graph import START, StateGraph
from threadloom.types import Command, Interrupt, interrupt


class Approval(BaseModel):
    approved: bool


class S(TypedDict):
    answer: Any


def _graph(schema: Any) -> Any:
    def node(state: S) -> S:
        return {"answer": interrupt("ok?", response_schema=schema)}

    builder = StateGraph(S)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    return builder.compile(checkpointer=MemorySaver())


def test_model_schema_is_shown_and_the_answer_validated() -> None:
    graph = _graph(Approval)
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"answer": None}, config)
    [pending] = graph.get_state(config).interrupts
    assert pending.response_schema == Approval.model_json_schema()

    with pytest.raises(ValidationError) as info:
        graph.invoke(Command(resume={"approved": "maybe"}), config)
    assert is_invalid_resume(info.value)
    assert [i.id for i in graph.get_state(config).interrupts] == [pending.id]  # still asked

    assert graph.invoke(Command(resume={"approved": True}), config) == {
        "answer": Approval(approved=True)
    }


def test_dict_schema_is_shown_as_is_and_not_checked() -> None:
    schema = {"type": "object"}
    graph = _graph(schema)
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"answer": None}, config)
    assert graph.get_state(config).interrupts[0].response_schema == schema
    assert graph.invoke(Command(resume=[1]), config) == {"answer": [1]}


def test_typeddict_schema() -> None:
    class Choice(TypedDict):
        pick: int

    graph = _graph(Choice)
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"answer": None}, config)
    assert graph.get_state(config).interrupts[0].response_schema["required"] == ["pick"]
    assert graph.invoke(Command(resume={"pick": "3"}), config) == {"answer": {"pick": 3}}


def test_legacy_interrupt_fields_give_the_namespace_id() -> None:
    legacy = Interrupt(value="v", resumable=True, when="during", ns=["a:b", "c:d"])
    assert legacy.id == Interrupt.from_ns("v", "a:b|c:d").id
    with pytest.raises(TypeError, match="colour"):
        Interrupt(value="v", colour="red")


def test_root_checkpoints_name_no_parents() -> None:
    graph = _graph(None)
    config = {"configurable": {"thread_id": "1"}}
    graph.invoke({"answer": None}, config)
    assert all(c.metadata["parents"] == {} for c in graph.get_state_history(config))
