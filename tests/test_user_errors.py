"""Mistakes a user can make get a clear error or warning instead of silent misbehaviour."""

from __future__ import annotations

import pytest

from threadloom.graph import StateGraph


def test_unresolvable_string_annotation_names_the_key() -> None:
    namespace: dict = {}
    code = (
        "from __future__ import annotations\n"
        "from typing import Annotated, TypedDict\n"
        "class S(TypedDict):\n"
        "    items: Annotated[list, Missing]\n"
    )
    exec(compile(code, "<schema>", "exec", dont_inherit=True), namespace)
    with pytest.raises(TypeError, match="key 'items'.*Define the schema at module level"):
        StateGraph(namespace["S"])


def test_pause_without_checkpointer_warns_it_cannot_be_resumed() -> None:
    from typing import TypedDict

    from threadloom.errors import PausedWithoutCheckpointerWarning
    from threadloom.graph import START
    from threadloom.types import interrupt

    class S(TypedDict, total=False):
        answer: str

    builder = StateGraph(S)
    builder.add_node("ask", lambda s: {"answer": interrupt("?")})
    builder.add_edge(START, "ask")
    with pytest.warns(PausedWithoutCheckpointerWarning, match="can never be resumed"):
        out = builder.compile().invoke({})
    assert out["__interrupt__"][0].value == "?"
