"""``stream_mode="messages"``: chat-model tokens, as they are produced, with their node.

A langchain callback handler sees every chat model run inside a node. Subclassing
langchain_core's streaming-handler marker makes ``model.invoke()`` stream internally, so
tokens arrive one by one even from nodes that never call ``model.stream()``. The handler
is attached only when the caller asked for this mode: no callback work otherwise.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, LLMResult
from langchain_core.tracers._streaming import _StreamingCallbackHandler

from threadloom.constants import TAG_NOSTREAM

_META_KEYS = (
    "langgraph_step",
    "langgraph_node",
    "langgraph_triggers",
    "langgraph_path",
    "langgraph_checkpoint_ns",
    "checkpoint_ns",
    "thread_id",
)


class StreamMessagesHandler(BaseCallbackHandler, _StreamingCallbackHandler):
    """Forwards chat-model tokens (and whole messages of non-streaming runs) to a scope."""

    run_inline = True

    def __init__(self, emit: Any) -> None:
        self.emit = emit
        self.runs: dict[UUID, dict[str, Any]] = {}
        self.streamed: set[UUID] = set()

    def tap_output_aiter(self, run_id: UUID, output: Any) -> Any:
        return output

    def tap_output_iter(self, run_id: UUID, output: Any) -> Any:
        return output

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        metadata = metadata or {}
        if tags and TAG_NOSTREAM in tags:
            return
        if "langgraph_node" not in metadata:
            return
        meta = {k: metadata[k] for k in _META_KEYS if k in metadata}
        meta.update({k: v for k, v in metadata.items() if k.startswith("ls_")})
        if tags:
            meta["tags"] = list(tags)
        self.runs[run_id] = meta

    def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: ChatGenerationChunk | None = None,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        meta = self.runs.get(run_id)
        if meta is None or not isinstance(chunk, ChatGenerationChunk):
            return
        self.streamed.add(run_id)
        message = chunk.message
        if message.id is None:
            message.id = f"run-{run_id}"
        self.emit(message, meta)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        meta = self.runs.pop(run_id, None)
        if meta is None:
            return
        if run_id in self.streamed:
            self.streamed.discard(run_id)
            return
        for generations in response.generations:
            for gen in generations:
                message = getattr(gen, "message", None)
                if message is not None:
                    self.emit(message, meta)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.runs.pop(run_id, None)
        self.streamed.discard(run_id)
