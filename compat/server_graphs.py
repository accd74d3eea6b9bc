"""The graphs ``compat/server_diff.py`` serves, on threadloom and on the reference server.

Plain LangGraph-API code with no checkpointer: threadloom serves it as is, the reference
server (``langgraph dev``, in its own venv without threadloom) after the import falls back
to ``langgraph``. Every graph is deterministic (no model behind a network, no clock), so
the two servers' answers can be compared field by field.
"""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, NotRequired

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from typing_extensions import TypedDict

try:  # threadloom; the reference server's venv has langgraph instead
    from threadloom.config import get_stream_writer
    from threadloom.graph import END, START, StateGraph
    from threadloom.graph.message import add_messages
    from threadloom.types import Command, interrupt
except ImportError:  # pragma: no cover - only in the reference server's venv
    from langgraph.config import get_stream_writer
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.types import Command, interrupt


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: NotRequired[int]


def reply(state: Chat) -> dict:
    """Answer the last message with a fixed text (its id fixed too)."""
    turns = state.get("turns", 0) + 1
    text = f"echo {turns}: {state['messages'][-1].content}"
    return {"messages": [AIMessage(content=text, id=f"reply-{turns}")], "turns": turns}


echo_builder = StateGraph(Chat)
echo_builder.add_node("reply", reply)
echo_builder.add_edge(START, "reply")
echo_builder.add_edge("reply", END)
echo = echo_builder.compile()


def model_reply(state: Chat) -> dict:
    """A chat model that streams ``hello there friend`` token by token."""
    model = GenericFakeChatModel(messages=iter([AIMessage(content="hello there friend",
                                                          id="model-1")]))
    get_stream_writer()({"progress": "asking the model"})
    return {"messages": [model.invoke(state["messages"])]}


chat_builder = StateGraph(Chat)
chat_builder.add_node("model", model_reply)
chat_builder.add_edge(START, "model")
chat_builder.add_edge("model", END)
chat = chat_builder.compile()


class Payment(TypedDict):
    amount: int
    outcome: NotRequired[str]
    log: Annotated[list[str], operator.add]


def check(state: Payment) -> dict:
    return {"log": [f"checked {state['amount']}"]}


def pay(state: Payment) -> dict:
    answer = interrupt({"question": f"pay {state['amount']}?"})
    return {"outcome": "paid" if answer == "approve" else f"refused: {answer}",
            "log": ["paid" if answer == "approve" else "refused"]}


def notify(state: Payment) -> dict:
    return {"log": [f"notified {state.get('outcome')}"]}


approval_builder = StateGraph(Payment)
approval_builder.add_node("check", check)
approval_builder.add_node("pay", pay)
approval_builder.add_node("notify", notify)
approval_builder.add_edge(START, "check")
approval_builder.add_edge("check", "pay")
approval_builder.add_edge("pay", "notify")
approval_builder.add_edge("notify", END)
approval = approval_builder.compile()


class Review(TypedDict):
    topic: str
    answers: Annotated[list[str], operator.add]


def legal(state: Review) -> dict:
    return {"answers": [f"legal: {interrupt({'ask': 'legal', 'topic': state['topic']})}"]}


def finance(state: Review) -> dict:
    return {"answers": [f"finance: {interrupt({'ask': 'finance', 'topic': state['topic']})}"]}


def summary(state: Review) -> dict:
    return {"answers": [f"summary of {len(state['answers'])}"]}


parallel_builder = StateGraph(Review)
parallel_builder.add_node("legal", legal)
parallel_builder.add_node("finance", finance)
parallel_builder.add_node("summary", summary)
parallel_builder.add_edge(START, "legal")
parallel_builder.add_edge(START, "finance")
parallel_builder.add_edge(["legal", "finance"], "summary")
parallel_builder.add_edge("summary", END)
parallel = parallel_builder.compile()


class Steps(TypedDict):
    log: Annotated[list[str], operator.add]
    delay: NotRequired[float]


def first(state: Steps) -> dict:
    return {"log": ["first"]}


def second(state: Steps) -> dict:
    time.sleep(state.get("delay", 0.0))
    return {"log": ["second"]}


def third(state: Steps) -> dict:
    return {"log": ["third"]}


steps_builder = StateGraph(Steps)
steps_builder.add_node("first", first)
steps_builder.add_node("second", second)
steps_builder.add_node("third", third)
steps_builder.add_edge(START, "first")
steps_builder.add_edge("first", "second")
steps_builder.add_edge("second", "third")
steps_builder.add_edge("third", END)
steps = steps_builder.compile()


class Inner(TypedDict):
    log: Annotated[list[str], operator.add]


def inner_a(state: Inner) -> dict:
    return {"log": ["inner a"]}


def inner_b(state: Inner) -> dict:
    return {"log": ["inner b"]}


inner_builder = StateGraph(Inner)
inner_builder.add_node("inner_a", inner_a)
inner_builder.add_node("inner_b", inner_b)
inner_builder.add_edge(START, "inner_a")
inner_builder.add_edge("inner_a", "inner_b")
inner_builder.add_edge("inner_b", END)
inner = inner_builder.compile()


def outer_start(state: Inner) -> dict:
    return {"log": ["outer start"]}


nested_builder = StateGraph(Inner)
nested_builder.add_node("outer_start", outer_start)
nested_builder.add_node("inner", inner)
nested_builder.add_edge(START, "outer_start")
nested_builder.add_edge("outer_start", "inner")
nested_builder.add_edge("inner", END)
nested = nested_builder.compile()


def router(state: Steps) -> Command[Any]:
    return Command(update={"log": ["routed"]}, goto="third")


goto_builder = StateGraph(Steps)
goto_builder.add_node("router", router)
goto_builder.add_node("second", second)
goto_builder.add_node("third", third)
goto_builder.add_edge(START, "router")
goto_builder.add_edge("second", "third")
goto_builder.add_edge("third", END)
goto = goto_builder.compile()


def broken(state: Steps) -> dict:
    raise ValueError("the node failed on purpose")


failing_builder = StateGraph(Steps)
failing_builder.add_node("first", first)
failing_builder.add_node("broken", broken)
failing_builder.add_edge(START, "first")
failing_builder.add_edge("first", "broken")
failing_builder.add_edge("broken", END)
failing = failing_builder.compile()

GRAPHS = ("echo", "chat", "approval", "parallel", "steps", "nested", "goto", "failing")
