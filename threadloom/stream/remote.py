"""Run streams of a graph deployed on an Agent Server: ``RemoteGraph.stream_events(version="v3")``.

The ``langgraph-sdk`` client opens the thread stream (``client.threads.stream(...)``)
and decodes the protocol events; these adapters give it the shape of a local run stream
(:class:`threadloom.stream.GraphRunStream`): a context manager that starts the run on
entry, iteration over the raw events, ``output``/``interrupted``/``interrupts``, the
typed projections (``values``, ``messages``, ``tool_calls``, ``subgraphs``) and
``extensions`` by channel name, and ``abort()`` to cancel the run.

The adapters never import the SDK: they are handed an SDK thread stream object.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from threadloom.types import Command

__all__ = [
    "AsyncRemoteRunStream",
    "ChannelProjection",
    "ProjectionRegistry",
    "RemoteRunStream",
    "translate_command_input",
]


def translate_command_input(input: Any) -> Any:
    """The wire ``input`` of a v3 ``run.start`` for ``input``.

    A resume ``Command`` becomes its raw resume value (the server wraps it as
    ``{"resume": value}`` when the thread is paused); ``goto`` and ``update`` cannot be
    expressed in a v3 run start and are refused.
    """
    if not isinstance(input, Command):
        return input
    unsupported = [name for name in ("goto", "update") if getattr(input, name)]
    if unsupported:
        raise NotImplementedError(
            f"Command({', '.join(f'{n}=...' for n in unsupported)}) is not supported by "
            "RemoteGraph streaming v3: only Command(resume=...) can start a run; use "
            "stream()/invoke() (which send the command as is) for goto/update"
        )
    return input.resume


def _decode(event: Any, channel: str) -> tuple[bool, Any]:
    if not isinstance(event, Mapping) or event.get("method") != channel:
        return False, None
    data = (event.get("params") or {}).get("data")
    return data is not None, data


class ChannelProjection:
    """The payloads (``params.data``) of one protocol channel of a remote thread stream."""

    def __init__(self, sdk_thread: Any, channel: str) -> None:
        self._sdk = sdk_thread
        self._channel = channel

    def __iter__(self) -> Iterator[Any]:
        for event in self._sdk.subscribe([self._channel]):
            ok, data = _decode(event, self._channel)
            if ok:
                yield data

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for event in self._sdk.subscribe([self._channel]):
            ok, data = _decode(event, self._channel)
            if ok:
                yield data

    def __repr__(self) -> str:
        return f"ChannelProjection({self._channel!r})"


class ProjectionRegistry(Mapping[str, Any]):
    """``run.extensions`` of a remote run: projections by channel name.

    The typed channels are the SDK's own decoded projections, the mode channels decode
    their events' ``params.data``; any other name is a custom extension of the server.
    """

    _TYPED = ("values", "messages", "tool_calls", "subgraphs")
    _DECODED = ("updates", "checkpoints", "tasks", "custom")
    _NATIVE = _TYPED + _DECODED

    def __init__(self, sdk_thread: Any) -> None:
        self._sdk = sdk_thread
        self._decoded: dict[str, ChannelProjection] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._TYPED:
            return getattr(self._sdk, name)
        if name in self._DECODED:
            if name not in self._decoded:
                self._decoded[name] = ChannelProjection(self._sdk, name)
            return self._decoded[name]
        try:
            return self._sdk.extensions[name]
        except (KeyError, TypeError):
            raise KeyError(
                f"No projection named {name!r} (projections: {list(self._NATIVE)} and the "
                "server's custom extensions)"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._NATIVE)

    def __len__(self) -> int:
        return len(self._NATIVE)


class _RemoteRunBase:
    def __init__(
        self, *, sdk_thread: Any, input: Any, config: Any, metadata: Any
    ) -> None:
        self._sdk = sdk_thread
        self._start_kwargs = {
            "input": translate_command_input(input),
            "config": config,
            "metadata": metadata,
        }
        self._run_id: str | None = None
        self._events: Any = None
        self._aborted = False
        self._extensions: ProjectionRegistry | None = None

    def _started(self, result: Any) -> None:
        run_id = result.get("run_id") if isinstance(result, Mapping) else None
        self._run_id = run_id

    @property
    def values(self) -> Any:
        return self._sdk.values

    @property
    def messages(self) -> Any:
        return self._sdk.messages

    @property
    def tool_calls(self) -> Any:
        return self._sdk.tool_calls

    @property
    def subgraphs(self) -> Any:
        return self._sdk.subgraphs

    @property
    def extensions(self) -> ProjectionRegistry:
        if self._extensions is None:
            self._extensions = ProjectionRegistry(self._sdk)
        return self._extensions

    @property
    def thread_id(self) -> Any:
        return getattr(self._sdk, "thread_id", None)

    @property
    def run_id(self) -> str | None:
        return self._run_id


class RemoteRunStream(_RemoteRunBase):
    """The sync run stream of a remote graph; use it as a context manager."""

    def __init__(
        self, *, sync_client: Any, sdk_thread: Any, input: Any, config: Any, metadata: Any
    ) -> None:
        super().__init__(sdk_thread=sdk_thread, input=input, config=config, metadata=metadata)
        self._client = sync_client

    def __enter__(self) -> RemoteRunStream:
        self._sdk.__enter__()
        try:
            result = self._sdk.run.start(**self._start_kwargs)
        except BaseException:
            self._sdk.__exit__(*sys.exc_info())
            raise
        self._started(result)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return self._sdk.__exit__(exc_type, exc, tb)

    def __iter__(self) -> Iterator[Any]:
        if self._events is None:
            self._events = iter(self._sdk.events)
        events: Iterator[Any] = self._events
        return events

    @property
    def output(self) -> Any:
        """The thread's final values (waits for the run to end)."""
        return self._sdk.output

    @property
    def interrupted(self) -> bool:
        return bool(self._sdk.interrupted)

    @property
    def interrupts(self) -> Any:
        return self._sdk.interrupts

    def interleave(self, *names: str) -> Iterator[tuple[str, Any]]:
        """``(projection name, item)`` pairs of several projections, in server order."""
        pairs: Iterator[tuple[str, Any]] = self._sdk.interleave_projections(list(names))
        return pairs

    def abort(self) -> None:
        """Cancel the run on the server (best effort) and close the stream. Idempotent."""
        if self._aborted:
            return
        self._aborted = True
        if self._run_id is not None:
            with contextlib.suppress(Exception):
                self._client.runs.cancel(self._sdk.thread_id, self._run_id, wait=False)
        self._sdk.close()


class AsyncRemoteRunStream(_RemoteRunBase):
    """The async run stream of a remote graph; use it as an async context manager."""

    def __init__(
        self, *, client: Any, sdk_thread: Any, input: Any, config: Any, metadata: Any
    ) -> None:
        super().__init__(sdk_thread=sdk_thread, input=input, config=config, metadata=metadata)
        self._client = client

    async def __aenter__(self) -> AsyncRemoteRunStream:
        await self._sdk.__aenter__()
        try:
            result = await self._sdk.run.start(**self._start_kwargs)
        except BaseException:
            await self._sdk.__aexit__(*sys.exc_info())
            raise
        self._started(result)
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        return await self._sdk.__aexit__(exc_type, exc, tb)

    def __aiter__(self) -> AsyncIterator[Any]:
        if self._events is None:
            self._events = aiter(self._sdk.events)
        events: AsyncIterator[Any] = self._events
        return events

    async def output(self) -> Any:
        """The thread's final values (waits for the run to end)."""
        return await self._sdk.output

    async def interrupted(self) -> bool:
        return bool(self._sdk.interrupted)

    async def interrupts(self) -> Any:
        return self._sdk.interrupts

    async def abort(self) -> None:
        """Cancel the run on the server (best effort) and close the stream. Idempotent."""
        if self._aborted:
            return
        self._aborted = True
        if self._run_id is not None:
            with contextlib.suppress(Exception):
                await self._client.runs.cancel(self._sdk.thread_id, self._run_id, wait=False)
        await self._sdk.close()
