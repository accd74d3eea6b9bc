"""``ToolCallTransformer``: ``run.tool_calls`` for ``stream_events(version="v3")``.

Tools report their progress as ``tools`` protocol events (``tool-started``,
``tool-output-delta``, ``tool-finished``, ``tool-error``, keyed by ``tool_call_id``).
The transformer turns the events at its own scope into one ``ToolCallStream`` per call:
its name and input, the output deltas as they come (``output_deltas``), and at the end
the output or the error.
"""

from __future__ import annotations

from typing import Any, ClassVar

from threadloom.stream.base import ProtocolEvent, StreamTransformer
from threadloom.stream.stream_channel import StreamChannel

__all__ = ["ToolCallStream", "ToolCallTransformer"]


class ToolCallStream:
    """One tool call seen through the event stream."""

    def __init__(self, tool_call_id: str, tool_name: str, input: Any) -> None:
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.input = input
        self.output: Any = None
        self.error: str | None = None
        self.completed = False
        self._output_deltas: StreamChannel[Any] = StreamChannel()

    @property
    def output_deltas(self) -> StreamChannel[Any]:
        """The partial outputs the tool emitted, in order (iterate once)."""
        return self._output_deltas

    def _finish(self, output: Any = None, error: str | None = None) -> None:
        self.output = output
        self.error = error
        self.completed = True
        self._output_deltas.close()

    def __repr__(self) -> str:
        state = "completed" if self.completed else "running"
        return f"ToolCallStream({self.tool_call_id!r}, {self.tool_name!r}, {state})"


class ToolCallTransformer(StreamTransformer):
    """Projects ``tools`` events at this scope into ``run.tool_calls``."""

    required_stream_modes: ClassVar[tuple[str, ...]] = ("tools",)
    # a projection of the library's own, so the run exposes it as ``run.tool_calls``
    _native: ClassVar[bool] = True

    def __init__(self, scope: tuple[str, ...] = ()) -> None:
        super().__init__(scope)
        self._log: StreamChannel[ToolCallStream] = StreamChannel()
        self._active: dict[str, ToolCallStream] = {}

    def init(self) -> dict[str, Any]:
        return {"tool_calls": self._log}

    def process(self, event: ProtocolEvent) -> bool:
        if event["method"] != "tools" or tuple(event["params"]["namespace"]) != self.scope:
            return True
        data = event["params"]["data"]
        if not isinstance(data, dict):
            return True
        kind = data.get("event")
        call_id = data.get("tool_call_id")
        if not isinstance(call_id, str):  # (the engine names the call in every tool event)
            return True
        if kind == "tool-started":
            stream = ToolCallStream(call_id, data.get("tool_name", ""), data.get("input"))
            self._wire(stream._output_deltas)
            self._active[call_id] = stream
            if not self._log._closed:
                self._log.push(stream)
            return True
        active = self._active.get(call_id)
        if active is None:
            return True
        if kind == "tool-output-delta":
            active._output_deltas.push(data.get("delta"))
        elif kind == "tool-finished":
            self._active.pop(call_id, None)
            active._finish(output=_output_value(data.get("output")))
        elif kind == "tool-error":
            self._active.pop(call_id, None)
            active._finish(error=data.get("message"))
        return True

    def _wire(self, channel: StreamChannel[Any]) -> None:
        """Bind a call's delta channel like the run's own log, so reading it drives the run."""
        if self._log._is_async is not None:
            channel._bind(is_async=self._log._is_async)
            channel._set_pump(self._log._pump, self._log._apump)

    def finalize(self) -> None:
        for stream in self._active.values():
            stream._finish()
        self._active.clear()

    def fail(self, err: BaseException) -> None:
        for stream in self._active.values():
            stream._finish(error=str(err))
        self._active.clear()


def _output_value(output: Any) -> Any:
    """The tool's output: a ToolMessage's content (also in its serialized form)."""
    from langchain_core.messages import ToolMessage

    if isinstance(output, ToolMessage):
        return output.content
    if (
        isinstance(output, dict)
        and output.get("type") == "constructor"
        and list(output.get("id") or [])[-1:] == ["ToolMessage"]
    ):
        return (output.get("kwargs") or {}).get("content")
    return output
