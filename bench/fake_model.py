"""A deterministic chat model and a trivial tool, shared by both libraries' agent loops.

``TurnsChatModel(turns=N)`` asks for the ``lookup`` tool until the conversation holds N
tool results, then answers in plain text - so an agent graph runs exactly N tool turns.
It depends only on ``langchain_core``, never on either graph library.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool


@tool
def lookup(q: str) -> str:
    """Look up how many widgets of a kind are in stock."""
    return f"Result for {q}: 42 widgets in stock, reorder level 10."


class TurnsChatModel(BaseChatModel):
    """Calls ``lookup`` once per turn for ``turns`` turns, then gives a final answer."""

    turns: int = 10

    @property
    def _llm_type(self) -> str:
        return "bench-turns"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        done = sum(1 for m in messages if isinstance(m, ToolMessage))
        if done < self.turns:
            n = done + 1
            message = AIMessage(
                content=f"Let me look up item {n}.",
                tool_calls=[{"name": "lookup", "args": {"q": f"item {n}"}, "id": f"call_{n}"}],
            )
        else:
            message = AIMessage(content=f"Done: looked up {done} items.")
        return ChatResult(generations=[ChatGeneration(message=message)])
