"""The graph ``bench/server.py`` serves: pay after a person approves (``interrupt()``).

Plain LangGraph-API code with no checkpointer, so threadloom and the reference server
can both serve it (the reference after renaming the import)."""

from __future__ import annotations

from typing import TypedDict

try:  # threadloom; the reference server imports langgraph instead
    from threadloom.graph import END, START, StateGraph
    from threadloom.types import interrupt
except ImportError:  # pragma: no cover - only in the reference server's venv
    from langgraph.graph import END, START, StateGraph
    from langgraph.types import interrupt


class Payment(TypedDict):
    amount: int
    outcome: str


def pay(state: Payment) -> dict:
    answer = interrupt({"approve": f"pay {state['amount']}?"})
    return {"outcome": "paid" if answer == "approve" else "refused"}


builder = StateGraph(Payment)
builder.add_node("pay", pay)
builder.add_edge(START, "pay")
builder.add_edge("pay", END)
graph = builder.compile()
