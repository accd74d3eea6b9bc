"""The app tries the run round trip's routers first (``app._MATCH_ORDER``): no request
reaches another route for it, and /openapi.json lists its paths as before."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("fastapi")

from starlette.routing import Match  # noqa: E402

from threadloom.server import app as app_module  # noqa: E402
from threadloom.server.routes import approvals, inbox  # noqa: E402

_ID = "123e4567-e89b-12d3-a456-426614174000"


def _first(modules, method: str, path: str):
    for module in modules:
        for route in module.router.routes:
            if route.matches({"type": "http", "method": method, "path": path,
                              "root_path": ""})[0] == Match.FULL:
                return route
    return None


def _paths(modules) -> set[str]:
    """Every route's path with an id for its parameters, and with each literal segment
    of any route in the first one (e.g. /threads/{id}/runs/crons against
    /runs/{run_id})."""
    templates = [r.path for m in modules for r in m.router.routes]
    literals = {s for t in templates for s in t.split("/") if s and "{" not in s}
    paths = set()
    for template in templates:
        paths.add(re.sub(r"\{[^}]+\}", _ID, template))
        for literal in literals:
            paths.add(re.sub(r"\{[^}]+\}", literal, template, count=1))
    return paths


def test_every_request_reaches_the_route_it_reached_in_the_schema_order() -> None:
    schema_order = [*app_module._SCHEMA_ORDER, approvals, inbox]
    match_order = [*app_module._MATCH_ORDER, approvals, inbox]
    assert sorted(m.__name__ for m in schema_order) == sorted(m.__name__ for m in match_order)
    checked = 0
    for path in _paths(schema_order):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            expected = _first(schema_order, method, path)
            assert _first(match_order, method, path) is expected, (method, path)
            checked += expected is not None
    assert checked > 80


def test_the_schema_lists_paths_in_the_routers_order() -> None:
    from threadloom.server import Server, create_app, load_config

    config = load_config(None, dev=True, database=":memory:", graphs={})
    app = create_app(Server.from_config(config, graphs={}))
    expected = list(dict.fromkeys(
        r.path for m in [*app_module._SCHEMA_ORDER, approvals, inbox] for r in m.router.routes
        if getattr(r, "include_in_schema", True)
    ))
    assert list(app.openapi()["paths"]) == expected


def test_hot_routes_serve_a_request_only_where_the_app_would_route_it() -> None:
    """``HotRoutes`` (the run round trip's routes without FastAPI's machinery) takes a
    request only for the route the app itself would give it to, and takes those of
    the round trip."""
    from threadloom.server.hot_routes import HotRoutes
    from threadloom.server.routes.common import caller

    match_order = [*app_module._MATCH_ORDER, approvals, inbox]
    hot = HotRoutes(None, [r for m in match_order for r in m.router.routes], caller)  # type: ignore[arg-type]
    served = set()
    for path in _paths(match_order):
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            scope = {"type": "http", "method": method, "path": path, "root_path": ""}
            taken = [h.route for h in hot.routes if h.match(scope) is not None]
            if taken:
                assert taken[0] is _first(match_order, method, path), (method, path)
                served.add((method, taken[0].path))
    assert {("POST", "/threads"), ("POST", "/threads/{thread_id}/runs/wait"),
            ("POST", "/threads/{thread_id}/runs/stream"), ("POST", "/threads/{thread_id}/runs"),
            ("POST", "/runs/wait"), ("GET", "/threads/{thread_id}")} <= served
