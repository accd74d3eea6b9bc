"""A scripted OpenAI-compatible Chat Completions server, for tests that use a real client.

``ChatOpenAI`` (and any other OpenAI client) can be pointed at it with
``base_url=server.base_url``: it serves ``POST /v1/chat/completions`` in both modes
(a JSON body, or ``stream: true`` server-sent events ending in ``data: [DONE]``), with text
and tool calls, from a script the test writes. Every request body is kept in
``server.requests`` so tests can check what the client sent (messages, tools, ids).

It runs on 127.0.0.1 on a free port, in a daemon thread; use it as a context manager or
through the ``openai_server`` pytest fixture.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["OpenAIStub", "openai_server"]

Entry = str | dict[str, Any]
"""A scripted reply: its text, or ``{"content": ..., "tool_calls": [{"name", "args"[,
"id"]}]}``."""

_TOKEN = re.compile(r"\s*\S+|\s+")


class OpenAIStub:
    """The server: scripted replies in order, or computed by ``respond(request_body)``."""

    def __init__(
        self,
        responses: list[Entry] | None = None,
        respond: Callable[[dict[str, Any]], Entry] | None = None,
    ) -> None:
        self.responses: list[Entry] = list(responses or [])
        self.respond = respond
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The URL to give clients as ``base_url`` (it ends in ``/v1``)."""
        if self._server is None:
            raise RuntimeError("OpenAIStub is not running: call start() first.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStub:
        stub = self

        class Handler(_Handler):
            server_stub = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll
            name="openai-stub",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- replies -----------------------------------------------------------------------

    def add(self, *entries: Entry) -> None:
        """Append replies to the script."""
        with self._lock:
            self.responses.extend(entries)

    def next_reply(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record ``body`` and produce the reply for it as ``{"content", "tool_calls"}``."""
        with self._lock:
            self.requests.append(body)
            if self.respond is not None:
                entry = self.respond(body)
            elif self.responses:
                entry = self.responses.pop(0)
            else:
                raise LookupError(
                    f"OpenAIStub got request {len(self.requests)} but its script is empty."
                )
            return self._normalise(entry)

    def _normalise(self, entry: Entry) -> dict[str, Any]:
        if isinstance(entry, str):
            entry = {"content": entry}
        calls = [
            {
                "id": call.get("id") or f"call_{next(self._ids)}",
                "name": call["name"],
                "arguments": json.dumps(call.get("args") or {}),
            }
            for call in entry.get("tool_calls") or []
        ]
        return {"content": entry.get("content") or "", "tool_calls": calls}


class _Handler(BaseHTTPRequestHandler):
    server_stub: OpenAIStub

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def do_POST(self) -> None:
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._json(404, {"error": {"message": f"Unknown path {self.path}", "type": "404"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        try:
            reply = self.server_stub.next_reply(body)
        except LookupError as exc:  # 400, not 5xx: clients would retry a server error
            self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        model = body.get("model", "stub-model")
        if body.get("stream"):
            self._stream(reply, model, body)
        else:
            self._json(200, _completion(reply, model))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: dict[str, Any], model: str, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        for chunk in _chunks(reply, model, include_usage):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _usage(reply: dict[str, Any]) -> dict[str, int]:
    completion = len(_TOKEN.findall(reply["content"])) + len(reply["tool_calls"])
    return {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}


def _completion(reply: dict[str, Any], model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply["content"] or None}
    if reply["tool_calls"]:
        message["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in reply["tool_calls"]
        ]
    return {
        "id": f"chatcmpl-{time.time_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply["tool_calls"] else "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(reply),
    }


def _chunks(reply: dict[str, Any], model: str, include_usage: bool) -> Iterator[dict[str, Any]]:
    """The stream OpenAI sends: role, text tokens, tool-call pieces, finish, usage."""
    ident = f"chatcmpl-{time.time_ns()}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    yield chunk({"role": "assistant", "content": ""})
    for token in _TOKEN.findall(reply["content"]):
        yield chunk({"content": token})
    for index, call in enumerate(reply["tool_calls"]):
        head = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [head]})
        args = call["arguments"]
        middle = len(args) // 2
        for piece in (args[:middle], args[middle:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply["tool_calls"] else "stop")
    if include_usage:
        yield {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(reply),
        }


@pytest.fixture
def openai_server() -> Iterator[OpenAIStub]:
    """A running ``OpenAIStub`` with an empty script; add replies with ``.add(...)``."""
    with OpenAIStub() as server:
        yield server
