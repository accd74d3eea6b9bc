"""A deterministic chat model and a trivial tool, shared by both libraries' agent loops.

``TurnsChatModel(turns=N)`` asks for the ``lookup`` tool until the conversation holds N
tool results, then answers in plain text - so an agent graph runs exactly N tool turns.
It reads only the tail of the history (its own tool call ids number the calls), so what
it costs per call does not grow with the conversation. It depends only on
``langchain_core``, never on either graph library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool

_CALL = "call_"


@tool
def lookup(q: str) -> str:
    """Look up how many widgets of a kind are in stock."""
    return f"Result for {q}: 42 widgets in stock, reorder level 10."


def tool_results_so_far(messages: Sequence[BaseMessage]) -> int:
    """How many tool results the conversation holds, read from its newest one.

    The model numbers its calls ``call_1``, ``call_2``...; the newest tool result answers
    the newest call, so its id is the count. Walks back only to that result (the last
    message in an agent loop), never over the whole history.
    """
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, ToolMessage):
            number = message.tool_call_id.removeprefix(_CALL)
            if not number.isdigit():
                raise ValueError(
                    f"tool result {message.tool_call_id!r} does not answer a call of this "
                    f"model (ids {_CALL}1, {_CALL}2, ...)"
                )
            return int(number)
    return 0


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
        done = tool_results_so_far(messages)
        if done < self.turns:
            n = done + 1
            message = AIMessage(
                content=f"Let me look up item {n}.",
                tool_calls=[{"name": "lookup", "args": {"q": f"item {n}"}, "id": f"{_CALL}{n}"}],
            )
        else:
            message = AIMessage(content=f"Done: looked up {done} items.")
        return ChatResult(generations=[ChatGeneration(message=message)])
