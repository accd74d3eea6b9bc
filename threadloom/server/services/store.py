"""The store routes: items by namespace and key, searches, namespaces.

The same store the graphs use (``Storage.store``). ``@auth.on.store`` handlers see
``{"namespace", "key", "value", ...}`` and may rewrite the namespace (scoping it to the
caller); the rewritten value is what is used. Labels may not contain ``.`` (the GET
route joins the namespace with dots).
"""

from __future__ import annotations

import contextlib
from typing import Any

from threadloom.server.auth import AuthUser
from threadloom.server.context import ServerContext
from threadloom.server.errors import Unprocessable, stored_value_errors, unprocessable_on

__all__ = ["StoreService"]


def _namespace(value: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise Unprocessable("namespace must be a list of strings.")
    if not value and not allow_empty:
        raise Unprocessable("namespace must not be empty.")
    for label in value:
        if not label or "." in label:
            raise Unprocessable(
                f"Invalid namespace label {label!r}: labels are non-empty and contain no '.'."
            )
    return tuple(value)


def _refused() -> tuple[type[Exception], ...]:
    """What the store raises for what it refuses (a namespace, an index path, a
    semantic ``query`` or a ``ttl`` it does not support) and the databases' "this value
    cannot be stored": the request's fault, a 422."""
    return (ValueError, TypeError, NotImplementedError, *stored_value_errors())


_REFUSED = _refused()


def _invalid_as_422() -> contextlib.AbstractContextManager[None]:
    return unprocessable_on(*_REFUSED, what="The store refused the request")


class StoreService:
    """Store items for the HTTP API."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    @property
    def store(self) -> Any:
        return self.ctx.storage.store

    async def _auth(self, user: AuthUser, action: str, value: dict[str, Any]) -> dict[str, Any]:
        await self.ctx.authorize(user, "store", action, value)
        return value

    async def put(self, user: AuthUser, body: dict[str, Any]) -> None:
        value = await self._auth(user, "put", {
            "namespace": _namespace(body["namespace"]), "key": body["key"],
            "value": body["value"], "index": body.get("index"), "ttl": body.get("ttl"),
        })
        ns = _namespace(value["namespace"])
        extra: dict[str, Any] = {}
        if value.get("ttl") is not None:
            extra["ttl"] = value["ttl"]
        with _invalid_as_422():
            await self.store.aput(ns, value["key"], value["value"], value.get("index"),
                                  **extra)

    async def get(self, user: AuthUser, namespace: str, key: str,
                  refresh_ttl: bool | None) -> dict[str, Any] | None:
        ns = _namespace([p for p in namespace.split(".")] if namespace else [])
        value = await self._auth(user, "get", {"namespace": ns, "key": key})
        with _invalid_as_422():
            item = await self.store.aget(_namespace(value["namespace"]), value["key"],
                                         refresh_ttl=refresh_ttl)
        return None if item is None else item.dict()

    async def delete(self, user: AuthUser, body: dict[str, Any]) -> None:
        value = await self._auth(user, "delete", {
            "namespace": _namespace(body["namespace"]), "key": body["key"],
        })
        with _invalid_as_422():
            await self.store.adelete(_namespace(value["namespace"]), value["key"])

    async def search(self, user: AuthUser, body: dict[str, Any]) -> dict[str, Any]:
        value = await self._auth(user, "search", {
            "namespace": _namespace(body.get("namespace_prefix") or [], allow_empty=True),
            "filter": body.get("filter"), "limit": body.get("limit", 10),
            "offset": body.get("offset", 0), "query": body.get("query"),
        })
        with _invalid_as_422():
            items = await self.store.asearch(
                _namespace(value["namespace"], allow_empty=True), query=value.get("query"),
                filter=value.get("filter"), limit=value["limit"], offset=value["offset"],
                refresh_ttl=body.get("refresh_ttl"),
            )
        return {"items": [item.dict() for item in items]}

    async def list_namespaces(self, user: AuthUser, body: dict[str, Any]) -> dict[str, Any]:
        value = await self._auth(user, "list_namespaces", {
            "namespace": _namespace(body.get("prefix") or [], allow_empty=True),
            "suffix": body.get("suffix"), "max_depth": body.get("max_depth"),
            "limit": body.get("limit", 100), "offset": body.get("offset", 0),
        })
        with _invalid_as_422():
            namespaces = await self.store.alist_namespaces(
                prefix=_namespace(value["namespace"], allow_empty=True) or None,
                suffix=tuple(value["suffix"]) if value.get("suffix") else None,
                max_depth=value.get("max_depth"), limit=value["limit"], offset=value["offset"],
            )
        return {"namespaces": [list(ns) for ns in namespaces]}
