"""The server as an ASGI application: ``Server`` (services, worker) and ``create_app``.

    from threadloom.server import Server, create_app
    server = Server.from_config(load_config("langgraph.json", database="app.db"))
    app = create_app(server)          # serve with uvicorn

Layers: routes (``threadloom.server.routes``: validation, auth, SSE) -> services
(``threadloom.server.services``) -> ``Storage``. The embedded storage is SQLite and the
``Worker`` runs in this process; with a storage shared by several processes, the API
process only queues runs and ``threadloom worker`` processes execute them
(``Server(..., run_worker=False)``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from threadloom.server.auth import Authorizer
from threadloom.server.config import ServerConfig, import_object
from threadloom.server.context import ServerContext
from threadloom.server.errors import ServerError
from threadloom.server.graphs import GraphRegistry
from threadloom.server.hot_routes import HotRoutes
from threadloom.server.routes import assistants, crons, meta, runs, store, threads
from threadloom.server.routes.common import caller, json_response
from threadloom.server.services.approval_events import ApprovalFeed
from threadloom.server.services.approvals import ApprovalService
from threadloom.server.services.assistants import AssistantService
from threadloom.server.services.crons import CronService
from threadloom.server.services.runs import RunService
from threadloom.server.services.store import StoreService
from threadloom.server.services.threads import ThreadService
from threadloom.server.storage.base import Storage
from threadloom.server.webhooks import WebhookOutbox
from threadloom.server.worker import Worker

log = logging.getLogger("threadloom.server")

__all__ = ["Server", "create_app", "open_storage"]


def open_storage(database: str) -> Storage:
    """The storage a database URL or path names: ``PostgresStorage`` for a
    ``postgresql://`` URL, else ``SqliteStorage`` on that file."""
    if database.startswith(("postgres://", "postgresql://")):
        from threadloom.server.storage.postgres import PostgresStorage

        return PostgresStorage(database)
    path = database.removeprefix("sqlite:///").removeprefix("sqlite://")
    from threadloom.server.storage.sqlite import SqliteStorage

    return SqliteStorage(path)


class Server:
    """One server: its context, services and (optionally) an in-process worker."""

    def __init__(
        self,
        config: ServerConfig,
        storage: Storage,
        graphs: GraphRegistry,
        authorizer: Authorizer,
        *,
        run_worker: bool = True,
    ) -> None:
        self.ctx = ServerContext(config, storage, graphs, authorizer,
                                 WebhookOutbox(storage, config.webhook_secret))
        self.assistants = AssistantService(self.ctx)
        self.threads = ThreadService(self.ctx)
        self.runs = RunService(self.ctx, self.threads, self.assistants)
        self.store = StoreService(self.ctx)
        self.crons = CronService(self.ctx, self.runs)
        self.worker = Worker(
            self.threads, concurrency=config.workers, lease_seconds=config.lease_seconds,
            graph_ids=self.ctx.graphs.ids(),
        ) if run_worker else None
        # the approval inbox's API; deadlines are applied where runs are executed
        self.approvals = ApprovalService(self.ctx, self.threads, self.runs)
        self.approval_feed = ApprovalFeed(self.approvals, self.runs, sweep=run_worker)
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(cls, config: ServerConfig, *, graphs: Mapping[str, Any] | None = None,
                    auth: Any = None, run_worker: bool | None = None) -> Server:
        """Open the configured storage, import the graphs and the auth object.

        ``graphs`` / ``auth`` given as objects take the place of the config's specs.
        ``run_worker``: execute runs in this process too; by default only when the
        storage is not shared (SQLite) - on PostgreSQL, ``threadloom worker`` processes
        execute them.
        """
        storage = open_storage(config.database)
        if graphs is not None:
            registry = GraphRegistry.of(graphs, storage.checkpointer, storage.store)
        else:
            registry = GraphRegistry(config, storage.checkpointer, storage.store)
        if auth is None and config.auth_path:
            auth = import_object(config.auth_path, config.base_dir, what="auth.path")
        authorizer = Authorizer(api_keys=config.api_keys, auth=auth, dev=config.dev)
        if run_worker is None:
            run_worker = not storage.shared
        return cls(config, storage, registry, authorizer, run_worker=run_worker)

    async def start(self) -> None:
        """Set up the storage, the system assistants, the worker and the cron timer
        (where runs are executed), and the approval feed."""
        self.loop = asyncio.get_running_loop()
        await self.ctx.storage.setup()
        await self.assistants.ensure_system_assistants()
        if self.worker is not None:
            await self.worker.start()
            await self.crons.start()
            await self.threads.start_sweeper()
            self.ctx.webhooks.start()  # (sent where runs are executed)
        await self.approval_feed.start()

    async def stop(self) -> None:
        """Stop the worker and close the storage."""
        await self.approval_feed.stop()
        await self.crons.stop()
        await self.threads.stop_sweeper()
        if self.worker is not None:
            await self.worker.stop()
        await self.ctx.webhooks.stop()
        await self.ctx.storage.close()


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {err.get('msg')}")
    return "Invalid request: " + "; ".join(parts)


ERROR_BODY = {
    "title": "Error",
    "description": "Every error answer: what was wrong, as text.",
    "type": "object",
    "properties": {"detail": {"type": "string", "title": "Detail"}},
    "required": ["detail"],
}


def _schema_fixups(app: FastAPI, path_order: list[str]) -> None:
    """/openapi.json describes the 422 body the server sends (``{"detail": str}``, see
    ``_validation_detail``), not FastAPI's default list of errors; and lists its paths
    in ``path_order`` (the others after them, as they come), whatever order the
    routers are tried in."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = ERROR_BODY
                components.pop("ValidationError", None)
            paths = schema.get("paths", {})
            ordered = {path: paths[path] for path in path_order if path in paths}
            schema["paths"] = {**ordered, **paths}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


#: the order /openapi.json lists the API's paths in
_SCHEMA_ORDER = (meta, assistants, threads, runs, crons, store)
#: the order requests are matched in: FastAPI tries every route of a router before the
#: next router's (about 1.5 us each), so the routes of a run's round trip come first
_MATCH_ORDER = (runs, threads, meta, assistants, crons, store)


class _InternalErrors:
    """An error no handler knew - a bug, a library failing - is logged with its
    traceback and answered ``500`` with a JSON ``detail`` naming its type, the request
    ending normally: left to uvicorn, the connection was closed under the client (a
    reset where the official client retries, repeating a write that was made)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # (the answer is on its way: only the connection can end)
                raise
            log.error("%s %s failed", scope.get("method"), scope.get("path"), exc_info=exc)
            await json_response(
                {"detail": f"Internal server error ({type(exc).__name__}); the server's "
                           "log has its traceback."}, status=500)(scope, receive, send)


def create_app(server: Server) -> FastAPI:
    """The ASGI app serving ``server`` (started and stopped with the app's lifespan)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="threadloom server",
        description="LangGraph's Agent Server API, served by threadloom.",
        lifespan=lifespan,
    )
    app.state.server = server

    @app.exception_handler(ServerError)
    async def server_error(request: Request, exc: ServerError) -> Response:
        body: dict[str, Any] = {"detail": exc.detail}
        body.update(getattr(exc, "extra", None) or {})
        return json_response(body, status=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return json_response({"detail": _validation_detail(exc)}, status=422)

    if server.ctx.storage.shared:  # a database server, which may go away for a while
        import psycopg

        @app.exception_handler(psycopg.OperationalError)
        async def database_gone(request: Request, exc: psycopg.OperationalError) -> Response:
            if not server.ctx.storage.unavailable(exc):
                log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
                return json_response({"detail": "Internal Server Error"}, status=500)
            log.warning("%s %s: the database went away (%s: %s)", request.method,
                        request.url.path, type(exc).__name__, str(exc).strip())
            return json_response(
                {"detail": "The server's database went away (a connection lost, the "
                           "database restarting): try again. A write may or may not have "
                           "been done."},
                status=503, headers={"Retry-After": "1"})

    # (inside CORS, added next: a browser's requests get its headers from either)
    app.add_middleware(HotRoutes, routes=[route for module in _MATCH_ORDER
                                          for route in module.router.routes], caller=caller)
    app.add_middleware(_InternalErrors)  # around the hot routes too
    cors = server.ctx.config.cors
    if cors is not None or server.ctx.config.dev:
        cors = cors or {}
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors.get("allow_origins", ["*"]),
            allow_methods=cors.get("allow_methods", ["*"]),
            allow_headers=cors.get("allow_headers", ["*"]),
            expose_headers=cors.get("expose_headers", ["Content-Location", "Location"]),
        )
    _schema_fixups(app, [getattr(route, "path", "") for module in _SCHEMA_ORDER
                         for route in module.router.routes])
    for module in _MATCH_ORDER:
        app.include_router(module.router)
    from threadloom.server.routes import approvals, inbox  # the approval inbox

    app.include_router(approvals.router)
    app.include_router(inbox.router)
    return app
