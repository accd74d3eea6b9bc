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


def test_every_request_reaches_the_route_it_reached_in_the_schema_order() -> None:
    schema_order = [*app_module._SCHEMA_ORDER, approvals, inbox]
    match_order = [*app_module._MATCH_ORDER, approvals, inbox]
    assert sorted(m.__name__ for m in schema_order) == sorted(m.__name__ for m in match_order)
    templates = [r.path for m in schema_order for r in m.router.routes]
    literals = {s for t in templates for s in t.split("/") if s and "{" not in s}
    paths = set()
    for template in templates:
        paths.add(re.sub(r"\{[^}]+\}", _ID, template))
        for literal in literals:  # e.g. /threads/{id}/runs/crons against /runs/{run_id}
            paths.add(re.sub(r"\{[^}]+\}", literal, template, count=1))
    checked = 0
    for path in paths:
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
