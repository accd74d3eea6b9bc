"""``StreamMux``: passes each protocol event through a run's transformers.

The mux owns the run's main event log (``_events``, a ``StreamChannel``) and the
transformers' projections (``extensions``). For every event it calls each transformer
in order (``before_builtins`` transformers first); the event reaches the main log, with
a ``seq`` number, unless a transformer returned False. Named channels of the
transformers are wired into the main log: each push there becomes a protocol event of
method ``custom:<name>`` (``<name>`` for the built-in transformers).

A mux built from *factories* (callables ``scope -> transformer``) can make child muxes
for subgraphs (``_make_child``): the same transformers, scoped to the subgraph's
namespace. Child muxes see the parent's event objects unchanged and number nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from threadloom.stream.base import ProtocolEvent, StreamTransformer, logger
from threadloom.stream.stream_channel import StreamChannel

__all__ = ["StreamMux", "normalize_factories"]

Factory = Callable[[tuple[str, ...]], StreamTransformer]


def normalize_factories(items: Iterable[Any]) -> list[Factory]:
    """Turn transformer classes and ``scope -> transformer`` callables into factories.

    A class whose constructor takes no scope is built without arguments and given its
    scope afterwards. Pre-built instances are refused: every (sub)run needs its own.
    """
    factories: list[Factory] = []
    for item in items:
        if isinstance(item, StreamTransformer):
            raise TypeError(
                f"transformers= got a pre-built instance of {type(item).__name__}: pass the "
                "class (or a callable taking the scope), so each run and subgraph gets its own"
            )
        if isinstance(item, type):
            if not issubclass(item, StreamTransformer):
                raise TypeError(f"{item.__name__} is not a StreamTransformer subclass")
            factories.append(_class_factory(item))
        elif callable(item):
            factories.append(item)
        else:
            raise TypeError(
                f"transformers= items must be StreamTransformer classes or factories, "
                f"got {item!r}"
            )
    return factories


def _class_factory(cls: type[StreamTransformer]) -> Factory:
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        params = []
    takes_scope = any(
        p.name == "scope"
        or p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        for p in params
    )

    def build(scope: tuple[str, ...]) -> StreamTransformer:
        if takes_scope:
            return cls(scope)
        transformer = cls()
        transformer.scope = tuple(scope)
        return transformer

    build.__name__ = f"build_{cls.__name__}"
    build.__qualname__ = build.__name__
    build._transformer_class = cls  # type: ignore[attr-defined]
    return build


def _lane(transformer: StreamTransformer) -> int:
    return 0 if getattr(transformer, "before_builtins", False) else 1


class StreamMux:
    """Dispatches protocol events to transformers and keeps the main event log."""

    def __init__(
        self,
        transformers: Iterable[StreamTransformer] | None = None,
        *,
        factories: Iterable[Any] | None = None,
        scope: tuple[str, ...] = (),
        is_async: bool = False,
        _child: bool = False,
    ) -> None:
        self.scope = tuple(scope)
        self._is_async = is_async
        self._child = _child
        self._factories = normalize_factories(factories) if factories is not None else None
        built: list[StreamTransformer] = list(transformers or ())
        if self._factories is not None:
            built.extend(factory(self.scope) for factory in self._factories)
        # stable: the before_builtins lane first, each lane in the order given
        self._transformers: list[StreamTransformer] = sorted(built, key=_lane)
        # stamps from 1 up: the order of pushes across this run's channels (a subgraph's
        # mux takes its parent's counter, _make_child)
        self._stamp: Callable[[], int] = itertools.count(1).__next__
        self._events: StreamChannel[ProtocolEvent] = StreamChannel()
        self._events._bind(is_async=is_async)
        self._events._set_stamper(self._stamp)
        self.extensions: dict[str, Any] = {}
        self._owners: dict[str, StreamTransformer] = {}
        self._channels: list[StreamChannel[Any]] = []
        self._seq = 0
        self._done = False
        self._pump: Callable[[], bool] | None = None
        self._apump: Callable[[], Any] | None = None
        for transformer in self._transformers:
            self._register(transformer)

    # -- registration ---------------------------------------------------------------

    def _register(self, transformer: StreamTransformer) -> None:
        kind = type(transformer)
        if not self._is_async and kind._is_async_only():
            raise RuntimeError(
                f"{kind.__name__} requires an async run: use astream_events(version='v3') "
                "(it sets requires_async or implements only aprocess)"
            )
        projections = transformer.init()
        if not isinstance(projections, dict):
            raise TypeError(
                f"{kind.__name__}.init() must return a dict of projections, "
                f"got {type(projections).__name__}"
            )
        on_register = getattr(transformer, "_on_register", None)
        if on_register is not None:
            on_register(self)
        for key, projection in projections.items():
            if key in self.extensions:
                other = type(self._owners[key]).__name__
                raise ValueError(
                    f"Projection key conflict: {kind.__name__} and {other} both register "
                    f"'{key}' (already registered by {other})"
                )
            self.extensions[key] = projection
            self._owners[key] = transformer
            if isinstance(projection, StreamChannel):
                if projection._is_async is None:
                    projection._bind(is_async=self._is_async)
                projection._set_pump(self._pump, self._apump)
                projection._set_stamper(self._stamp)
                self._channels.append(projection)
                if projection.name is not None:
                    method = projection.name if kind._native else f"custom:{projection.name}"
                    projection._wire(self._forwarder(method, transformer.scope))

    def _forwarder(self, method: str, scope: tuple[str, ...]) -> Callable[[Any], None]:
        def forward(item: Any) -> None:
            if self._done and self._events._closed:
                return
            self._append(
                {
                    "type": "event",
                    "method": method,
                    "params": {
                        "namespace": list(scope),
                        "timestamp": int(time.time() * 1000),
                        "data": item,
                    },
                }
            )

        return forward

    @property
    def is_async(self) -> bool:
        """True when this mux serves an async run (``astream_events``)."""
        return self._is_async

    def transformer_by_key(self, key: str) -> StreamTransformer | None:
        """The transformer that registered projection ``key`` (None if none did)."""
        return self._owners.get(key)

    @property
    def extensions_view(self) -> Mapping[str, Any]:
        return MappingProxyType(self.extensions)

    def _bind_pump(self, pump: Callable[[], bool] | None, apump: Callable[[], Any] | None) -> None:
        """Let readers of this mux's channels drive the run when they run dry."""
        self._pump = pump
        self._apump = apump
        self._events._set_pump(pump, apump)
        for channel in self._channels:
            channel._set_pump(pump, apump)
        for transformer in self._transformers:
            bind = getattr(transformer, "_bind_pump", None)
            if bind is not None:
                bind(pump if not self._is_async else apump)

    def bind_pump(self, pump: Callable[[], Any]) -> None:
        """Install ``pump``, which readers of this mux's channels call when they run dry
        (sync mux: returns False once no more events will come; async mux: awaitable)."""
        if self._is_async:
            self._bind_pump(None, pump)
        else:
            self._bind_pump(pump, None)

    def _make_child(self, scope: tuple[str, ...]) -> StreamMux:
        """A mux for the subgraph at ``scope``, with fresh transformers from the factories."""
        if self._factories is None:
            raise RuntimeError(
                "This StreamMux was built from transformer instances, not factories, so it "
                "cannot build transformers for a subgraph: pass factories="
            )
        child = StreamMux(factories=self._factories, scope=scope, is_async=self._is_async,
                          _child=True)
        child._bind_pump(self._pump, self._apump)
        child._stamp = self._stamp
        child._events._set_stamper(self._stamp)
        for channel in child._channels:
            channel._set_stamper(self._stamp)
        return child

    # -- events -----------------------------------------------------------------------

    def _append(self, event: ProtocolEvent) -> None:
        if not self._child:
            self._seq += 1
            event["seq"] = self._seq
        if not self._events._closed:
            self._events.push(event)

    def push(self, event: ProtocolEvent) -> None:
        if self._done:
            return
        keep = True
        for transformer in self._transformers:
            if transformer.process(event) is False:
                keep = False
        if keep:
            self._append(event)

    async def apush(self, event: ProtocolEvent) -> None:
        if self._done:
            return
        keep = True
        for transformer in self._transformers:
            if type(transformer).aprocess is not StreamTransformer.aprocess:
                result = await transformer.aprocess(event)
            else:
                result = transformer.process(event)
            if result is False:
                keep = False
        if keep:
            self._append(event)

    # -- the end ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._done

    def _close_channels(self) -> None:
        for channel in self._channels:
            channel.close()
        self._events.close()

    def close(self) -> None:
        """The run ended: finalize every transformer, close every channel."""
        if self._done:
            return
        self._done = True
        first: BaseException | None = None
        for transformer in self._transformers:
            try:
                transformer.finalize()
            except Exception as exc:  # noqa: BLE001 - the rest still finalize
                first = first or exc
        self._close_channels()
        if first is not None:
            raise first

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        first: BaseException | None = None
        for transformer in self._transformers:
            for task, on_error in transformer._take_scheduled():
                try:
                    await task
                except asyncio.CancelledError:
                    pass
                except Exception as exc:  # noqa: BLE001
                    if on_error == "raise":
                        first = first or exc
                    else:
                        logger.exception("Scheduled work of %s failed", type(transformer).__name__)
        for transformer in self._transformers:
            try:
                await transformer.afinalize()
            except Exception as exc:  # noqa: BLE001 - the rest still finalize
                first = first or exc
        self._close_channels()
        if first is not None:
            raise first

    def fail(self, err: BaseException) -> None:
        """The run ended with ``err``: tell every transformer, fail every channel."""
        if self._done:
            return
        self._done = True
        for transformer in self._transformers:
            try:
                transformer.fail(err)
            except Exception:  # noqa: BLE001 - the run's own error wins
                logger.exception("%s.fail() raised", type(transformer).__name__)
        self._fail_channels(err)

    async def afail(self, err: BaseException) -> None:
        if self._done:
            return
        self._done = True
        for transformer in self._transformers:
            pending = [task for task, _ in transformer._take_scheduled() if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        for transformer in self._transformers:
            try:
                await transformer.afail(err)
            except Exception:  # noqa: BLE001 - the run's own error wins
                logger.exception("%s.afail() raised", type(transformer).__name__)
        self._fail_channels(err)

    def _fail_channels(self, err: BaseException) -> None:
        for channel in self._channels:
            channel.fail(err)
        self._events.fail(err)
