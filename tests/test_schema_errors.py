"""Schemas whose annotations cannot be read fail loudly instead of losing their reducers."""

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
