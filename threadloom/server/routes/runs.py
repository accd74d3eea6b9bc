"""Run routes (``client.runs``): create, stream, wait, join, list, cancel."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.hot_routes import hot
from threadloom.server.models import MAX_OFFSET, RunCancelMany, RunCreate
from threadloom.server.routes.common import (
    RunId,
    ThreadId,
    caller,
    json_response,
    long_poll_response,
    server_of,
    sse_response,
)
from threadloom.server.services.runs import public_run
from threadloom.server.storage.base import RUN_ACTIVE

router = APIRouter(tags=["runs"])


def _locations(run: dict[str, Any], suffix: str | None) -> dict[str, str]:
    base = f"/threads/{run['thread_id']}/runs/{run['run_id']}"
    headers = {"Content-Location": base}
    if suffix:
        headers["Location"] = f"{base}/{suffix}"
    return headers


async def _create(request: Request, user: AuthUser, thread_id: str | None,
                  body: RunCreate) -> Response:
    run, _ = await server_of(request).runs.create(user, thread_id, body.data())
    return json_response(public_run(run), headers=_locations(run, None))


async def _stream(request: Request, user: AuthUser, thread_id: str | None,
                  body: RunCreate) -> Response:
    server = server_of(request)
    data = body.data()
    # (its events are written as they come: see executor._Outbox)
    run, events = await server.runs.create(user, thread_id, data, listen=True,
                                           internal={"_streamed": True})
    assert events is not None

    async def disconnected() -> None:
        current = await server.ctx.storage.get_run(run["run_id"])
        if current is not None and current["status"] in RUN_ACTIVE:
            await server.runs.cancel_runs([run["run_id"]], "interrupt")

    return sse_response(
        events,
        with_ids=bool(data.get("stream_resumable")),
        headers=_locations(run, "stream"),
        on_disconnect=disconnected if data.get("on_disconnect") == "cancel" else None,
    )


async def _wait(request: Request, user: AuthUser, thread_id: str | None,
                body: RunCreate) -> Response:
    server = server_of(request)
    run, events = await server.runs.create(user, thread_id, body.data(), listen=True)
    assert events is not None
    return long_poll_response(server.runs.collect_result(events),
                              headers=_locations(run, "join"))


@router.post("/threads/{thread_id}/runs")
@hot
async def create_run(thread_id: ThreadId, body: RunCreate, request: Request,
                     user: AuthUser = Depends(caller)) -> Response:
    """Queue a run; returns it at once (``status: pending``)."""
    return await _create(request, user, thread_id, body)


@router.post("/threads/{thread_id}/runs/stream")
@hot
async def stream_run(thread_id: ThreadId, body: RunCreate, request: Request,
                     user: AuthUser = Depends(caller)) -> Response:
    """Queue a run and follow its events (SSE)."""
    return await _stream(request, user, thread_id, body)


@router.post("/threads/{thread_id}/runs/wait")
@hot
async def wait_run(thread_id: ThreadId, body: RunCreate, request: Request,
                   user: AuthUser = Depends(caller)) -> Response:
    """Queue a run and answer with its output."""
    return await _wait(request, user, thread_id, body)


@router.post("/runs")
@hot
async def create_stateless_run(body: RunCreate, request: Request,
                               user: AuthUser = Depends(caller)) -> Response:
    """A run on a temporary thread."""
    return await _create(request, user, None, body)


@router.post("/runs/stream")
@hot
async def stream_stateless_run(body: RunCreate, request: Request,
                               user: AuthUser = Depends(caller)) -> Response:
    """A run on a temporary thread, followed (SSE)."""
    return await _stream(request, user, None, body)


@router.post("/runs/wait")
@hot
async def wait_stateless_run(body: RunCreate, request: Request,
                             user: AuthUser = Depends(caller)) -> Response:
    """A run on a temporary thread; its output."""
    return await _wait(request, user, None, body)


@router.post("/runs/batch")
async def create_runs_batch(body: list[RunCreate], request: Request,
                            user: AuthUser = Depends(caller)) -> Response:
    """Several stateless runs at once."""
    server = server_of(request)
    out = []
    for item in body:
        run, _ = await server.runs.create(user, None, item.data())
        out.append(public_run(run))
    return json_response(out)


@router.post("/runs/cancel", status_code=204)
async def cancel_runs(body: RunCancelMany, request: Request,
                      action: Literal["interrupt", "rollback"] = "interrupt",
                      user: AuthUser = Depends(caller)) -> Response:
    """Cancel runs by id, or all pending/running ones (of a thread)."""
    await server_of(request).runs.cancel_many(user, body.model_dump(), action)
    return Response(status_code=204)


@router.get("/threads/{thread_id}/runs")
async def list_runs(thread_id: ThreadId, request: Request, limit: int = Query(10, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=MAX_OFFSET), status: str | None = None,
                    user: AuthUser = Depends(caller)) -> Response:
    """The thread's runs, newest first."""
    runs = await server_of(request).runs.list(user, thread_id, limit=limit, offset=offset,
                                              status=status)
    return json_response([public_run(r) for r in runs])


@router.get("/threads/{thread_id}/runs/{run_id}")
@hot
async def get_run(thread_id: ThreadId, run_id: RunId, request: Request,
                  user: AuthUser = Depends(caller)) -> Response:
    """One run."""
    return json_response(public_run(await server_of(request).runs.get(user, thread_id, run_id)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204)
async def delete_run(thread_id: ThreadId, run_id: RunId, request: Request,
                     user: AuthUser = Depends(caller)) -> Response:
    """Delete a run record (the thread's state stays)."""
    await server_of(request).runs.delete(user, thread_id, run_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel")
async def cancel_run(thread_id: ThreadId, run_id: RunId, request: Request, wait: bool = False,
                     action: Literal["interrupt", "rollback"] = "interrupt",
                     user: AuthUser = Depends(caller)) -> Response:
    """Stop a pending or running run (``rollback`` also removes it and its checkpoints)."""
    await server_of(request).runs.cancel(user, thread_id, run_id, wait=wait, action=action)
    return json_response({})  # (the reference's body: an empty object)


@router.get("/threads/{thread_id}/runs/{run_id}/join")
@hot
async def join_run(thread_id: ThreadId, run_id: RunId, request: Request,
                   user: AuthUser = Depends(caller)) -> Response:
    """Wait for the run to end; its output."""
    server = server_of(request)
    run = await server.runs.get(user, thread_id, run_id)  # 404 before the 200 starts
    return long_poll_response(server.runs.join(user, thread_id, run["run_id"]))


@router.get("/threads/{thread_id}/runs/{run_id}/stream")
async def join_run_stream(
    thread_id: ThreadId,
    run_id: RunId,
    request: Request,
    stream_mode: list[str] | None = Query(None),
    cancel_on_disconnect: bool = False,
    last_event_id: str | None = Header(None, alias="Last-Event-ID"),
    user: AuthUser = Depends(caller),
) -> Response:
    """Follow a run's events from now on; with ``Last-Event-ID`` on a resumable run, the
    kept events after that id first."""
    server = server_of(request)
    run = await server.runs.get(user, thread_id, run_id)
    events = server.runs.listen(run_id, after=last_event_id)

    async def disconnected() -> None:
        current = await server.ctx.storage.get_run(run_id)
        if current is not None and current["status"] in RUN_ACTIVE:
            await server.runs.cancel_runs([run_id], "interrupt")

    return sse_response(
        events,
        with_ids=bool(run["kwargs"].get("resumable")),
        modes=[m for m in stream_mode or () if m] or None,  # the SDK sends "" for none
        on_disconnect=disconnected if cancel_on_disconnect else None,
    )
