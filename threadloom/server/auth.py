"""Who is calling, and what they may do: API keys and the reference's custom auth.

Two sources of identity, either or both:

* **API keys** (``"auth": {"api_keys": {"<key>": {"identity": "alice", "permissions":
  ["finance"]}}}`` or ``$THREADLOOM_API_KEYS``): the key comes in ``x-api-key`` (what
  the official client sends) or ``Authorization: Bearer <key>``.
* **A ``langgraph_sdk.Auth`` object** (``"auth": {"path": "./auth.py:auth"}``): its
  ``@auth.authenticate`` handler gets the request facts it asks for by name
  (``request``, ``path``, ``method``, ``path_params``, ``query_params``, ``headers``,
  ``authorization``) and returns an identity (a string, a dict with ``identity``, or a
  user object), or raises ``Auth.exceptions.HTTPException``. Its ``@auth.on...``
  handlers authorize each action: returning ``False`` is a 403, a dict is a filter on
  the resource's metadata (a resource outside it is a 404, searches only see inside
  it), and they may change the value (stamp ``metadata.owner``, scope a store
  namespace).

Without either, every call is refused unless the server runs in local dev mode
(``threadloom serve --dev``), where callers are the anonymous, unauthenticated user.
The identity found here is the one approvals record as their reviewer.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request

from threadloom.server.errors import Forbidden, ServerError, Unauthorized

__all__ = ["ANONYMOUS", "SERVER", "AuthUser", "Authorizer"]

_USER_KEYS = ("identity", "permissions", "display_name", "is_authenticated")


@dataclass(frozen=True)
class AuthUser:
    """The caller: ``identity``, ``permissions`` (roles), and whatever else the
    authenticate handler returned (``fields``). Reads like the SDK's user types."""

    identity: str
    permissions: tuple[str, ...] = ()
    display_name: str = ""
    is_authenticated: bool = True
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        if key in _USER_KEYS:
            return getattr(self, key)
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in _USER_KEYS or key in self.fields

    def __iter__(self) -> Iterator[str]:
        """The keys ``user[key]`` reads: the four the SDK's user types have, then the
        authenticate handler's own (the SDK's ``BaseUser`` protocol, which auth handlers
        may rely on: ``"org" in ctx.user``, ``dict(...)`` of its keys)."""
        yield from _USER_KEYS
        yield from (k for k in self.fields if k not in _USER_KEYS)

    def get(self, key: str, default: Any = None) -> Any:
        """``user[key]``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """JSON form, kept with a run so the worker knows who started it."""
        return {
            **{k: v for k, v in self.fields.items() if _plain(v)},
            "identity": self.identity,
            "permissions": list(self.permissions),
            "display_name": self.display_name or self.identity,
            "is_authenticated": self.is_authenticated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AuthUser:
        """The user ``to_dict`` made (anonymous for None)."""
        if not data:
            return ANONYMOUS
        known = _USER_KEYS
        return cls(
            identity=str(data["identity"]),
            permissions=tuple(data.get("permissions") or ()),
            display_name=str(data.get("display_name") or data["identity"]),
            is_authenticated=bool(data.get("is_authenticated", True)),
            fields={k: v for k, v in data.items() if k not in known},
        )


ANONYMOUS = AuthUser("anonymous", (), "anonymous", is_authenticated=False)

SERVER = AuthUser("threadloom:server", (), "threadloom server", is_authenticated=False)
"""The server acting on its own (applying approval deadlines): never what a request
authenticates as, and not subject to the ``@auth.on`` handlers (checked by identity)."""


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


class Authorizer:
    """Authenticates requests and runs the ``@auth.on`` handlers (see the module)."""

    def __init__(
        self,
        *,
        api_keys: Mapping[str, Mapping[str, Any]] | None = None,
        auth: Any = None,
        dev: bool = False,
    ) -> None:
        self.api_keys = {k: AuthUser.from_dict(v) for k, v in (api_keys or {}).items()}
        self.auth = auth
        self.dev = dev
        if auth is not None and not hasattr(auth, "_handlers"):
            raise SystemExit(
                f"auth.path names a {type(auth).__name__}; it must be a langgraph_sdk.Auth "
                "object (auth = Auth(); @auth.authenticate ...)."
            )
        if not dev and not self.api_keys and getattr(auth, "_authenticate_handler", None) is None:
            raise SystemExit(
                "No authentication configured: add \"auth\": {\"api_keys\": {...}} or "
                "{\"path\": \"./auth.py:auth\"} to the config (or $THREADLOOM_API_KEYS), or "
                "run locally with --dev (no authentication, for development only)."
            )

    async def authenticate(self, request: Request) -> AuthUser:
        """The caller of ``request``; ``Unauthorized`` when not recognized."""
        key = request.headers.get("x-api-key")
        authorization = request.headers.get("authorization")
        if key is None and authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if key is not None and key in self.api_keys:
            return self.api_keys[key]
        handler = getattr(self.auth, "_authenticate_handler", None)
        if handler is not None:
            return await self._custom(handler, request, authorization)
        if self.dev:
            return ANONYMOUS
        raise Unauthorized("Missing or invalid API key: send it in the x-api-key header.")

    async def _custom(self, handler: Any, request: Request, authorization: str | None
                      ) -> AuthUser:
        from langgraph_sdk.auth.exceptions import HTTPException

        facts = {
            "request": request,
            "path": request.url.path,
            "method": request.method,
            "path_params": dict(request.path_params),
            "query_params": dict(request.query_params),
            "headers": {k.encode(): v.encode() for k, v in request.headers.items()},
            "authorization": authorization,
        }
        params = inspect.signature(handler).parameters
        kwargs = {name: facts[name] for name in params if name in facts}
        try:
            result = handler(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except HTTPException as exc:
            if exc.status_code == 403:
                raise Forbidden(str(exc.detail)) from None
            error = ServerError(str(exc.detail))
            error.status = exc.status_code
            raise error from None
        return _to_user(result)

    async def authorize(
        self, user: AuthUser, resource: str, action: str, value: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Run the handler for ``resource``/``action``: None (allowed, no filter), a
        filter dict, or ``Forbidden``. ``value`` may be changed by the handler."""
        if self.auth is None:
            return None
        handler = _find_handler(self.auth, resource, action)
        if handler is None:
            return None
        from langgraph_sdk.auth.exceptions import HTTPException
        from langgraph_sdk.auth.types import AuthContext

        # (the server's resource and action names are the SDK's: its Literal types)
        ctx = AuthContext(
            permissions=list(user.permissions), user=user, resource=cast(Any, resource),
            action=cast(Any, action),
        )
        try:
            result = await handler(ctx=ctx, value=value)
        except HTTPException as exc:
            error = ServerError(str(exc.detail))
            error.status = exc.status_code
            raise error from None
        if result is False:
            raise Forbidden(f"Not allowed: {resource}.{action} was refused by the auth handler.")
        if result is None or result is True:
            return None
        if isinstance(result, Mapping):
            return dict(result)
        raise Forbidden(f"The auth handler for {resource}.{action} returned {result!r}.")


def _find_handler(auth: Any, resource: str, action: str) -> Any:
    handlers: Mapping[tuple[str, str], Sequence[Any]] = auth._handlers
    for key in ((resource, action), (resource, "*"), ("*", action)):
        found = handlers.get(key)
        if found:
            return found[-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


def _to_user(result: Any) -> AuthUser:
    if isinstance(result, AuthUser):
        return result
    if isinstance(result, str):
        return AuthUser(identity=result, display_name=result)
    if isinstance(result, Mapping):
        if not isinstance(result.get("identity"), str):
            raise Unauthorized("The authenticate handler returned a user without 'identity'.")
        return AuthUser.from_dict(result)
    identity = getattr(result, "identity", None)
    if isinstance(identity, str):
        return AuthUser(
            identity=identity,
            permissions=tuple(getattr(result, "permissions", ()) or ()),
            display_name=str(getattr(result, "display_name", identity)),
            is_authenticated=bool(getattr(result, "is_authenticated", True)),
        )
    raise Unauthorized(f"The authenticate handler returned {type(result).__name__}, not a user.")
