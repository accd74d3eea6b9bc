"""``/store`` routes (``client.store``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.models import StoreDelete, StoreNamespaces, StorePut, StoreSearch
from threadloom.server.routes.common import caller, json_response, server_of

router = APIRouter(tags=["store"])


@router.put("/store/items", status_code=204)
async def put_item(body: StorePut, request: Request,
                   user: AuthUser = Depends(caller)) -> Response:
    """Store (or overwrite) an item."""
    await server_of(request).store.put(user, body.model_dump())
    return Response(status_code=204)


@router.get("/store/items")
async def get_item(namespace: str, key: str, request: Request, refresh_ttl: bool | None = None,
                   user: AuthUser = Depends(caller)) -> Response:
    """An item (``null`` when missing); ``namespace`` is dot-joined."""
    return json_response(await server_of(request).store.get(user, namespace, key, refresh_ttl))


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDelete, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """Delete an item (also when missing)."""
    await server_of(request).store.delete(user, body.model_dump())
    return Response(status_code=204)


@router.post("/store/items/search")
async def search_items(body: StoreSearch, request: Request,
                       user: AuthUser = Depends(caller)) -> Response:
    """Items under a namespace prefix, filtered."""
    return json_response(await server_of(request).store.search(user, body.model_dump()))


@router.post("/store/namespaces")
async def list_namespaces(body: StoreNamespaces, request: Request,
                          user: AuthUser = Depends(caller)) -> Response:
    """The namespaces holding items."""
    return json_response(await server_of(request).store.list_namespaces(user, body.model_dump()))
