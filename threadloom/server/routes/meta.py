"""``/ok`` and ``/info``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from threadloom.server.auth import AuthUser
from threadloom.server.routes.common import caller, json_response

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
