"""``/inbox``: the approval inbox's page and assets, shipped with the package.

Plain HTML, CSS and JavaScript from ``threadloom/server/inbox/`` (no build step, nothing
loaded from elsewhere: the page's Content-Security-Policy allows only this server). The
page signs in with an API key or token kept in the browser's session storage and uses
only the ``/approvals`` API (``threadloom.server.routes.approvals``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from threadloom.server.errors import NotFound

router = APIRouter(tags=["inbox"])

INBOX_DIR = Path(__file__).resolve().parent.parent / "inbox"
"""Where the inbox's files are (package data)."""

_ASSETS = {
    "inbox.css": "text/css; charset=utf-8",
    "inbox.js": "text/javascript; charset=utf-8",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/inbox", include_in_schema=False)
async def inbox_page() -> Response:
    """The inbox page (sign-in, list, decision and audit views)."""
    return FileResponse(INBOX_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers=_HEADERS)


@router.get("/inbox/{name}", include_in_schema=False)
async def inbox_asset(name: str) -> Response:
    """The page's stylesheet and script."""
    media = _ASSETS.get(name)
    if media is None:
        raise NotFound(f"No inbox file {name!r}.")
    return FileResponse(INBOX_DIR / name, media_type=media, headers=_HEADERS)
