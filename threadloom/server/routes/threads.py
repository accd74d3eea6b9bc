"""``/threads`` routes (``client.threads``): records and state."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.hot_routes import hot
from threadloom.server.models import (
    HistoryQuery,
    StateAtCheckpoint,
    StateUpdate,
    ThreadCreate,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
)
from threadloom.server.routes.common import (
    ThreadId,
    caller,
    json_response,
    server_of,
    sse_response,
)

router = APIRouter(tags=["threads"])


@router.post("/threads")
@hot
async def create_thread(body: ThreadCreate, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """Create a thread (409 for a duplicate id unless ``if_exists=do_nothing``)."""
    return json_response(await server_of(request).threads.create(user, body.data()))


@router.post("/threads/search")
@hot
async def search_threads(body: ThreadSearch, request: Request,
                         user: AuthUser = Depends(caller)) -> Response:
    """Threads by status, metadata, values or ids."""
    return json_response(await server_of(request).threads.search(user, body.data()))


@router.post("/threads/count")
async def count_threads(body: ThreadSearch, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """How many threads match."""
    return json_response(await server_of(request).threads.count(user, body.data()))


@router.post("/threads/prune")
async def prune_threads(body: ThreadPrune, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """Delete threads, or keep only their latest checkpoint."""
    count = await server_of(request).threads.prune(user, body.thread_ids, body.strategy)
    return json_response({"pruned_count": count})


@router.get("/threads/{thread_id}")
@hot
async def get_thread(thread_id: ThreadId, request: Request,
                     user: AuthUser = Depends(caller)) -> Response:
    """One thread, with its status, values and pending interrupts."""
    return json_response(await server_of(request).threads.get(user, thread_id))


@router.patch("/threads/{thread_id}")
async def patch_thread(thread_id: ThreadId, body: ThreadPatch, request: Request,
                       user: AuthUser = Depends(caller)) -> Response:
    """Merge metadata into the thread's."""
    return json_response(await server_of(request).threads.update(user, thread_id, body.data()))


@router.delete("/threads/{thread_id}", status_code=204)
async def delete_thread(thread_id: ThreadId, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """Delete the thread, its runs and its checkpoints."""
    await server_of(request).threads.delete(user, thread_id)
    return Response(status_code=204)


@router.post("/threads/{thread_id}/copy")
async def copy_thread(thread_id: ThreadId, request: Request,
                      user: AuthUser = Depends(caller)) -> Response:
    """A new thread with the same checkpoints."""
    return json_response(await server_of(request).threads.copy(user, thread_id))


@router.get("/threads/{thread_id}/state")
async def get_state(thread_id: ThreadId, request: Request, subgraphs: bool = False,
                    user: AuthUser = Depends(caller)) -> Response:
    """The thread's latest state."""
    return json_response(
        await server_of(request).threads.get_state(user, thread_id, subgraphs=subgraphs)
    )


@router.get("/threads/{thread_id}/state/{checkpoint_id}")
async def get_state_at(thread_id: ThreadId, checkpoint_id: str, request: Request,
                       subgraphs: bool = False, user: AuthUser = Depends(caller)) -> Response:
    """The thread's state at a checkpoint."""
    return json_response(await server_of(request).threads.get_state(
        user, thread_id, checkpoint={"checkpoint_id": checkpoint_id}, subgraphs=subgraphs
    ))


@router.post("/threads/{thread_id}/state/checkpoint")
async def post_state_at(thread_id: ThreadId, body: StateAtCheckpoint, request: Request,
                        user: AuthUser = Depends(caller)) -> Response:
    """The thread's state at a checkpoint (given as an object)."""
    return json_response(await server_of(request).threads.get_state(
        user, thread_id, checkpoint=body.checkpoint.model_dump(exclude_none=True),
        subgraphs=body.subgraphs,
    ))


@router.post("/threads/{thread_id}/state")
async def update_state(thread_id: ThreadId, body: StateUpdate, request: Request,
                       user: AuthUser = Depends(caller)) -> Response:
    """Write values as if a node returned them (a new checkpoint)."""
    data = body.model_dump(exclude_none=True)
    data["values"] = body.values
    return json_response(await server_of(request).threads.update_state(user, thread_id, data))


@router.post("/threads/{thread_id}/history")
async def post_history(thread_id: ThreadId, body: HistoryQuery, request: Request,
                       user: AuthUser = Depends(caller)) -> Response:
    """The thread's checkpoints, newest first."""
    data = body.model_dump(exclude_none=True)
    return json_response(await server_of(request).threads.history(user, thread_id, data))


@router.get("/threads/{thread_id}/history")
async def get_history(thread_id: ThreadId, request: Request, limit: int = 10,
                      before: str | None = None, user: AuthUser = Depends(caller)) -> Response:
    """The thread's checkpoints, newest first."""
    data = {"limit": limit, "before": before}
    return json_response(await server_of(request).threads.history(user, thread_id, data))


@router.get("/threads/{thread_id}/stream")
async def join_thread_stream(
    thread_id: ThreadId,
    request: Request,
    stream_mode: list[Literal["run_modes"]] | None = Query(None),
    user: AuthUser = Depends(caller),
) -> Response:
    """Follow the thread (SSE): the events of each of its runs, one run after the other,
    from now on (``stream_mode=run_modes``: the modes each run was started with). It
    ends when the thread is deleted or the client leaves."""
    server = server_of(request)
    await server.threads.readable(user, thread_id, values=False)  # 404 before the 200
    return sse_response(server.runs.follow_thread(thread_id), with_ids=False)
