"""``HotRoutes`` serves the marked routes itself, exactly as FastAPI would answer them,
and leaves every other request to FastAPI (a recorder inside it sees which)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("fastapi")

import httpx  # noqa: E402
from fastapi import APIRouter, Depends, FastAPI, Request  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.responses import Response  # noqa: E402

from threadloom.server.errors import NotFound, ServerError, Unauthorized  # noqa: E402
from threadloom.server.hot_routes import HotRoutes, hot  # noqa: E402
from threadloom.server.routes.common import json_response  # noqa: E402


class Order(BaseModel):
    item: str
    count: int = 1


async def who(request: Request) -> str:
    """The caller: its key, which the path parameters may not forbid, nor the body
    (which it reads, as an auth handler may)."""
    key = request.headers.get("x-api-key")
    if key is None or key == request.path_params.get("shop"):
        raise Unauthorized("who are you?")
    # (not forever: a body read before and not kept would never come)
    if request.method == "POST" and b"forged" in await asyncio.wait_for(request.body(), 5):
        raise Unauthorized("forged")
    return key


router = APIRouter()


@router.post("/shops/special")  # tried before the hot route below, which it shadows
async def special(request: Request) -> Response:
    return json_response({"special": True})


@router.post("/shops/{shop}/orders")
@hot
async def order(shop: str, body: Order, request: Request, user: str = Depends(who)
                ) -> Response:
    if body.item == "missing":
        raise NotFound(f"no {body.item} in {shop}")
    if body.item == "bug":
        raise RuntimeError("a bug")
    return json_response({"shop": shop, "by": user, **body.model_dump(),
                          "params": dict(request.path_params)})


@router.get("/shops/{shop}")
@hot
async def shop(shop: str, request: Request) -> Response:
    return json_response({"shop": shop})


def _app(recorded: list[str]) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(ServerError)
    async def server_error(request: Request, exc: ServerError) -> Response:
        return json_response({"detail": exc.detail}, status=exc.status)

    @app.middleware("http")  # inside HotRoutes: sees what reaches FastAPI's routing
    async def record(request: Request, call_next: Any) -> Response:
        recorded.append(f"{request.method} {request.url.path}")
        response: Response = await call_next(request)
        return response

    app.add_middleware(HotRoutes, routes=router.routes, caller=who)
    app.include_router(router)
    return app


@pytest.fixture
def recorded() -> list[str]:
    return []


@pytest.fixture
async def http(recorded: list[str]):
    transport = httpx.ASGITransport(app=_app(recorded), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_hot_route_is_answered_without_fastapi(http, recorded) -> None:
    answer = await http.post("/shops/north/orders", json={"item": "tea"},
                             headers={"x-api-key": "alice"})
    assert answer.status_code == 200
    assert answer.json() == {"shop": "north", "by": "alice", "item": "tea", "count": 1,
                             "params": {"shop": "north"}}
    assert (await http.get("/shops/north")).json() == {"shop": "north"}
    assert recorded == []


async def test_what_fastapi_would_refuse_goes_to_fastapi(http, recorded) -> None:
    invalid = await http.post("/shops/north/orders", json={"count": "many"},
                              headers={"x-api-key": "alice"})
    assert invalid.status_code == 422
    assert {e["loc"][-1] for e in invalid.json()["detail"]} == {"item", "count"}
    as_text = await http.post("/shops/north/orders", content=b'{"item": "tea"}',
                              headers={"x-api-key": "alice", "content-type": "text/plain"})
    not_json = await http.post("/shops/north/orders", content=b"{item",
                               headers={"x-api-key": "alice",
                                        "content-type": "application/json"})
    assert not_json.status_code == 422
    assert recorded == ["POST /shops/north/orders"] * 3
    # FastAPI answers as it would have without HotRoutes in front
    plain = FastAPI()
    plain.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                 base_url="http://test") as direct:
        again = await direct.post("/shops/north/orders", content=b'{"item": "tea"}',
                                  headers={"x-api-key": "alice",
                                           "content-type": "text/plain"})
    assert (as_text.status_code, as_text.json()) == (again.status_code, again.json())


async def test_a_route_the_app_tries_first_keeps_its_requests(http, recorded) -> None:
    answer = await http.post("/shops/special/orders", json={"item": "tea"},
                             headers={"x-api-key": "alice"})
    assert answer.json()["shop"] == "special"  # not shadowed: only /shops/special is
    assert (await http.post("/shops/special")).json() == {"special": True}
    assert recorded == ["POST /shops/special"]


async def test_errors_are_rendered_by_the_apps_handlers(http, recorded) -> None:
    missing = await http.post("/shops/north/orders", json={"item": "missing"},
                              headers={"x-api-key": "alice"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "no missing in north"})
    # the caller is found with the path parameters at hand, as under FastAPI
    refused = await http.post("/shops/north/orders", json={"item": "tea"},
                              headers={"x-api-key": "north"})
    assert (refused.status_code, refused.json()) == (401, {"detail": "who are you?"})
    forged = await http.post("/shops/north/orders", json={"item": "forged"},
                             headers={"x-api-key": "alice"})
    assert (forged.status_code, forged.json()) == (401, {"detail": "forged"})
    bug = await http.post("/shops/north/orders", json={"item": "bug"},
                          headers={"x-api-key": "alice"})
    assert bug.status_code == 500
    assert recorded == []


async def test_an_app_with_overridden_dependencies_is_left_to_fastapi(recorded) -> None:
    app = _app(recorded)

    async def tester(request: Request) -> str:
        return "tester"

    app.dependency_overrides[who] = tester  # as a test of the app would
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/shops/north/orders", json={"item": "tea"})
    assert answer.json()["by"] == "tester"
    assert recorded == ["POST /shops/north/orders"]


async def test_an_app_under_a_root_path_is_left_to_fastapi(recorded) -> None:
    transport = httpx.ASGITransport(app=_app(recorded), root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/api/shops/north/orders", json={"item": "tea"},
                                   headers={"x-api-key": "alice"})
    assert answer.json()["shop"] == "north"
    assert recorded == ["POST /api/shops/north/orders"]


def test_a_route_fastapi_alone_can_fill_is_refused_when_marked() -> None:
    odd = APIRouter()

    @odd.get("/search")
    @hot
    async def search(request: Request, q: str = "") -> Response:
        return json_response([])

    with pytest.raises(TypeError, match=r"search \(/search\) is marked @hot but takes q"):
        HotRoutes(None, odd.routes, who)  # type: ignore[arg-type]

    @odd.post("/raw")
    @hot
    async def raw(body: dict, request: Request) -> Response:
        return json_response(body)

    with pytest.raises(TypeError, match="its body is <class 'dict'>, not a pydantic model"):
        HotRoutes(None, odd.routes[1:], who)  # type: ignore[arg-type]

    async def someone(request: Request) -> str:
        return "someone"

    @odd.get("/mine")
    @hot
    async def mine(request: Request, user: str = Depends(someone)) -> Response:
        return json_response(user)

    with pytest.raises(TypeError, match=r"its user is not Depends\(who\)"):
        HotRoutes(None, odd.routes[2:], who)  # type: ignore[arg-type]


def test_a_browsers_requests_to_hot_routes_get_cors_headers(serve_config) -> None:
    """On the real server in dev mode (CORS for every origin): the round trip's routes,
    served by HotRoutes, answer a page's requests with the CORS headers FastAPI's
    routes get."""
    served = serve_config({"graphs": {"payment": "./graphs.py:payment"}}, dev=True)
    origin = {"origin": "http://localhost:5173"}
    with httpx.Client(base_url=served.url, headers=origin, timeout=30) as page:
        created = page.post("/threads", json={})
        assert created.status_code == 200
        assert created.headers["access-control-allow-origin"] == "*"
        thread_id = created.json()["thread_id"]
        paused = page.post(f"/threads/{thread_id}/runs/wait",
                           json={"assistant_id": "payment", "input": {"amount": 5}})
        assert paused.headers["access-control-allow-origin"] == "*"
        assert paused.json()["__interrupt__"]
        preflight = page.options(f"/threads/{thread_id}/runs/wait", headers={
            "access-control-request-method": "POST"})
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        info = page.get("/info")  # a route FastAPI serves: the same header
        assert info.headers["access-control-allow-origin"] == "*"
