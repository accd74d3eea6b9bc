"""``/ok``, ``/info`` and ``/metrics``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.routes.common import caller, json_response, server_of

router = APIRouter(tags=["meta"])


def _version() -> str:
    try:
        return version("threadloom")
    except PackageNotFoundError:
        return "0"


@router.get("/ok")
async def ok() -> Response:
    """Health check (answered without authentication, for load balancers)."""
    return json_response({"ok": True})


@router.get("/info")
async def info(request: Request, user: AuthUser = Depends(caller)) -> Response:
    """Server version and optional features."""
    return json_response({
        "version": _version(),
        "langgraph_py_version": None,
        "threadloom_version": _version(),
        "flags": {"assistants": True, "crons": True, "langsmith": False},
        "host": {"kind": "threadloom", "project_id": None, "revision_id": None,
                 "tenant_id": None},
    })


@router.get("/metrics")
async def metrics(request: Request, user: AuthUser = Depends(caller)) -> Response:
    """Prometheus metrics (text format 0.0.4): threads by status, queued and running
    runs, and the joined thread streams this process serves."""
    storage = server_of(request).ctx.storage
    lines = [
        "# HELP threadloom_threads Threads by status.",
        "# TYPE threadloom_threads gauge",
    ]
    for status in ("idle", "busy", "interrupted", "error"):
        count = await storage.count_threads(metadata=None, values=None, status=status)
        lines.append(f'threadloom_threads{{status="{status}"}} {count}')
    active = await storage.list_active_runs()
    lines += ["# HELP threadloom_runs Runs waiting for a worker (pending) or executing "
              "(running).", "# TYPE threadloom_runs gauge"]
    for status in ("pending", "running"):
        count = sum(1 for run in active if run["status"] == status)
        lines.append(f'threadloom_runs{{status="{status}"}} {count}')
    lines += ["# HELP threadloom_thread_stream_followers Joined thread streams this "
              "process serves.", "# TYPE threadloom_thread_stream_followers gauge",
              f"threadloom_thread_stream_followers {server_of(request).runs.thread_followers()}"]
    return Response("\n".join(lines) + "\n",
                    media_type="text/plain; version=0.0.4; charset=utf-8")
