"""Crons: runs started on a schedule (cron syntax, in a time zone, until an end time).

A cron keeps the run to start as its ``payload``; ``tick`` (called every few seconds by
the server, or by a test with a chosen time) starts a run for every enabled cron whose
``next_run_date`` has come - on its thread, or on a new thread (deleted after the run
unless ``on_run_completed="keep"``) - and computes the next date (a cron past its
``end_time`` is disabled).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from threadloom.server.auth import AuthUser
from threadloom.server.context import ServerContext, check_uuid
from threadloom.server.errors import NotFound, Unprocessable
from threadloom.server.periodic import Periodic
from threadloom.server.records import new_id, now_iso, select_fields

__all__ = ["CronService"]

log = logging.getLogger("threadloom.server")

_RUN_FIELDS = (
    "assistant_id", "input", "config", "context", "metadata", "interrupt_before",
    "interrupt_after", "webhook", "multitask_strategy", "stream_mode", "stream_subgraphs",
    "stream_resumable", "durability",
)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(f"Unknown timezone {name!r}: use an IANA name.") from None


def next_run(schedule: str, timezone: str | None, after: datetime) -> str:
    """The first time ``schedule`` fires after ``after``, ISO 8601 in UTC."""
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise Unprocessable(f"Invalid cron schedule {schedule!r}: use cron syntax, "
                            "e.g. '*/5 * * * *'.")
    local = after.astimezone(_zone(timezone))
    fires: datetime = croniter(schedule, local).get_next(datetime)
    return fires.astimezone(UTC).isoformat()


class CronService:
    """Create, search and fire crons."""

    def __init__(self, ctx: ServerContext, runs: Any) -> None:
        self.ctx = ctx
        self.runs = runs
        self._timer = Periodic("firing crons", self.tick, ctx.storage)

    async def create(
        self, user: AuthUser, thread_id: str | None, body: dict[str, Any]
    ) -> dict[str, Any]:
        value = dict(body)
        await self.ctx.authorize(user, "crons", "create", value)
        assistant = await self.runs.assistants.resolve(value["assistant_id"])
        if thread_id is not None:
            await self.runs.threads.readable(user, thread_id, "create_run")
        now = now_iso()
        cron_id = new_id()
        payload = {k: value[k] for k in _RUN_FIELDS if value.get(k) is not None}
        payload["assistant_id"] = assistant["assistant_id"]
        # as the reference keeps them: the schedule, and the cron's id in the config of
        # the runs it starts (a graph can tell a scheduled run by it)
        payload["schedule"] = value["schedule"]
        config = dict(payload.get("config") or {})
        payload["config"] = {**config, "configurable": {
            **(config.get("configurable") or {}), "cron_id": cron_id}}
        payload["_user"] = user.to_dict()
        return _public(await self.ctx.storage.create_cron({
            "cron_id": cron_id,
            "assistant_id": assistant["assistant_id"],
            "thread_id": thread_id,
            "user_id": user.identity,
            "schedule": value["schedule"],
            "timezone": value.get("timezone"),
            "end_time": value.get("end_time"),
            "payload": payload,
            "metadata": value.get("metadata") or {},
            "enabled": value.get("enabled", True),
            "on_run_completed": value.get("on_run_completed") or (
                None if thread_id else "delete"),
            "next_run_date": next_run(value["schedule"], value.get("timezone"),
                                      datetime.now(UTC)),
            "created_at": now,
            "updated_at": now,
        }))

    async def _own(self, user: AuthUser, cron_id: str, action: str) -> dict[str, Any]:
        check_uuid(cron_id, "cron")
        filt = await self.ctx.authorize(user, "crons", action, {"cron_id": cron_id})
        cron = await self.ctx.storage.get_cron(cron_id)
        if cron is None or (filt and not all(
            (cron.get("metadata") or {}).get(k) == v for k, v in filt.items()
        )):
            raise NotFound(f"Cron {cron_id} not found.")
        return cron

    async def get(self, user: AuthUser, cron_id: str) -> dict[str, Any]:
        return _public(await self._own(user, cron_id, "read"))

    async def update(self, user: AuthUser, cron_id: str, body: dict[str, Any]) -> dict[str, Any]:
        cron = await self._own(user, cron_id, "update")
        fields: dict[str, Any] = {}
        payload = dict(cron["payload"])
        for key, value in body.items():
            if value is None and key in ("schedule", "enabled", "on_run_completed",
                                         "metadata"):
                continue  # null: left as it is (these have no "unset" value)
            if key in ("schedule", "end_time", "enabled", "timezone", "on_run_completed"):
                fields[key] = value
                if key == "schedule":
                    payload["schedule"] = value
            elif key == "metadata":
                fields["metadata"] = {**cron["metadata"], **value}
            elif key in _RUN_FIELDS:
                payload[key] = value
        if isinstance(payload.get("config"), dict):  # (a new config keeps the cron's id)
            config = payload["config"]
            payload["config"] = {**config, "configurable": {
                **(config.get("configurable") or {}), "cron_id": cron_id}}
        fields["payload"] = payload
        if "schedule" in fields or "timezone" in fields:
            fields["next_run_date"] = next_run(
                fields.get("schedule", cron["schedule"]),
                fields.get("timezone", cron["timezone"]), datetime.now(UTC),
            )
        return _public(await self.ctx.storage.update_cron(cron_id, **fields))

    async def delete(self, user: AuthUser, cron_id: str) -> None:
        await self._own(user, cron_id, "delete")
        await self.ctx.storage.delete_cron(cron_id)

    async def search(self, user: AuthUser, body: dict[str, Any]) -> list[dict[str, Any]]:
        filt = await self.ctx.authorize(user, "crons", "search", body)
        rows = await self.ctx.storage.search_crons(
            assistant_id=body.get("assistant_id"), thread_id=body.get("thread_id"),
            enabled=body.get("enabled"), limit=-1, offset=0,
            sort_by=body.get("sort_by"), sort_order=body.get("sort_order"),
        )
        if filt:
            rows = [r for r in rows if all((r.get("metadata") or {}).get(k) == v
                                           for k, v in filt.items())]
        offset, limit = body.get("offset", 0), body.get("limit", 10)
        rows = [_public(r) for r in rows[offset: offset + limit]]
        return select_fields(rows, body.get("select"))

    async def count(self, user: AuthUser, body: dict[str, Any]) -> int:
        return len(await self.search(user, {**body, "limit": 1_000_000, "offset": 0}))

    # -- firing --------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Start the runs of every cron due at ``now``; their run ids."""
        now = now or datetime.now(UTC)
        started: list[str] = []
        if not await self.ctx.storage.lead("crons"):
            return started  # another worker fires them
        for cron in await self.ctx.storage.due_crons(now.isoformat()):
            payload = dict(cron["payload"])
            user = AuthUser.from_dict(payload.pop("_user", None))
            body = {**payload, "on_completion": cron.get("on_run_completed") or "delete"}
            try:
                run, _ = await self.runs.create(user, cron["thread_id"], body)
                started.append(run["run_id"])
            except Exception:  # a cron whose thread or assistant went away: keep going
                log.exception("cron %s could not start its run", cron["cron_id"])
            fields: dict[str, Any] = {
                "next_run_date": next_run(cron["schedule"], cron["timezone"], now)
            }
            if cron.get("end_time") and fields["next_run_date"] > _utc(cron["end_time"]):
                fields["enabled"] = False
            await self.ctx.storage.update_cron(cron["cron_id"], **fields)
        return started

    async def start(self, interval: float = 5.0) -> None:
        """Fire due crons every ``interval`` seconds in the background."""
        self._timer.start(interval)

    async def stop(self) -> None:
        """Stop firing crons."""
        await self._timer.stop()


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


def _public(cron: dict[str, Any] | None) -> dict[str, Any]:
    if cron is None:
        raise NotFound("Cron not found.")
    payload = {k: v for k, v in (cron.get("payload") or {}).items() if not k.startswith("_")}
    return {**cron, "payload": payload}
