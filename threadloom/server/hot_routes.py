"""``HotRoutes``: the requests of a run's round trip served without FastAPI's
per-request machinery, by the same route functions.

FastAPI spends about 0.3 ms of CPU on a request before and after the route function
runs (its exception, telemetry and exit-stack middleware, matching the path against the
routes, solving the ``Depends``, parsing and validating the body) - a third of what the
API process does in an approval round trip (``threads.create``, ``runs.wait``,
``runs.wait`` the resume). ``HotRoutes`` is a middleware placed inside CORS (so a
browser's requests get its headers alike): a request to a route marked ``@hot``
(``hot``) is matched with that route's own path pattern, its JSON body
validated by the route's own pydantic model, its caller found by the same ``caller``,
and the route's own function called; an error it raises is rendered by the app's own
exception handlers, an unexpected one goes on to the server-error middleware (a 500).

Whatever it would not serve exactly as FastAPI does goes to FastAPI unchanged, its body
replayed: a body that is not a JSON object the model accepts (FastAPI answers the 422),
one sent as anything but ``application/json``, an app served under a root path or with
dependencies overridden (``app.dependency_overrides``), and every route not marked. A
route is marked only if FastAPI would fill its parameters from nothing but the path, the
body, the request and the caller; ``HotRoutes`` checks that when it is built and refuses
a route with any other parameter (a query parameter, a header), which only FastAPI
parses, or whose ``user`` depends on another caller.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from threadloom.server import serde

__all__ = ["HotRoutes", "hot", "is_hot"]

#: the attribute ``hot`` sets on a route function
_HOT_MARK = "__threadloom_hot__"

#: the parameters of a hot route function besides its path parameters
_GIVEN = {"body", "request", "user"}


_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def hot(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route function (under its ``@router`` decorator) to be served by
    ``HotRoutes``, without FastAPI's per-request machinery: for the routes of a run's
    round trip. It may take only its path parameters, ``body`` (a pydantic model),
    ``request`` and ``user`` (``Depends`` on the caller ``HotRoutes`` is given)."""
    setattr(endpoint, _HOT_MARK, True)
    return endpoint


def is_hot(endpoint: Callable[..., Any]) -> bool:
    """Whether ``endpoint`` is marked ``@hot``."""
    return bool(getattr(endpoint, _HOT_MARK, False))


@dataclass(frozen=True)
class _Route:
    route: APIRoute
    methods: frozenset[str]
    body: type[BaseModel] | None  # the model of the ``body`` parameter, if it has one
    wants_user: bool
    #: the patterns of the routes the app tries first for these methods: a request one
    #: of them matches is theirs
    before: tuple[re.Pattern[str], ...]

    def match(self, scope: Scope) -> dict[str, str] | None:
        if scope["method"] not in self.methods:
            return None
        path = scope["path"]
        match = self.route.path_regex.match(path)
        if match is None or any(earlier.match(path) for earlier in self.before):
            return None
        return match.groupdict()

    @classmethod
    def of(cls, route: APIRoute, earlier: Sequence[Any], caller: Callable[..., Any]
           ) -> _Route:
        endpoint = route.endpoint
        params = inspect.signature(endpoint).parameters
        path_params = set(route.param_convertors)
        others = set(params) - path_params - _GIVEN
        if others:
            raise TypeError(
                f"{endpoint.__qualname__} ({route.path}) is marked @hot but takes "
                f"{', '.join(sorted(others))}, which only FastAPI fills (a query "
                "parameter, a header, ...): a hot route takes only its path parameters, "
                "body, request and user. Remove the parameter or the @hot mark."
            )
        if "user" in params and getattr(params["user"].default, "dependency", None) \
                is not caller:
            raise TypeError(
                f"{endpoint.__qualname__} ({route.path}) is marked @hot but its user is "
                f"not Depends({caller.__qualname__}), the caller HotRoutes finds."
            )
        body = None
        if "body" in params:
            body = typing.get_type_hints(endpoint)["body"]
            if not (inspect.isclass(body) and issubclass(body, BaseModel)):
                raise TypeError(
                    f"{endpoint.__qualname__} ({route.path}) is marked @hot but its body "
                    f"is {body!r}, not a pydantic model."
                )
        methods = frozenset(route.methods or ())
        before = tuple(r.path_regex for r in earlier if hasattr(r, "path_regex") and (
            getattr(r, "methods", None) is None or methods & set(r.methods)))
        return cls(route, methods, body, "user" in params, before)


class HotRoutes:
    """The middleware (see the module docstring). ``routes``: the app's routes, in the
    order it tries them; those whose function is marked ``@hot`` are served here."""

    def __init__(self, app: ASGIApp, routes: Sequence[Any],
                 caller: Callable[[Request], Awaitable[Any]]) -> None:
        self.app = app
        self.caller = caller
        self.routes = [_Route.of(r, routes[:n], caller) for n, r in enumerate(routes)
                       if isinstance(r, APIRoute) and is_hot(r.endpoint)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # (an app whose dependencies are overridden - tests do - is FastAPI's to serve)
        if scope["type"] == "http" and not scope.get("root_path") and not getattr(
                scope.get("app"), "dependency_overrides", None):
            for hot in self.routes:
                matched = hot.match(scope)
                if matched is not None:
                    await self._serve(hot, matched, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, hot: _Route, matched: dict[str, str], scope: Scope,
                     receive: Receive, send: Send) -> None:
        path_params = {name: hot.route.param_convertors[name].convert(value)
                       for name, value in matched.items()}
        kwargs: dict[str, Any] = dict(path_params)
        # the request as the route and the caller see it: its body, read here, can be
        # read again (an auth handler may), as from FastAPI's request
        request_receive = receive
        if hot.body is not None:
            body = await _read_body(receive)
            model = _parse(hot.body, scope, body)
            if model is None:  # FastAPI's answer, whatever it is
                await self.app(scope, _replay(body, receive), send)
                return
            kwargs["body"] = model
            request_receive = _replay(body, receive)
        scope["path_params"] = path_params
        scope["endpoint"] = hot.route.endpoint
        scope["route"] = hot.route
        request = Request(scope, request_receive)
        try:
            if hot.wants_user:
                kwargs["user"] = await self.caller(request)
            kwargs["request"] = request
            response = await hot.route.endpoint(**kwargs)
        except Exception as exc:
            handler = _handler_for(scope["app"], exc)
            if handler is None:  # the server-error middleware's: a 500
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _parse(model: type[BaseModel], scope: Scope, body: bytes) -> BaseModel | None:
    """``body`` validated by ``model`` as FastAPI would (its JSON as ``json`` reads it:
    ``serde.parse_request``); None where FastAPI should answer."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    if content_type != b"application/json" or not body:
        return None
    try:
        data = serde.parse_request(body)
    except ValueError:  # (not JSON: FastAPI's answer)
        return None
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: nothing to answer
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app, with the body already read sent again first."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _handler_for(app: Any, exc: Exception) -> Callable[..., Any] | None:
    """The app's exception handler for ``exc`` (by its class, most specific first), as
    Starlette's exception middleware picks it; None for a 500."""
    handlers = getattr(app, "exception_handlers", {})
    for cls in type(exc).__mro__:
        if cls in handlers and cls is not Exception:
            return handlers[cls]  # type: ignore[no-any-return]
    return None
