"""``ScriptedChatModel``: a deterministic chat model for tests, demos and offline use.

Agent graphs need a chat model, but a real one is slow, costs money, needs a network and
answers differently every time. This model plays back a script instead: a list of
responses returned one per call, or a function that answers from the messages it is
given. It behaves like a real langchain chat model in the ways a graph relies on: it
supports ``bind_tools`` (so ``create_react_agent`` and ``with_structured_output`` work),
it returns tool calls with ids, and it streams token by token (so
``stream_mode="messages"`` shows chunks).

Example::

    model = ScriptedChatModel([
        {"content": "", "tool_calls": [{"name": "search", "args": {"q": "weather"}}]},
        "It is sunny.",
    ])
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolCallChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

__all__ = ["ScriptExhaustedError", "ScriptedChatModel", "ScriptedResponse"]

ScriptedResponse = AIMessage | str | dict[str, Any]
"""One scripted answer: an ``AIMessage``, its text, or
``{"content": ..., "tool_calls": [{"name", "args"[, "id"]}], "id": ...}``."""

Responder = Callable[[list[BaseMessage]], ScriptedResponse]

_TOKEN = re.compile(r"\s*\S+|\s+")


class ScriptExhaustedError(RuntimeError):
    """The model was called more times than its script has responses."""


class ScriptedChatModel(BaseChatModel):
    """A chat model that answers from a script, for tests, demos and offline runs.

    ``ScriptedChatModel(responses)`` returns the responses in order, one per call. What
    happens after the last one is set by ``when_exhausted``: ``"error"`` (the default)
    raises :class:`ScriptExhaustedError`, so a test notices an unexpected extra model
    call; ``"cycle"`` starts over; ``"repeat_last"`` keeps returning the last response.

    ``ScriptedChatModel(fn)`` calls ``fn(messages)`` for every answer instead, for
    rule-based behaviour (``fn`` returns the same kinds of values as a script entry).

    Tool calls without an id get ``call_1``, ``call_2``, ... in the order the model
    produces them, so runs are reproducible. ``calls`` keeps the messages of every call
    and ``bound_tools`` the tools of the latest ``bind_tools``, for assertions.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    responses: list[Any] = Field(default_factory=list)
    """The script: ``AIMessage``, ``str`` or dict entries, returned in order."""
    respond: Callable[[list[BaseMessage]], Any] | None = None
    """Answer function used instead of ``responses`` when given."""
    when_exhausted: Literal["error", "cycle", "repeat_last"] = "error"
    """What a call past the end of ``responses`` does."""
    model_name: str = "scripted"
    streaming: bool = False
    """Produce ``invoke`` answers through the token stream too (like real providers'
    ``streaming=True``); graphs streaming ``"messages"`` turn streaming on anyway."""

    _position: int = PrivateAttr(default=0)
    _call_counter: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _bound_tools: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def __init__(
        self,
        script: Sequence[ScriptedResponse] | Responder | None = None,
        /,
        **kwargs: Any,
    ) -> None:
        # Accept the script positionally: it is the one thing every user passes.
        if callable(script):
            kwargs.setdefault("respond", script)
        elif script is not None:
            kwargs.setdefault("responses", list(script))
        super().__init__(**kwargs)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """The input messages of every call so far, oldest first."""
        return self._calls

    @property
    def bound_tools(self) -> list[dict[str, Any]]:
        """OpenAI-format schemas of the tools given to the latest ``bind_tools``."""
        return self._bound_tools

    def reset(self) -> None:
        """Rewind the script and forget recorded calls and tool-call ids."""
        with self._lock:
            self._position = 0
            self._call_counter = 0
            self._calls = []

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools like a real provider would: schemas travel as the ``tools`` kwarg.

        The model does not choose tools itself (the script does), but binding must work
        because agents and ``with_structured_output`` call it, and agent builders inspect
        the bound ``tools`` to see what the model knows.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        self._bound_tools = formatted
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # -- producing the next message ------------------------------------------------------

    def _next_message(self, messages: list[BaseMessage]) -> AIMessage:
        with self._lock:
            self._calls.append(list(messages))
            raw = self._take_scripted() if self.respond is None else None
        if self.respond is not None:  # outside the lock: it may be slow or re-entrant
            raw = self.respond(list(messages))
        message = _to_ai_message(raw)
        with self._lock:
            return self._with_call_ids(message)

    def _take_scripted(self) -> Any:
        count = len(self.responses)
        if self._position < count:
            raw = self.responses[self._position]
        elif count and self.when_exhausted == "cycle":
            raw = self.responses[self._position % count]
        elif count and self.when_exhausted == "repeat_last":
            raw = self.responses[-1]
        else:
            raise ScriptExhaustedError(
                f"ScriptedChatModel was called {self._position + 1} times but its script "
                f"has {count} responses. Add responses, or construct it with "
                "when_exhausted='cycle' or 'repeat_last'."
            )
        self._position += 1
        return raw

    def _with_call_ids(self, message: AIMessage) -> AIMessage:
        if not message.tool_calls:
            return message
        calls = []
        for call in message.tool_calls:
            if not call.get("id"):
                self._call_counter += 1
                call = {**call, "id": f"call_{self._call_counter}"}
            calls.append(call)
        return message.model_copy(update={"tool_calls": calls})

    # -- BaseChatModel hooks -------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._next_message(messages)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop=stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # langchain_core reports each chunk to the callbacks itself (on_llm_new_token).
        yield from _chunks_of(self._next_message(messages))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks_of(self._next_message(messages)):
            yield chunk


def _to_ai_message(raw: Any) -> AIMessage:
    """Normalise one script entry to a fresh ``AIMessage`` (never the script's object)."""
    if isinstance(raw, AIMessage):
        return raw.model_copy(deep=True)
    if isinstance(raw, str):
        return AIMessage(content=raw)
    if isinstance(raw, dict):
        unknown = set(raw) - {"content", "tool_calls", "id", "name"}
        if unknown:
            raise ValueError(
                f"Scripted response has unknown keys {sorted(unknown)}; allowed keys are "
                "'content', 'tool_calls', 'id' and 'name'."
            )
        tool_calls = [_tool_call(call) for call in raw.get("tool_calls") or []]
        return AIMessage(
            content=raw.get("content", ""),
            tool_calls=tool_calls,
            id=raw.get("id"),
            name=raw.get("name"),
        )
    raise TypeError(
        f"A scripted response must be an AIMessage, a str or a dict, got {type(raw).__name__}."
    )


def _tool_call(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or "name" not in call:
        raise ValueError(
            f"A scripted tool call must be a dict with 'name' and 'args', got {call!r}."
        )
    return {
        "name": call["name"],
        "args": dict(call.get("args") or {}),
        "id": call.get("id"),
        "type": "tool_call",
    }


def _chunks_of(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    """Split a message into the chunks a streaming provider would send.

    Text goes out word by word (leading whitespace kept, so joining the chunks restores
    it); each tool call goes out as a name/id chunk followed by its JSON arguments, the
    same shape providers stream, so consumers that merge chunks rebuild ``tool_calls``.
    """
    ident = message.id
    text = message.content if isinstance(message.content, str) else ""
    if not isinstance(message.content, str):
        yield ChatGenerationChunk(message=AIMessageChunk(content=message.content, id=ident))
    for token in _TOKEN.findall(text):
        yield ChatGenerationChunk(message=AIMessageChunk(content=token, id=ident))
    for index, call in enumerate(message.tool_calls):
        head: ToolCallChunk = {"name": call["name"], "args": "", "id": call["id"], "index": index}
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", id=ident, tool_call_chunks=[head])
        )
        body: ToolCallChunk = {
            "name": None, "args": json.dumps(call["args"]), "id": None, "index": index
        }
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", id=ident, tool_call_chunks=[body])
        )
    finish = "tool_calls" if message.tool_calls else "stop"
    yield ChatGenerationChunk(
        message=AIMessageChunk(
            content="",
            id=ident,
            chunk_position="last",
            response_metadata={"finish_reason": finish},
        )
    )
