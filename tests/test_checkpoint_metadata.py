"""What goes into a checkpoint's metadata from the config, as LangGraph puts it there:
the plain (str/int/float/bool) values of the config's ``metadata`` and ``configurable``
(``metadata`` first), without the checkpoint's address, the per-task ``langgraph_*`` keys
and private ``__`` keys - for a run's checkpoints and for ``update_state``'s."""

from __future__ import annotations

import operator
from typing import Annotated

from typing_extensions import TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph


class S(TypedDict):
    log: Annotated[list, operator.add]


def _graph():
    g = StateGraph(S)
    g.add_node("one", lambda s: {"log": ["one"]})
    g.add_edge(START, "one")
    g.add_edge("one", END)
    return g.compile(checkpointer=MemorySaver())


CONFIGURABLE = {
    "thread_id": "t", "user": "ann", "n": 3, "flag": True, "ratio": 0.5,
    "langgraph_auth_user_id": "ann", "langgraph_auth_user": {"identity": "ann"},
    "langgraph_step": 7, "langgraph_node": "x", "__private": "hidden", "obj": ["a"],
}
METADATA = {"graph_id": "g", "langgraph_api_url": "http://x", "langgraph_triggers": ["t"],
            "checkpoint_ns": "ignored", "tags_of_mine": ["a", "b"], "user": "from metadata",
            "nul": "a\x00b", "nothing": None}
EXPECTED = {"user": "from metadata", "nul": "ab", "n": 3, "flag": True, "ratio": 0.5,
            "langgraph_auth_user_id": "ann", "graph_id": "g",
            "langgraph_api_url": "http://x"}


def _user_keys(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k not in ("source", "step", "parents")}


def test_a_runs_checkpoints_carry_the_configs_metadata_and_plain_values() -> None:
    graph = _graph()
    config = {"configurable": CONFIGURABLE, "metadata": METADATA}
    graph.invoke({"log": []}, config)
    history = list(graph.get_state_history({"configurable": {"thread_id": "t"}}))
    assert history
    for snapshot in history:
        assert _user_keys(snapshot.metadata) == EXPECTED


def test_update_state_writes_the_configs_metadata_and_plain_values_too() -> None:
    graph = _graph()
    graph.invoke({"log": []}, {"configurable": {"thread_id": "t"}})
    graph.update_state({"configurable": CONFIGURABLE, "metadata": METADATA},
                       {"log": ["edited"]}, as_node="one")
    snapshot = graph.get_state({"configurable": {"thread_id": "t"}})
    assert snapshot.metadata["source"] == "update"
    assert _user_keys(snapshot.metadata) == EXPECTED
