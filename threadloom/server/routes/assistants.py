"""``/assistants`` routes (``client.assistants``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.errors import Unprocessable
from threadloom.server.models import (
    AssistantCreate,
    AssistantSearch,
    AssistantUpdate,
    AssistantVersions,
    LatestVersion,
)
from threadloom.server.routes.common import AssistantId, caller, json_response, server_of

router = APIRouter(tags=["assistants"])


def _xray(value: str | None) -> int | bool:
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() == "true":
        return True
    try:
        return int(value)
    except ValueError:
        raise Unprocessable(f"xray must be true, false or a depth, got {value!r}.") from None


@router.post("/assistants")
async def create_assistant(body: AssistantCreate, request: Request,
                           user: AuthUser = Depends(caller)) -> Response:
    """Create an assistant for a served graph."""
    return json_response(await server_of(request).assistants.create(user, body.data()))


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, request: Request,
                            user: AuthUser = Depends(caller)) -> Response:
    """Assistants matching the filters."""
    return json_response(await server_of(request).assistants.search(user, body.data()))


@router.post("/assistants/count")
async def count_assistants(body: AssistantSearch, request: Request,
                           user: AuthUser = Depends(caller)) -> Response:
    """How many assistants match."""
    return json_response(await server_of(request).assistants.count(user, body.data()))


@router.get("/assistants/{assistant_id}")
async def get_assistant(assistant_id: AssistantId, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """One assistant."""
    return json_response(await server_of(request).assistants.get(user, assistant_id))


@router.patch("/assistants/{assistant_id}")
async def update_assistant(assistant_id: AssistantId, body: AssistantUpdate, request: Request,
                           user: AuthUser = Depends(caller)) -> Response:
    """A new version of the assistant."""
    data = body.model_dump(exclude_unset=True)
    return json_response(await server_of(request).assistants.update(user, assistant_id, data))


@router.delete("/assistants/{assistant_id}", status_code=204)
async def delete_assistant(assistant_id: AssistantId, request: Request,
                           delete_threads: bool = False,
                           user: AuthUser = Depends(caller)) -> Response:
    """Delete the assistant (and its threads with ``delete_threads``)."""
    await server_of(request).assistants.delete(user, assistant_id, delete_threads)
    return Response(status_code=204)


@router.get("/assistants/{assistant_id}/graph")
async def get_assistant_graph(assistant_id: AssistantId, request: Request, xray: str | None = None,
                              user: AuthUser = Depends(caller)) -> Response:
    """The graph's nodes and edges."""
    return json_response(
        await server_of(request).assistants.graph(user, assistant_id, _xray(xray))
    )


@router.get("/assistants/{assistant_id}/schemas")
async def get_assistant_schemas(assistant_id: AssistantId, request: Request,
                                user: AuthUser = Depends(caller)) -> Response:
    """Input, output, state, config and context JSON schemas."""
    return json_response(await server_of(request).assistants.schemas(user, assistant_id))


@router.get("/assistants/{assistant_id}/subgraphs")
async def get_assistant_subgraphs(assistant_id: AssistantId, request: Request,
                                  recurse: bool = False,
                                  user: AuthUser = Depends(caller)) -> Response:
    """The schemas of the graph's subgraphs, by namespace."""
    return json_response(
        await server_of(request).assistants.subgraphs(user, assistant_id, None, recurse)
    )


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}")
async def get_assistant_subgraphs_ns(assistant_id: AssistantId, namespace: str, request: Request,
                                     recurse: bool = False,
                                     user: AuthUser = Depends(caller)) -> Response:
    """The schemas of the subgraphs under ``namespace``."""
    return json_response(
        await server_of(request).assistants.subgraphs(user, assistant_id, namespace, recurse)
    )


@router.post("/assistants/{assistant_id}/versions")
async def assistant_versions(assistant_id: AssistantId, body: AssistantVersions, request: Request,
                             user: AuthUser = Depends(caller)) -> Response:
    """The assistant's versions, newest first."""
    return json_response(
        await server_of(request).assistants.versions(user, assistant_id, body.data())
    )


@router.post("/assistants/{assistant_id}/latest")
async def set_latest_version(assistant_id: AssistantId, body: LatestVersion, request: Request,
                             user: AuthUser = Depends(caller)) -> Response:
    """Make a version current."""
    return json_response(
        await server_of(request).assistants.set_latest(user, assistant_id, body.version)
    )
