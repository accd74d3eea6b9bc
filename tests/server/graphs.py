"""Graphs the server tests serve (named in the test config as ./graphs.py:NAME).

None is compiled with a checkpointer: the server gives each its own.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any, TypedDict

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool

from threadloom.config import get_store
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.hitl import ApprovalHooks, Reviewers, request_approval
from threadloom.prebuilt import ScriptedChatModel, ToolNode
from threadloom.types import interrupt

# -- the seed's three workflows ------------------------------------------------------------


class ApprovalState(TypedDict):
    messages: Annotated[list, add_messages]


def draft_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Draft: Dear client, here is the report...")]}


def send_email(state: ApprovalState) -> dict:
    return {"messages": [("assistant", "Email sent successfully.")]}


_email = StateGraph(ApprovalState)
_email.add_node("draft", draft_email)
_email.add_node("send", send_email)
_email.add_edge(START, "draft")
_email.add_edge("draft", "send")
_email.add_edge("send", END)
email = _email.compile(interrupt_before=["send"])


@tool
def delete_file(path: str) -> str:
    """Delete a file from the filesystem."""
    return f"Deleted {path}"


@tool
def read_file(path: str) -> str:
    """Read a file from the filesystem."""
    return f"Contents of {path}: ..."


def _answer(messages: list) -> Any:
    last = messages[-1]
    if isinstance(last, HumanMessage):
        return {"content": "", "tool_calls": [
            {"name": "delete_file", "args": {"path": "/tmp/old_data.csv"}, "id": "call_1"}
        ]}
    return f"Done: {last.content}"


llm = ScriptedChatModel(_answer).bind_tools([delete_file, read_file])


def agent(state: ApprovalState) -> dict:
    return {"messages": [llm.invoke(state["messages"])]}


def should_continue(state: ApprovalState) -> str:
    return "tools" if state["messages"][-1].tool_calls else END


_tools = StateGraph(ApprovalState)
_tools.add_node("agent", agent)
_tools.add_node("tools", ToolNode([delete_file, read_file]))
_tools.add_edge(START, "agent")
_tools.add_conditional_edges("agent", should_continue)
_tools.add_edge("tools", "agent")
tool_agent = _tools.compile(interrupt_before=["tools"])


class InteractiveState(TypedDict):
    messages: Annotated[list, add_messages]
    user_feedback: str


def generate_plan(state: InteractiveState) -> dict:
    return {"messages": [("assistant", "Plan: Step 1, Step 2, Step 3")]}


def review_plan(state: InteractiveState) -> dict:
    feedback = interrupt("Please review the plan above and provide feedback or type 'approve'.")
    return {"user_feedback": feedback}


def execute_plan(state: InteractiveState) -> dict:
    fb = state.get("user_feedback", "")
    if "approve" in fb.lower():
        return {"messages": [("assistant", "Executing the plan now.")]}
    return {"messages": [("assistant", f"Revising plan based on: {fb}")]}


_plan = StateGraph(InteractiveState)
_plan.add_node("generate", generate_plan)
_plan.add_node("review", review_plan)
_plan.add_node("execute", execute_plan)
_plan.add_edge(START, "generate")
_plan.add_edge("generate", "review")
_plan.add_edge("review", "execute")
_plan.add_edge("execute", END)
plan = _plan.compile()

# -- parallel interrupts -------------------------------------------------------------------


class ParallelState(TypedDict):
    answers: Annotated[list, operator.add]


def ask_legal(state: ParallelState) -> dict:
    return {"answers": ["legal:" + str(interrupt("legal ok?"))]}


def ask_finance(state: ParallelState) -> dict:
    return {"answers": ["finance:" + str(interrupt("finance ok?"))]}


_parallel = StateGraph(ParallelState)
_parallel.add_node("legal", ask_legal)
_parallel.add_node("finance", ask_finance)
_parallel.add_edge(START, "legal")
_parallel.add_edge(START, "finance")
_parallel.add_edge("legal", END)
_parallel.add_edge("finance", END)
parallel = _parallel.compile()

# -- a slow graph held at a gate (multitask strategies, cancel, join) ---------------------


class LogState(TypedDict):
    log: Annotated[list, operator.add]


async def first(state: LogState, config: dict) -> dict:
    return {"log": [f"first:{config['configurable'].get('tag', '?')}"]}


async def second(state: LogState, config: dict) -> dict:
    """Waits until the test opens the gate: a store item ("gates", <tag>)."""
    tag = config["configurable"].get("tag", "?")
    store = get_store()
    while await store.aget(("gates",), tag) is None:
        await asyncio.sleep(0.01)
    return {"log": [f"second:{tag}"]}


_slow = StateGraph(LogState)
_slow.add_node("first", first)
_slow.add_node("second", second)
_slow.add_edge(START, "first")
_slow.add_edge("first", "second")
_slow.add_edge("second", END)
slow = _slow.compile()

# -- an approval with reviewer roles (threadloom.hitl) --------------------------------------


class PaymentState(TypedDict):
    amount: int
    outcome: str


def pay(state: PaymentState) -> dict:
    decision = request_approval(
        "pay", {"amount": state["amount"]}, reviewers=Reviewers(roles=["finance"]),
        require_digest=False,
    )
    return {"outcome": "paid" if decision.approved else "refused"}


_payment = StateGraph(PaymentState)
_payment.add_node("pay", pay)
_payment.add_edge(START, "pay")
_payment.add_edge("pay", END)
payment = _payment.compile(hooks=[ApprovalHooks()])

# -- streaming: tokens, custom events, a subgraph ------------------------------------------

chat = ScriptedChatModel(["Hello there, reviewer"], when_exhausted="cycle")


class ChatState(TypedDict):
    messages: Annotated[list, add_messages]


async def talk(state: ChatState) -> dict:
    from threadloom.config import get_stream_writer

    get_stream_writer()({"progress": "thinking"})
    return {"messages": [await chat.ainvoke(state["messages"])]}


_inner = StateGraph(ChatState)
_inner.add_node("talk", talk)
_inner.add_edge(START, "talk")
_inner.add_edge("talk", END)

_outer = StateGraph(ChatState)
_outer.add_node("inner", _inner.compile())
_outer.add_edge(START, "inner")
_outer.add_edge("inner", END)
streaming = _outer.compile()

# -- a ledger: every node execution leaves a store record (workers that die mid-run) -------


class LedgerState(TypedDict):
    amount: int
    log: Annotated[list, operator.add]


async def _executed(node: str, config: dict) -> None:
    """Record one execution of ``node``: which process ran it, in which run attempt."""
    import os
    import uuid

    thread_id = config["configurable"]["thread_id"]
    await get_store().aput(("executions", thread_id), f"{node}-{uuid.uuid4().hex}", {
        "node": node, "pid": os.getpid(), "attempt": config["metadata"].get("run_attempt"),
    })


async def ledger_prepare(state: LedgerState, config: dict) -> dict:
    await _executed("prepare", config)
    return {"log": ["prepare"]}


def ledger_approve(state: LedgerState) -> dict:
    decision = request_approval(
        "transfer", {"amount": state["amount"]}, reviewers=Reviewers(roles=["finance"]),
        require_digest=False,
    )
    return {"log": ["approved" if decision.approved else "refused"]}


async def ledger_work(state: LedgerState, config: dict) -> dict:
    """The long step (where a worker gets killed)."""
    await asyncio.sleep(0.3)
    await _executed("work", config)
    return {"log": ["work"]}


async def ledger_finish(state: LedgerState, config: dict) -> dict:
    await _executed("finish", config)
    return {"log": ["finish"]}


_ledger = StateGraph(LedgerState)
_ledger.add_node("prepare", ledger_prepare)
_ledger.add_node("approve", ledger_approve)
_ledger.add_node("work", ledger_work)
_ledger.add_node("finish", ledger_finish)
_ledger.add_edge(START, "prepare")
_ledger.add_edge("prepare", "approve")
_ledger.add_edge("approve", "work")
_ledger.add_edge("work", "finish")
_ledger.add_edge("finish", END)
ledger = _ledger.compile(hooks=[ApprovalHooks()])

# -- an approval with a deadline (the workers apply it) ------------------------------------


def pay_by_deadline(state: PaymentState) -> dict:
    from datetime import timedelta

    from threadloom.hitl import Deadline

    decision = request_approval(
        "pay", {"amount": state["amount"]}, reviewers=Reviewers(roles=["finance"]),
        require_digest=False, deadline=Deadline(after=timedelta(hours=1), on_timeout="reject"),
    )
    return {"outcome": "paid" if decision.approved else "refused"}


_deadline_payment = StateGraph(PaymentState)
_deadline_payment.add_node("pay", pay_by_deadline)
_deadline_payment.add_edge(START, "pay")
_deadline_payment.add_edge("pay", END)
deadline_payment = _deadline_payment.compile(hooks=[ApprovalHooks()])

# -- slow_payment: slow work after the answer, before the step's checkpoint -----------------


class SlowPaymentState(TypedDict, total=False):
    amount: int
    work_seconds: float
    outcome: str


def pay_then_work(state: SlowPaymentState) -> dict:
    import time

    decision = request_approval(
        "pay", {"amount": state["amount"]}, reviewers=Reviewers(roles=["finance"]),
        require_digest=False,
    )
    time.sleep(float(state.get("work_seconds", 0)))  # the run's first checkpoint waits
    return {"outcome": "paid" if decision.approved else "refused"}


_slow_payment = StateGraph(SlowPaymentState)
_slow_payment.add_node("pay", pay_then_work)
_slow_payment.add_edge(START, "pay")
_slow_payment.add_edge("pay", END)
slow_payment = _slow_payment.compile(hooks=[ApprovalHooks()])

# -- stalling: a node that blocks its worker's event loop on the run's first attempt -------


class StallingState(TypedDict, total=False):
    stall_seconds: float
    steps: Annotated[list[str], operator.add]


async def stall_then_step(state: StallingState, config: RunnableConfig) -> dict:
    import time

    attempt = config["metadata"]["run_attempt"]
    if attempt == 1:  # the mistake the worker must survive: blocking the event loop
        time.sleep(float(state.get("stall_seconds", 0)))
    return {"steps": [f"stall (attempt {attempt})"]}


def step_after(state: StallingState) -> dict:
    return {"steps": ["after"]}


_stalling = StateGraph(StallingState)
_stalling.add_node("stall", stall_then_step)
_stalling.add_node("after", step_after)
_stalling.add_edge(START, "stall")
_stalling.add_edge("stall", "after")
_stalling.add_edge("after", END)
stalling = _stalling.compile()

# -- dropping: the server's database drops every connection mid-run (first attempt) ------


def terminate_other_backends(url: str) -> None:
    """Terminate every backend of the database at ``url`` but this call's own, as a
    restart does, and wait until they are gone - blocking, so that an event loop calling
    this notices nothing meanwhile."""
    import time

    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "datname = current_database() AND pid != pg_backend_pid()")
        while admin.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND pid != pg_backend_pid()"
                            ).fetchone() != (0,):
            time.sleep(0.01)


async def drop_connections(state: StallingState, config: RunnableConfig) -> dict:
    """On the run's first attempt, drop every connection to the database named in
    ``configurable.database`` (the server's pool, run lock, pipe and listener all go);
    the store read after it then goes out on a dropped connection."""
    attempt = config["metadata"]["run_attempt"]
    if attempt == 1:
        terminate_other_backends(config["configurable"]["database"])
    await get_store().aget(("gates",), "anything")
    return {"steps": [f"drop (attempt {attempt})"]}


_dropping = StateGraph(StallingState)
_dropping.add_node("before", lambda state: {"steps": ["before"]})
_dropping.add_node("drop", drop_connections)
_dropping.add_node("after", step_after)
_dropping.add_edge(START, "before")
_dropping.add_edge("before", "drop")
_dropping.add_edge("drop", "after")
_dropping.add_edge("after", END)
dropping = _dropping.compile()


# -- the collector's settings of the process running the graph ---------------------------


class HeapState(TypedDict, total=False):
    frozen: int
    young_threshold: int


def read_heap(state: HeapState) -> dict:
    import gc

    return {"frozen": gc.get_freeze_count(), "young_threshold": gc.get_threshold()[0]}


_heap = StateGraph(HeapState)
_heap.add_node("read", read_heap)
_heap.add_edge(START, "read")
_heap.add_edge("read", END)
heap = _heap.compile()
