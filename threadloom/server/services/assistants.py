"""Assistants: a graph plus a config; one system assistant per served graph.

System assistants are made at startup with the reference's ids
(``uuid5(6ba7b821-..., graph_id)``), ``metadata = {"created_by": "system"}``. A run's
``assistant_id`` may be an assistant id or a graph id (its system assistant).
"""

from __future__ import annotations

import warnings
from typing import Any

from threadloom.server.auth import AuthUser
from threadloom.server.context import ServerContext, check_uuid, visible
from threadloom.server.errors import NotFound, Unprocessable, unprocessable_on
from threadloom.server.records import (
    check_filter,
    merge_filters,
    new_id,
    now_iso,
    select_fields,
    system_assistant_id,
)
from threadloom.server.serde import jsonable

__all__ = ["AssistantService"]


def _context_of(config: dict[str, Any] | None, context: dict[str, Any] | None) -> dict[str, Any]:
    if context is not None:
        return context
    return dict((config or {}).get("configurable") or {})


class AssistantService:
    """Create, read, version and search assistants; graph drawings and schemas."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx

    async def ensure_system_assistants(self) -> None:
        """One assistant per served graph, with its stable id (idempotent)."""
        for graph_id in self.ctx.graphs.ids():
            now = now_iso()
            await self.ctx.storage.create_assistant(
                {
                    "assistant_id": system_assistant_id(graph_id),
                    "graph_id": graph_id,
                    "name": graph_id,
                    "description": None,
                    "config": {},
                    "context": {},
                    "metadata": {"created_by": "system"},
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                },
                if_exists="do_nothing",
            )

    async def resolve(self, assistant_id: str) -> dict[str, Any]:
        """The assistant an id or graph id names (422 for anything else)."""
        assistant_id = self.key(assistant_id)
        return self.found(assistant_id, await self.ctx.storage.get_assistant(assistant_id))

    def key(self, assistant_id: str) -> str:
        """The assistant id an id or graph id names (422 for anything else)."""
        if assistant_id in self.ctx.graphs:
            return system_assistant_id(assistant_id)
        try:
            return check_uuid(assistant_id, "assistant")
        except Unprocessable:
            raise Unprocessable(
                f"Invalid assistant_id {assistant_id!r}: give an assistant id (a UUID) or "
                f"one of the graph ids {self.ctx.graphs.ids()}."
            ) from None

    @staticmethod
    def found(assistant_id: str, record: dict[str, Any] | None) -> dict[str, Any]:
        """``record``, the assistant ``assistant_id`` read (404 when it was None)."""
        if record is None:
            raise NotFound(f"Assistant {assistant_id} not found.")
        return record

    async def _readable(
        self, user: AuthUser, assistant_id: str, action: str = "read"
    ) -> dict[str, Any]:
        check_uuid(assistant_id, "assistant")
        filt = await self.ctx.authorize(user, "assistants", action,
                                        {"assistant_id": assistant_id})
        record = await self.ctx.storage.get_assistant(assistant_id)
        return visible(record, filt, f"Assistant {assistant_id}")

    async def create(self, user: AuthUser, body: dict[str, Any]) -> dict[str, Any]:
        value = dict(body)
        value["metadata"] = dict(value.get("metadata") or {})
        await self.ctx.authorize(user, "assistants", "create", value)
        graph_id = value["graph_id"]
        self.ctx.graphs.get(graph_id)  # 404 naming the served graphs
        assistant_id = value.get("assistant_id") or new_id()
        check_uuid(assistant_id, "assistant")
        now = now_iso()
        config = value.get("config") or {}
        return await self.ctx.storage.create_assistant(
            {
                "assistant_id": assistant_id,
                "graph_id": graph_id,
                "name": value.get("name") or "Untitled",
                "description": value.get("description"),
                "config": config,
                "context": _context_of(config, value.get("context")),
                "metadata": value["metadata"],
                "version": 1,
                "created_at": now,
                "updated_at": now,
            },
            if_exists=value.get("if_exists") or "raise",
        )

    async def get(self, user: AuthUser, assistant_id: str) -> dict[str, Any]:
        return await self._readable(user, assistant_id)

    async def update(
        self, user: AuthUser, assistant_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        await self._readable(user, assistant_id, "update")
        changes = dict(body)
        if changes.get("graph_id") is not None:
            self.ctx.graphs.get(changes["graph_id"])
        if changes.get("config") is not None and changes.get("context") is None:
            changes["context"] = _context_of(changes["config"], None)
        record = await self.ctx.storage.update_assistant(assistant_id, changes)
        if record is None:
            raise NotFound(f"Assistant {assistant_id} not found.")
        return record

    async def delete(self, user: AuthUser, assistant_id: str, delete_threads: bool) -> None:
        await self._readable(user, assistant_id, "delete")
        if delete_threads:
            for thread in await self.ctx.storage.search_threads(
                ids=None, metadata={"assistant_id": assistant_id}, values=None, status=None,
                limit=-1, offset=0, sort_by=None, sort_order=None,
            ):
                await self.ctx.storage.delete_thread(thread["thread_id"])
        if not await self.ctx.storage.delete_assistant(assistant_id):
            raise NotFound(f"Assistant {assistant_id} not found.")

    async def search(self, user: AuthUser, body: dict[str, Any]) -> list[dict[str, Any]]:
        with unprocessable_on(ValueError, what="Refused search"):
            check_filter(body.get("metadata"), "metadata")
        filt = await self.ctx.authorize(user, "assistants", "search", body)
        metadata = merge_filters(body.get("metadata"), filt)
        if metadata is None:
            return []
        rows = await self.ctx.storage.search_assistants(
            graph_id=body.get("graph_id"), name=body.get("name"), metadata=metadata,
            limit=body.get("limit", 10), offset=body.get("offset", 0),
            sort_by=body.get("sort_by"), sort_order=body.get("sort_order"),
        )
        return select_fields(rows, body.get("select"))

    async def count(self, user: AuthUser, body: dict[str, Any]) -> int:
        with unprocessable_on(ValueError, what="Refused search"):
            check_filter(body.get("metadata"), "metadata")
        filt = await self.ctx.authorize(user, "assistants", "search", body)
        metadata = merge_filters(body.get("metadata"), filt)
        if metadata is None:
            return 0
        return await self.ctx.storage.count_assistants(
            graph_id=body.get("graph_id"), name=body.get("name"), metadata=metadata
        )

    async def versions(self, user: AuthUser, assistant_id: str, body: dict[str, Any]) -> list[Any]:
        await self._readable(user, assistant_id)
        return await self.ctx.storage.assistant_versions(
            assistant_id, metadata=body.get("metadata"), limit=body.get("limit", 10),
            offset=body.get("offset", 0),
        )

    async def set_latest(self, user: AuthUser, assistant_id: str, version: int) -> dict[str, Any]:
        await self._readable(user, assistant_id, "update")
        record = await self.ctx.storage.set_assistant_version(assistant_id, version)
        if record is None:
            raise NotFound(f"Assistant {assistant_id} has no version {version}.")
        return record

    async def graph(self, user: AuthUser, assistant_id: str, xray: int | bool) -> dict[str, Any]:
        record = await self._readable(user, assistant_id)
        graph = self.ctx.graphs.get(record["graph_id"])
        drawn: dict[str, Any] = jsonable(graph.get_graph(xray=xray).to_json())
        return drawn

    async def schemas(self, user: AuthUser, assistant_id: str) -> dict[str, Any]:
        record = await self._readable(user, assistant_id)
        graph = self.ctx.graphs.get(record["graph_id"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config_schema = _safe(graph.get_config_jsonschema)
        return {
            "graph_id": record["graph_id"],
            "input_schema": _safe(graph.get_input_jsonschema),
            "output_schema": _safe(graph.get_output_jsonschema),
            "state_schema": _safe(lambda: _state_jsonschema(graph, record["graph_id"])),
            "config_schema": config_schema,
            "context_schema": _safe(graph.get_context_jsonschema),
        }

    async def subgraphs(self, user: AuthUser, assistant_id: str, namespace: str | None,
                        recurse: bool) -> dict[str, Any]:
        record = await self._readable(user, assistant_id)
        graph = self.ctx.graphs.get(record["graph_id"])
        out = {}
        for ns, sub in graph.get_subgraphs(namespace=namespace, recurse=recurse):
            out[ns] = {
                "graph_id": record["graph_id"],
                "input_schema": _safe(sub.get_input_jsonschema),
                "output_schema": _safe(sub.get_output_jsonschema),
                "state_schema": _safe(sub.get_output_jsonschema),
                "config_schema": None,
                "context_schema": _safe(sub.get_context_jsonschema),
            }
        return out


def _state_jsonschema(graph: Any, graph_id: str) -> Any:
    """The JSON schema of a graph's whole state, as the reference serves it: every
    state key (managed ones left out) optional with a null default, titled
    ``<graph id>_state``."""
    from threadloom._schema import io_model

    model = io_model(graph.builder.state_schema, graph.builder.managed)
    if model is None:
        return graph.get_output_jsonschema()
    schema = dict(model.model_json_schema())
    schema.pop("required", None)
    schema["properties"] = {k: {**v, "default": None}
                            for k, v in (schema.get("properties") or {}).items()}
    schema["title"] = f"{graph_id}_state"
    return schema


def _safe(fn: Any) -> Any:
    try:
        return jsonable(fn())
    except Exception:  # a schema that cannot be drawn is left out, not a failed request
        return None
