"""Webhooks: the run, POSTed to the run's ``webhook`` URL when it ends; approval events,
POSTed to the configured URL.

The body of a run's webhook is the run record plus ``values`` (the run's output: the
thread's values, with ``__interrupt__`` when it paused for a person, or ``__error__``).

With ``"webhooks": {"url": "https://...", "events": [...]}`` in the config, every
approval event (``APPROVAL_EVENTS``: ``requested``, ``answered``, ``expired``; all of
them by default) is POSTed there as ``{"event": "approval.<kind>", "key", "thread_id",
"graph_id", "pending", "request", "decision", "sent_at"}`` - ``request`` as the inbox
lists it, ``decision`` the audit record that answered it. The process that applies
approval deadlines sends them (one process at a time on PostgreSQL), so each event is
sent once. With a secret
(``"webhooks": {"secret": ...}`` in the config, or ``$THREADLOOM_WEBHOOK_SECRET``) each
request carries ``X-Threadloom-Timestamp`` and ``X-Threadloom-Signature: sha256=<hex>``,
the HMAC-SHA256 of ``"<timestamp>.<body>"``, so the receiver can check it came from this
server and is fresh. A failed delivery (transport error, 429 or 5xx) is retried with
backoff, ``attempts`` times in all.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

from threadloom.server import serde

__all__ = ["APPROVAL_EVENTS", "deliver", "send", "sign"]

APPROVAL_EVENTS = ("requested", "answered", "expired")
"""The approval events a webhook may be sent for (``"webhooks": {"events": [...]}``)."""

log = logging.getLogger("threadloom.server")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Threadloom-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


async def deliver(url: str, payload: Any, *, secret: str | None, attempts: int = 4,
                  backoff: float = 0.5) -> bool:
    """POST ``payload`` to ``url``; True once a 2xx/3xx/4xx (not 429) answer came."""
    import httpx

    body = serde.dumps(payload)
    async with httpx.AsyncClient(timeout=10) as http:
        for attempt in range(attempts):
            stamp = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Threadloom-Timestamp": stamp}
            if secret:
                headers["X-Threadloom-Signature"] = sign(secret, stamp, body)
            try:
                response = await http.post(url, content=body, headers=headers)
                if response.status_code != 429 and response.status_code < 500:
                    return True
                log.warning("webhook %s answered %s", url, response.status_code)
            except httpx.HTTPError as exc:
                log.warning("webhook %s failed: %s", url, exc)
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff * 2**attempt)
    return False


_PENDING: set[asyncio.Task[bool]] = set()


def send(url: str, payload: Any, *, secret: str | None, name: str) -> asyncio.Task[bool]:
    """``deliver`` in the background (the task is kept until it ends)."""
    task = asyncio.create_task(deliver(url, payload, secret=secret), name=name)
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)
    return task
