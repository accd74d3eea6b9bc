"""Open a v3 run stream over a compiled graph.

``open_run_stream`` builds the run's ``StreamMux`` (the built-in transformers, then
the caller's), asks the graph for exactly the stream modes those transformers need
(always ``values``, for ``run.output``), with subgraph namespaces, and wraps the
graph's ``(namespace, mode, payload)`` events as stream parts for the run stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from threadloom.constants import INTERRUPT
from threadloom.engine.message_stream import CONFIG_KEY_STREAM_MESSAGES_V2
from threadloom.stream.mux import StreamMux, normalize_factories
from threadloom.stream.run_stream import AsyncGraphRunStream, GraphRunStream
from threadloom.stream.transformers import (
    LifecycleTransformer,
    MessagesTransformer,
    SubgraphTransformer,
    ValuesTransformer,
)

__all__ = ["BUILTIN_TRANSFORMERS", "open_run_stream"]

BUILTIN_TRANSFORMERS = (
    ValuesTransformer,
    MessagesTransformer,
    LifecycleTransformer,
    SubgraphTransformer,
)


def _parent_ns(config: dict[str, Any] | None) -> tuple[str, ...]:
    ns = ((config or {}).get("configurable") or {}).get("checkpoint_ns") or ""
    return tuple(ns.split("|")) if ns else ()


def _part(parent: tuple[str, ...], event: tuple[tuple[str, ...], str, Any]) -> dict[str, Any]:
    ns, mode, payload = event
    ns = tuple(ns)
    if parent and ns[: len(parent)] != parent:
        ns = parent + ns
    part: dict[str, Any] = {"type": mode, "ns": ns, "data": payload}
    if mode == "values" and isinstance(payload, dict) and INTERRUPT in payload:
        part["data"] = {k: v for k, v in payload.items() if k != INTERRUPT}
        part["interrupts"] = tuple(payload[INTERRUPT])
    return part


def _sync_parts(events: Iterator[Any], parent: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    try:
        for event in events:
            yield _part(parent, event)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


async def _async_parts(
    events: AsyncIterator[Any], parent: tuple[str, ...]
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for event in events:
            yield _part(parent, event)
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def build_mux(
    transformers: Sequence[Any] | None, scope: tuple[str, ...], *, is_async: bool
) -> StreamMux:
    factories = normalize_factories([*BUILTIN_TRANSFORMERS, *(transformers or ())])
    return StreamMux(factories=factories, scope=scope, is_async=is_async)


def _modes(mux: StreamMux) -> list[str]:
    modes = ["values"]
    for transformer in mux._transformers:
        for mode in transformer.required_stream_modes:
            if mode not in modes:
                modes.append(mode)
    return modes


def open_run_stream(
    graph: Any,
    input: Any,
    config: dict[str, Any] | None,
    *,
    transformers: Sequence[Any] | None,
    is_async: bool,
    **kwargs: Any,
) -> GraphRunStream | AsyncGraphRunStream:
    """The run stream of ``graph`` on ``input``; nothing runs until it is read.

    ``kwargs`` go on to the graph's ``stream``/``astream`` (``context=``, ...), with
    ``interrupt_before``, ``interrupt_after`` and ``control`` always passed (None when
    not given). ``stream_mode`` and ``subgraphs`` are the run stream's own: refused."""
    owned = [name for name in ("stream_mode", "subgraphs") if name in kwargs]
    if owned:
        raise TypeError(
            f"stream_events(version='v3') sets {' and '.join(owned)} itself (every mode its "
            "transformers need, subgraphs included): leave them out and read the "
            "projections (run.values, run.messages, ...) instead"
        )
    for name in ("interrupt_before", "interrupt_after", "control"):
        kwargs.setdefault(name, None)
    parent = _parent_ns(config)
    conf = (config or {}).get("configurable") or {}
    config = {**(config or {}), "configurable": {**conf, CONFIG_KEY_STREAM_MESSAGES_V2: True}}
    own = getattr(graph, "stream_transformers", ())  # compile(transformers=...)
    mux = build_mux([*own, *(transformers or ())], parent, is_async=is_async)
    modes = _modes(mux)
    if is_async:
        events = graph.astream(input, config, stream_mode=modes, subgraphs=True, **kwargs)
        return AsyncGraphRunStream(_async_parts(events, parent), mux)
    events = graph.stream(input, config, stream_mode=modes, subgraphs=True, **kwargs)
    return GraphRunStream(_sync_parts(events, parent), mux)
