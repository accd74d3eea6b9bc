"""Threads: records, searches, and their graph state (head, a checkpoint, history, edits).

A thread's record keeps the latest ``values``, ``status`` and pending ``interrupts``
(refreshed from the checkpoint after every run and state update), so ``threads/search``
by status or values - how an inbox lists what waits for a person - reads one table.
Its graph is the one its last run used (``metadata.graph_id``), or the only graph
served.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from threadloom.server.auth import SERVER, AuthUser
from threadloom.server.context import ServerContext, check_uuid, visible
from threadloom.server.errors import (
    BadRequest,
    Conflict,
    NotFound,
    Unprocessable,
    stored_value_errors,
    unprocessable_on,
)
from threadloom.server.graphs import pending_interrupts, thread_state
from threadloom.server.periodic import Periodic
from threadloom.server.records import (
    check_filter,
    merge_filters,
    new_id,
    now_iso,
    select_fields,
)
from threadloom.server.serde import jsonable

__all__ = [
    "TTL_SWEEP_SECONDS",
    "ThreadService",
    "reviewer_config",
    "strip_client_identity",
    "thread_status",
]

#: how often the process executing runs deletes the threads whose TTL has passed
TTL_SWEEP_SECONDS = 2.0


def _ttl(value: Any) -> tuple[float, str]:
    """A request's ``ttl`` (minutes, or ``{"ttl": minutes, "strategy"}``) as
    ``(expires_at, strategy)``."""
    if isinstance(value, dict):
        minutes, strategy = value["ttl"], value.get("strategy") or "delete"
    else:
        minutes, strategy = value, "delete"
    return time.time() + float(minutes) * 60.0, strategy


def thread_status(snapshot: Any, *, failed: bool = False) -> str:
    """``error`` after a failed run, ``interrupted`` when something is next, else idle
    (``snapshot``: a ``StateSnapshot`` or a ``RunHead``)."""
    if failed:
        return "error"
    return "interrupted" if snapshot is not None and snapshot.next else "idle"


def reviewer_config(user: AuthUser) -> dict[str, Any]:
    """The configurable keys naming the caller, for the graph and for approvals: the
    reviewer identity comes from authentication, never from the request. An
    unauthenticated caller (a ``--dev`` server's) is no user: ``langgraph_auth_user``
    None and an empty id, as the reference passes it."""
    if not user.is_authenticated:
        return {"langgraph_auth_user": None, "langgraph_auth_user_id": "",
                "langgraph_auth_permissions": []}
    return {
        "langgraph_auth_user": user.to_dict(),
        "langgraph_auth_user_id": user.identity,
        "langgraph_auth_permissions": list(user.permissions),
        "reviewer": {"id": user.identity, "roles": list(user.permissions)},
    }


def strip_client_identity(configurable: dict[str, Any]) -> dict[str, Any]:
    """Drop what a client may not set itself: the reviewer, the auth user, private keys."""
    return {
        k: v for k, v in configurable.items()
        if k not in ("reviewer", "langgraph_auth_user", "langgraph_auth_user_id",
                     "langgraph_auth_permissions")
        and not k.startswith("__")
    }


class ThreadService:
    """Thread records and their state."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._sweeper = Periodic("applying thread TTLs", self.sweep_expired, ctx.storage)

    # -- records -----------------------------------------------------------------------

    async def readable(
        self, user: AuthUser, thread_id: str, action: str = "read", *, values: bool = True
    ) -> dict[str, Any]:
        """The thread if ``user`` may do ``action`` on it (404 otherwise); without
        ``values``, its record's ``values`` left unread (None)."""
        check_uuid(thread_id, "thread")
        filt = await self.ctx.authorize(user, "threads", action, {"thread_id": thread_id})
        record = await self.ctx.storage.get_thread(thread_id, values=values)
        return visible(record, filt, f"Thread {thread_id}")

    async def create(self, user: AuthUser, body: dict[str, Any]) -> dict[str, Any]:
        value = dict(body)
        value["metadata"] = dict(value.get("metadata") or {})
        thread_id = value.get("thread_id") or new_id()
        check_uuid(thread_id, "thread")
        value["thread_id"] = thread_id
        await self.ctx.authorize(user, "threads", "create", value)
        metadata = value["metadata"]
        if value.get("graph_id"):
            self.ctx.graphs.get(value["graph_id"])
            metadata.setdefault("graph_id", value["graph_id"])
        now = now_iso()
        record = await self.ctx.storage.create_thread(
            {
                "thread_id": thread_id,
                "created_at": now,
                "updated_at": now,
                "state_updated_at": now,
                "metadata": metadata,
                "status": "idle",
                "config": {},
                "values": None,
            },
            if_exists=value.get("if_exists") or "raise",
        )
        created = record["created_at"] == now
        if created and value.get("ttl") is not None:
            await self.ctx.storage.set_thread_ttl(thread_id, *_ttl(value["ttl"]))
        if value.get("supersteps") and created:
            record = await self._seed(user, record, value["supersteps"])
        return record

    async def _seed(
        self, user: AuthUser, record: dict[str, Any], supersteps: list[dict[str, Any]]
    ) -> dict[str, Any]:
        from threadloom.types import StateUpdate

        graph = self.graph_for(record)
        config = self._update_config(user, record)
        steps = [
            [StateUpdate(u.get("values"), u.get("as_node"), u.get("task_id"))
             for u in step.get("updates") or ()]
            for step in supersteps
        ]
        try:
            await graph.abulk_update_state(config, steps)
        except (ValueError, KeyError) as exc:
            raise BadRequest(f"supersteps: {exc}") from None
        seeded = await self.refresh(record["thread_id"], graph)
        if seeded is None:
            raise NotFound(f"Thread {record['thread_id']} was deleted while it was seeded.")
        return seeded

    async def get(self, user: AuthUser, thread_id: str) -> dict[str, Any]:
        return await self.readable(user, thread_id)

    async def update(self, user: AuthUser, thread_id: str, body: dict[str, Any]) -> dict[str, Any]:
        value = {"thread_id": thread_id, "metadata": dict(body.get("metadata") or {})}
        check_uuid(thread_id, "thread")
        filt = await self.ctx.authorize(user, "threads", "update", value)
        visible(await self.ctx.storage.get_thread(thread_id), filt, f"Thread {thread_id}")
        record = await self.ctx.storage.update_thread(thread_id, metadata=value["metadata"])
        if record is None:
            raise NotFound(f"Thread {thread_id} not found.")
        if body.get("ttl") is not None:  # the clock starts again
            await self.ctx.storage.set_thread_ttl(thread_id, *_ttl(body["ttl"]))
        return record

    async def delete(self, user: AuthUser, thread_id: str) -> None:
        await self.readable(user, thread_id, "delete")
        active = await self.ctx.storage.list_active_runs(thread_id)
        if active:
            await self.ctx.storage.request_cancel([r["run_id"] for r in active], "interrupt")
        if not await self.ctx.storage.delete_thread(thread_id):
            raise NotFound(f"Thread {thread_id} not found.")

    async def search_filter(self, user: AuthUser, body: dict[str, Any]
                            ) -> dict[str, Any] | None:
        """The metadata filter of ``user``'s thread search ``body``: its own merged with
        the auth handlers' (None: ``user`` may see none of the threads it asks for)."""
        with unprocessable_on(ValueError, what="Refused search"):
            check_filter(body.get("metadata"), "metadata")
            check_filter(body.get("values"), "values")
        filt = await self.ctx.authorize(user, "threads", "search", body)
        return merge_filters(body.get("metadata"), filt)

    async def search(self, user: AuthUser, body: dict[str, Any]) -> list[dict[str, Any]]:
        metadata = await self.search_filter(user, body)
        if metadata is None:
            return []
        rows = await self.ctx.storage.search_threads(
            ids=body.get("ids"), metadata=metadata, values=body.get("values"),
            status=body.get("status"), limit=body.get("limit", 10),
            offset=body.get("offset", 0), sort_by=body.get("sort_by"),
            sort_order=body.get("sort_order"),
        )
        return select_fields(rows, body.get("select"))

    async def count(self, user: AuthUser, body: dict[str, Any]) -> int:
        metadata = await self.search_filter(user, body)
        if metadata is None:
            return 0
        return await self.ctx.storage.count_threads(
            metadata=metadata, values=body.get("values"), status=body.get("status")
        )

    async def copy(self, user: AuthUser, thread_id: str) -> dict[str, Any]:
        source = await self.readable(user, thread_id)
        value = {"thread_id": new_id(), "metadata": dict(source["metadata"])}
        await self.ctx.authorize(user, "threads", "create", value)
        copy_id = str(value["thread_id"])
        now = now_iso()
        record = {
            **source,
            "thread_id": copy_id,
            "metadata": value["metadata"],
            "created_at": now,
            "updated_at": now,
            "state_updated_at": now,
            "status": "idle" if source["status"] == "busy" else source["status"],
        }
        record = await self.ctx.storage.create_thread(record, if_exists="raise")
        try:
            await self.ctx.storage.checkpointer.acopy_thread(thread_id, copy_id)
        except BaseException:
            # no half copy left behind: a thread whose record says one thing and
            # whose checkpoints another (the error, not this cleanup's, is raised)
            with contextlib.suppress(Exception):
                await self.ctx.storage.delete_thread(copy_id)
            raise
        return record

    async def prune(self, user: AuthUser, thread_ids: list[str], strategy: str) -> int:
        pruned = 0
        for thread_id in thread_ids:
            try:
                await self.readable(user, thread_id, "delete")
            except (NotFound, Unprocessable):
                continue
            if strategy == "delete":
                await self.ctx.storage.delete_thread(thread_id)
            else:
                await self.ctx.storage.checkpointer.aprune([thread_id], strategy="keep_latest")
            pruned += 1
        return pruned

    # -- TTL -------------------------------------------------------------------------------

    async def sweep_expired(self, now: float | None = None) -> list[str]:
        """Apply the TTL of every thread whose time has come (strategy ``delete``: the
        thread, its runs and checkpoints go, its active runs are cancelled); their ids.
        Only one process of a shared database does it (``Storage.lead``)."""
        if not await self.ctx.storage.lead("thread_ttl"):
            return []
        swept = []
        for thread_id, _strategy in await self.ctx.storage.expired_threads(
            time.time() if now is None else now
        ):
            with contextlib.suppress(NotFound):
                await self.delete(SERVER, thread_id)
            await self.ctx.storage.set_thread_ttl(thread_id, None)
            swept.append(thread_id)
        return swept

    async def start_sweeper(self, interval: float = TTL_SWEEP_SECONDS) -> None:
        """Apply thread TTLs every ``interval`` seconds in the background."""
        self._sweeper.start(interval)

    async def stop_sweeper(self) -> None:
        """Stop applying thread TTLs."""
        await self._sweeper.stop()

    # -- graph state -------------------------------------------------------------------

    def graph_for(self, record: dict[str, Any]) -> Any:
        """The graph of a thread (``graph_id_for``)."""
        return self.ctx.graphs.get(self.graph_id_for(record))

    def graph_id_for(self, record: dict[str, Any]) -> str:
        """The id of a thread's graph: its ``metadata.graph_id``, or the only one served."""
        graph_id = (record.get("metadata") or {}).get("graph_id")
        if graph_id is None:
            ids = self.ctx.graphs.ids()
            if len(ids) != 1:
                raise BadRequest(
                    f"Thread {record['thread_id']} has no graph yet (no run, no graph_id at "
                    f"creation) and this server serves {ids}: create the thread with "
                    "graph_id, or start a run on it first."
                )
            graph_id = ids[0]
        return str(graph_id)

    def _config(self, user: AuthUser | None, thread_id: str,
                checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
        for key in ("checkpoint_id", "checkpoint_ns", "checkpoint_map"):
            if checkpoint and checkpoint.get(key) is not None:
                conf[key] = checkpoint[key]
        if user is not None:
            conf.update(reviewer_config(user))
        return {"configurable": conf}

    def _update_config(self, user: AuthUser, record: dict[str, Any],
                       checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config of a state update: ``_config``'s, with the thread's graph id in the
        new checkpoint's metadata (as the reference's updates have it)."""
        return {**self._config(user, record["thread_id"], checkpoint),
                "metadata": {"graph_id": self.graph_id_for(record)}}

    async def get_state(self, user: AuthUser, thread_id: str, *,
                        checkpoint: dict[str, Any] | None = None,
                        subgraphs: bool = False) -> dict[str, Any]:
        record = await self.readable(user, thread_id, values=False)  # (read from the graph)
        if record["metadata"].get("graph_id") is None and len(self.ctx.graphs.ids()) != 1:
            return _empty_state(thread_id)
        graph = self.graph_for(record)
        with unprocessable_on(ValueError, *stored_value_errors(), what="Invalid checkpoint"):
            snapshot = await graph.aget_state(self._config(None, thread_id, checkpoint),
                                              subgraphs=subgraphs)
        return thread_state(snapshot)

    async def update_state(
        self, user: AuthUser, thread_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        from threadloom.errors import InvalidUpdateError

        value = {"thread_id": thread_id, "metadata": {}}
        check_uuid(thread_id, "thread")
        filt = await self.ctx.authorize(user, "threads", "update", value)
        record = visible(await self.ctx.storage.get_thread(thread_id), filt,
                         f"Thread {thread_id}")
        if await self.ctx.storage.list_active_runs(thread_id):
            raise Conflict(
                f"Thread {thread_id} has in-flight runs: wait for them to finish (or cancel "
                "them) before updating its state."
            )
        graph = self.graph_for(record)
        checkpoint = body.get("checkpoint") or (
            {"checkpoint_id": body["checkpoint_id"]} if body.get("checkpoint_id") else None
        )
        config = self._update_config(user, record, checkpoint)
        as_node = body.get("as_node")
        if as_node is not None and as_node not in graph.builder.nodes and as_node not in (
            "__start__", "__end__", "__input__", "__copy__"
        ):
            raise BadRequest(
                f"Node {as_node!r} does not exist in graph {graph.name!r}; its nodes are "
                f"{sorted(graph.builder.nodes)}."
            )
        try:
            new_config = await graph.aupdate_state(config, body.get("values"), as_node=as_node)
        except InvalidUpdateError as exc:
            raise BadRequest(str(exc)) from None
        await self.refresh(thread_id, graph)
        conf = new_config.get("configurable") or {}
        checkpoint_out = {
            "thread_id": thread_id,
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf.get("checkpoint_id"),
        }
        return {
            "checkpoint": checkpoint_out,
            "configurable": checkpoint_out,
            "checkpoint_id": checkpoint_out["checkpoint_id"],
        }

    async def history(self, user: AuthUser, thread_id: str, body: dict[str, Any]) -> list[Any]:
        record = await self.readable(user, thread_id, values=False)
        if record["metadata"].get("graph_id") is None and len(self.ctx.graphs.ids()) != 1:
            return []
        graph = self.graph_for(record)
        before = body.get("before")
        if isinstance(before, str):
            before = {"checkpoint_id": before}
        before_config = (
            {"configurable": {"thread_id": thread_id, **before}} if before else None
        )
        out = []
        # the checkpointer checks the metadata filter and the namespace
        with unprocessable_on(ValueError, *stored_value_errors(),
                              what="Invalid history query"):
            async for snapshot in graph.aget_state_history(
                self._config(None, thread_id, body.get("checkpoint")),
                filter=body.get("metadata"), before=before_config, limit=body.get("limit", 10),
            ):
                out.append(thread_state(snapshot))
        return out

    async def refresh(self, thread_id: str, graph: Any, *, error: dict[str, Any] | None = None,
                      status: str | None = None) -> dict[str, Any] | None:
        """Store the thread's latest values, status and pending interrupts."""
        snapshot = await graph.aget_state(self._config(None, thread_id))
        return await self.ctx.storage.update_thread(
            thread_id,
            values=jsonable(snapshot.values) if snapshot.config.get("configurable", {}).get(
                "checkpoint_id") else None,
            interrupts=pending_interrupts(snapshot),
            status=status or thread_status(snapshot, failed=error is not None),
            error=error,
            state_updated=True,
        )


def _empty_state(thread_id: str) -> dict[str, Any]:
    return {
        "values": {}, "next": [], "tasks": [], "checkpoint": None, "parent_checkpoint": None,
        "metadata": {}, "created_at": None, "interrupts": [], "checkpoint_id": None,
        "parent_checkpoint_id": None,
    }

