"""``ServerContext``: what every service of one server shares, and the checks they all make.

The services (threads, runs, assistants, crons, store, approvals) are built around one
context, made once by ``Server``, instead of each holding the configuration, storage,
graphs and authorizer. ``check_uuid`` and ``visible`` live here because every service
refuses a malformed id, and hides a record the caller's auth filter does not match, in
the same words.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from threadloom.server.auth import SERVER, Authorizer, AuthUser
from threadloom.server.config import ServerConfig
from threadloom.server.errors import NotFound, Unprocessable
from threadloom.server.graphs import GraphRegistry
from threadloom.server.records import matches
from threadloom.server.storage.base import Storage
from threadloom.server.webhooks import WebhookOutbox

__all__ = ["ServerContext", "check_uuid", "visible"]


@dataclass
class ServerContext:
    """The configuration, storage, graphs and authorizer of one server, and its
    webhooks (kept in the storage until sent)."""

    config: ServerConfig
    storage: Storage
    graphs: GraphRegistry
    authorizer: Authorizer
    webhooks: WebhookOutbox

    async def authorize(
        self, user: AuthUser, resource: str, action: str, value: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The ``@auth.on`` decision for this action (see ``Authorizer.authorize``);
        the server's own actions (``SERVER``) are not the handlers' to refuse."""
        if user is SERVER:
            return None
        return await self.authorizer.authorize(user, resource, action, value)


def check_uuid(value: str, what: str) -> str:
    """``value`` if it is a UUID, else a 422 naming ``what``."""
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise Unprocessable(f"Invalid {what} ID: must be a UUID, got {value!r}.") from None
    return str(value)


def visible(
    record: dict[str, Any] | None, filter: dict[str, Any] | None, what: str
) -> dict[str, Any]:
    """``record`` when it exists and its metadata passes the auth filter, else 404."""
    if record is None or (filter and not matches(record.get("metadata") or {}, filter)):
        raise NotFound(f"{what} not found.")
    return record
