"""What every route module shares: the caller, the services, JSON and SSE responses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Path, Request
from starlette.responses import Response, StreamingResponse

from threadloom.server import serde
from threadloom.server.auth import AuthUser
from threadloom.server.executor import RESULT_EVENT
from threadloom.server.storage.base import StreamEvent

if TYPE_CHECKING:
    from threadloom.server.app import Server

__all__ = [
    "HEARTBEAT_SECONDS",
    "AssistantId",
    "CronId",
    "RunId",
    "ThreadId",
    "caller",
    "json_response",
    "long_poll_response",
    "server_of",
    "sse_response",
]

HEARTBEAT_SECONDS = 5.0


def _uuid_path(what: str) -> Any:
    # /openapi.json says ``format: uuid``; the services check it (422 naming ``what``)
    return Path(description=f"The {what}'s id (a UUID).", json_schema_extra={"format": "uuid"})


ThreadId = Annotated[str, _uuid_path("thread")]
RunId = Annotated[str, _uuid_path("run")]
AssistantId = Annotated[str, _uuid_path("assistant")]
CronId = Annotated[str, _uuid_path("cron")]


def server_of(request: Request) -> Server:
    """The ``Server`` serving this request."""
    server: Server = request.app.state.server
    return server


async def caller(request: Request) -> AuthUser:
    """The authenticated caller (a FastAPI dependency): 401 when not recognized."""
    return await server_of(request).ctx.authorizer.authenticate(request)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    """``data`` as JSON (messages and other objects in their wire form)."""
    return Response(serde.dumps(data), status_code=status, media_type="application/json",
                    headers=headers)


def long_poll_response(result: Awaitable[Any], headers: dict[str, str] | None = None
                       ) -> Response:
    """A 200 JSON answer that is ready later: a newline every few seconds meanwhile
    (leading whitespace is valid JSON), so proxies and clients do not time out."""
    return _LongPoll(result, headers)


class _LongPoll(Response):
    """``long_poll_response``: an answer ready before the first newline is due goes out
    whole (with its ``content-length``, one body write); a later one is streamed
    (chunked: the newlines, then the answer). The wait ends when the client leaves."""

    media_type = "application/json"

    def __init__(self, result: Awaitable[Any], headers: dict[str, str] | None) -> None:
        self.status_code = 200
        self.background = None
        self.result = result
        self.init_headers(headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        task = asyncio.ensure_future(self.result)
        left = asyncio.ensure_future(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({task, left}, timeout=HEARTBEAT_SECONDS,
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                self.body = serde.dumps(task.result())
                self.raw_headers.append((b"content-length", str(len(self.body)).encode()))
                await send({"type": "http.response.start", "status": 200,
                            "headers": self.raw_headers})
                await send({"type": "http.response.body", "body": self.body})
                return
            if left in done:
                return
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            while True:
                await send({"type": "http.response.body", "body": b"\n", "more_body": True})
                done, _ = await asyncio.wait({task, left}, timeout=HEARTBEAT_SECONDS,
                                             return_when=asyncio.FIRST_COMPLETED)
                if task in done:
                    break
                if left in done:
                    return
            await send({"type": "http.response.body", "body": serde.dumps(task.result())})
        finally:
            for waiting in (task, left):
                if not waiting.done():
                    waiting.cancel()


async def _disconnected(receive: Any) -> None:
    """Returns when the client has left (the request's body was read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _frame(event: StreamEvent, with_id: bool) -> bytes:
    head = f"event: {event.event}\r\n".encode()
    tail = f"id: {event.id}\r\n\r\n".encode() if with_id else b"\r\n"
    return head + b"data: " + event.data + b"\r\n" + tail


async def _with_heartbeats(
    events: AsyncIterator[StreamEvent], interval: float
) -> AsyncIterator[StreamEvent | None]:
    """The events, with None whenever ``interval`` seconds pass without one."""
    queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()  # None: the events ended

    async def pump() -> None:
        try:
            async for item in events:
                await queue.put(item)
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), interval)
            except TimeoutError:
                yield None
                continue
            if item is None:
                break
            yield item
        await task  # re-raise what the pump raised
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def sse_response(
    events: AsyncIterator[StreamEvent],
    *,
    with_ids: bool,
    modes: list[str] | None = None,
    headers: dict[str, str] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
) -> StreamingResponse:
    """A run's events as server-sent events (``: heartbeat`` lines while idle).

    ``modes`` keeps only events of those stream modes (plus ``metadata``/``error``);
    ``on_disconnect`` is called when the client leaves before the stream ends.
    """
    wanted = None if not modes else {("messages" if m == "messages-tuple" else m)
                                      for m in modes}

    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for event in _with_heartbeats(events, HEARTBEAT_SECONDS):
                if event is None:
                    yield b": heartbeat\r\n\r\n"
                    continue
                if event.event == RESULT_EVENT:
                    continue
                base = event.event.split("|", 1)[0].split("/", 1)[0]
                if wanted is not None and base not in wanted and base not in (
                    "metadata", "error"
                ):
                    continue
                yield _frame(event, with_ids)
            finished = True
        finally:
            if not finished and on_disconnect is not None:
                await asyncio.shield(on_disconnect())

    return StreamingResponse(
        body(),
        media_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **(headers or {})},
    )
