"""Cron routes (``client.crons``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.models import CronCreate, CronSearch, CronUpdate
from threadloom.server.routes.common import CronId, ThreadId, caller, json_response, server_of

router = APIRouter(tags=["crons"])


@router.post("/threads/{thread_id}/runs/crons")
async def create_thread_cron(thread_id: ThreadId, body: CronCreate, request: Request,
                             user: AuthUser = Depends(caller)) -> Response:
    """A cron starting runs on this thread."""
    data = body.model_dump(exclude_none=True)
    return json_response(await server_of(request).crons.create(user, thread_id, data))


@router.post("/runs/crons")
async def create_cron(body: CronCreate, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """A cron starting each run on a new thread."""
    data = body.model_dump(exclude_none=True)
    return json_response(await server_of(request).crons.create(user, None, data))


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, request: Request,
                       user: AuthUser = Depends(caller)) -> Response:
    """Crons matching the filters."""
    return json_response(await server_of(request).crons.search(user, body.data()))


@router.post("/runs/crons/count")
async def count_crons(body: CronSearch, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """How many crons match."""
    return json_response(await server_of(request).crons.count(user, body.data()))


@router.get("/runs/crons/{cron_id}")
async def get_cron(cron_id: CronId, request: Request,
                   user: AuthUser = Depends(caller)) -> Response:
    """One cron."""
    return json_response(await server_of(request).crons.get(user, cron_id))


@router.patch("/runs/crons/{cron_id}")
async def update_cron(cron_id: CronId, body: CronUpdate, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """Change a cron's schedule or run."""
    data = body.model_dump(exclude_unset=True)
    return json_response(await server_of(request).crons.update(user, cron_id, data))


@router.delete("/runs/crons/{cron_id}", status_code=204)
async def delete_cron(cron_id: CronId, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """Delete a cron."""
    await server_of(request).crons.delete(user, cron_id)
    return Response(status_code=204)
