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
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk, LLMResult
from langchain_core.tracers._streaming import (
    _StreamingCallbackHandler,
    _V2StreamingCallbackHandler,
)

from threadloom.constants import TAG_NOSTREAM

# set in a run's configurable by stream_events(version="v3"): stream content-block
# protocol events in "messages" mode instead of message chunks
CONFIG_KEY_STREAM_MESSAGES_V2 = "__threadloom_stream_messages_v2"



def _model_run_metadata(metadata: dict[str, Any], tags: list[str] | None,
                        *, drop_step_tags: bool = False) -> dict[str, Any]:
    """What a streamed message carries: the model run's whole callback metadata (the
    node's ``langgraph_*`` keys, the caller's own keys such as ``lc_agent_name``, the
    model's ``ls_*`` keys), and its tags."""
    meta = dict(metadata)
    if tags:
        meta["tags"] = [t for t in tags if not (drop_step_tags and t.startswith("seq:step:"))]
    return meta


class StreamMessagesHandler(BaseCallbackHandler, _StreamingCallbackHandler[Any]):
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
        # the caller's tags, not the step tags langchain adds inside a sequence
        tags = [t for t in tags or () if not t.startswith("seq:step:")]
        self.runs[run_id] = _model_run_metadata(metadata, tags)

    def on_llm_new_token(
        self,
        token: str | list[str | dict[str, Any]],
        *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
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


class StreamMessagesHandlerV2(BaseCallbackHandler, _V2StreamingCallbackHandler):
    """``messages`` for ``stream_events(version="v3")``: content-block protocol events.

    Declaring itself a v2 streaming handler makes chat models (even on ``invoke()``)
    drive langchain_core's protocol event generator and call ``on_stream_event`` per
    event; each is emitted as ``(namespace, "messages", (event, metadata))`` with the
    model call's ``run_id`` in the metadata. A model run that streamed nothing (a model
    without ``_stream``) is emitted as its whole final message, ``(message, metadata)``,
    as LangGraph does; ``MessagesTransformer`` turns that into a complete stream.
    ``emit`` takes that one tuple.
    """

    run_inline = True

    def __init__(self, emit: Any, *, subgraphs: bool = False,
                 seen: set[str] | None = None) -> None:
        self.emit = emit
        self.subgraphs = subgraphs
        self.metadata: dict[UUID, tuple[tuple[str, ...], dict[str, Any]]] = {}
        self.streamed: set[UUID] = set()
        self.seen: set[str] = seen if seen is not None else set()

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
        if (tags and TAG_NOSTREAM in tags) or "langgraph_node" not in metadata:
            return
        meta = _model_run_metadata(metadata, tags, drop_step_tags=True)
        ns = metadata.get("langgraph_checkpoint_ns") or ""
        parts = tuple(ns.split("|")[:-1]) if ns else ()
        self.metadata[run_id] = (parts, meta)

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], **kwargs: Any) -> None:
        return None  # v1 tokens: this handler streams protocol events instead

    def _send(self, run_id: UUID, event: dict[str, Any] | BaseMessage) -> None:
        ns, meta = self.metadata[run_id]
        self.emit((ns, "messages", (event, {**meta, "run_id": str(run_id)})))

    def on_stream_event(self, event: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id not in self.metadata:
            return
        self.streamed.add(run_id)
        if event.get("event") == "message-start":
            message_id = event.get("message_id") or event.get("id")
            if message_id:
                self.seen.add(message_id)
        self._send(run_id, dict(event))

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id not in self.metadata:
            return
        try:
            streamed = run_id in self.streamed
            for generations in response.generations:
                for gen in generations:
                    message = getattr(gen, "message", None)
                    if message is None:
                        continue
                    if streamed:
                        if message.id:
                            self.seen.add(message.id)
                        continue
                    if message.id and message.id in self.seen:
                        continue
                    if message.id:
                        self.seen.add(message.id)
                    self._send(run_id, message)
        finally:
            self.metadata.pop(run_id, None)
            self.streamed.discard(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.metadata.pop(run_id, None)
        self.streamed.discard(run_id)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        return None  # node outputs reach the messages stream from the engine
