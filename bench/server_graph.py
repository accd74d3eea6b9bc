"""The graphs ``bench/server.py`` serves: pay after a person approves (``interrupt()``);
``waiting_graph`` (``--wait``) waits first, as a node calling a model does;
``large_graph`` (``bench/server_large.py``) makes a large state before asking.

Plain LangGraph-API code with no checkpointer, so threadloom and the reference server
can both serve it (the reference after renaming the import)."""

from __future__ import annotations

import asyncio
from typing import NotRequired, TypedDict

try:  # threadloom; the reference server imports langgraph instead
    from threadloom.graph import END, START, StateGraph
    from threadloom.types import interrupt
except ImportError:  # pragma: no cover - only in the reference server's venv
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt


class Payment(TypedDict):
    amount: int
    outcome: str
    wait: NotRequired[float]


def pay(state: Payment) -> dict:
    answer = interrupt({"approve": f"pay {state['amount']}?"})
    return {"outcome": "paid" if answer == "approve" else "refused"}


builder = StateGraph(Payment)
builder.add_node("pay", pay)
builder.add_edge(START, "pay")
builder.add_edge("pay", END)
graph = builder.compile()


async def pay_after_waiting(state: Payment) -> dict:
    """``pay``, after waiting ``wait`` seconds (as a node calling a model waits): runs
    then hold a worker's slot without using its CPU."""
    await asyncio.sleep(state.get("wait", 0.0))
    answer = interrupt({"approve": f"pay {state['amount']}?"})
    return {"outcome": "paid" if answer == "approve" else "refused"}


waiting_builder = StateGraph(Payment)
waiting_builder.add_node("pay", pay_after_waiting)
waiting_builder.add_edge(START, "pay")
waiting_builder.add_edge("pay", END)
waiting_graph = waiting_builder.compile()


class LargeState(TypedDict, total=False):
    size: int
    blob: str
    outcome: str


def make_large(state: LargeState) -> dict:
    """A state of ``size`` characters (a long document, a large tool result)."""
    return {"blob": "x" * state["size"]}


def review_large(state: LargeState) -> dict:
    answer = interrupt({"approve": f"{len(state['blob'])} characters?"})
    return {"outcome": "paid" if answer == "approve" else "refused"}


large_builder = StateGraph(LargeState)
large_builder.add_node("make", make_large)
large_builder.add_node("review", review_large)
large_builder.add_edge(START, "make")
large_builder.add_edge("make", "review")
large_builder.add_edge("review", END)
large_graph = large_builder.compile()
