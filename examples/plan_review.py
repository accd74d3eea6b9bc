"""The seed's inline ``interrupt()`` workflow: the review node asks a person for feedback.

Run: ``python examples/plan_review.py [feedback]`` (default feedback: "approve").
"""

import sys
from typing import Annotated, TypedDict

from threadloom.checkpoint.memory import MemorySaver
from threadloom.graph import END, START, StateGraph
from threadloom.graph.message import add_messages
from threadloom.types import Command, interrupt


class InteractiveState(TypedDict):
    messages: Annotated[list, add_messages]
    user_feedback: str


def generate_plan(state: InteractiveState) -> dict:
    return {"messages": [("assistant", "Plan: Step 1, Step 2, Step 3")]}


def review_plan(state: InteractiveState) -> dict:
    """Pause and ask the human for feedback on the plan."""
    feedback = interrupt(
        "Please review the plan above and provide feedback or type 'approve'."
    )
    return {"user_feedback": feedback}


def execute_plan(state: InteractiveState) -> dict:
    fb = state.get("user_feedback", "")
    if "approve" in fb.lower():
        return {"messages": [("assistant", "Executing the plan now.")]}
    return {"messages": [("assistant", f"Revising plan based on: {fb}")]}


builder = StateGraph(InteractiveState)
builder.add_node("generate", generate_plan)
builder.add_node("review", review_plan)
builder.add_node("execute", execute_plan)
builder.add_edge(START, "generate")
builder.add_edge("generate", "review")
builder.add_edge("review", "execute")
builder.add_edge("execute", END)
interactive_graph = builder.compile(checkpointer=MemorySaver())


def main(feedback: str = "approve") -> str:
    config = {"configurable": {"thread_id": "plan-review-1"}}
    result = interactive_graph.invoke({"messages": [("user", "Plan the migration.")]}, config)
    pause = result["__interrupt__"][0]
    print("Paused with:", pause.value)
    final = interactive_graph.invoke(Command(resume=feedback), config)
    print("Final:", final["messages"][-1].content)
    return final["messages"][-1].content


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "approve")
