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
server and is fresh.

Deliveries are kept in the server's database until sent (``WebhookOutbox``; the
storage's ``queue_webhook``), not in the memory of the process that made them: a
receiver down for a while (a deploy of it, a network cut), or the sending process
stopped or killed, delays a webhook - it does not lose it. The processes executing runs
send them (on PostgreSQL every worker takes its share, each delivery held by one at a
time); a failed delivery (transport error, 429 or 5xx) is tried again after 0.5 s,
doubling up to ``RETRY_CAP`` seconds apart, ``ATTEMPTS`` times in all (about 45 minutes),
then dropped with an error logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from typing import Any

from threadloom.server import serde
from threadloom.server.storage.base import RunWebhook

__all__ = ["APPROVAL_EVENTS", "ATTEMPTS", "RETRY_CAP", "WebhookOutbox", "post", "run_webhook",
           "sign"]

APPROVAL_EVENTS = ("requested", "answered", "expired")
"""The approval events a webhook may be sent for (``"webhooks": {"events": [...]}``)."""

log = logging.getLogger("threadloom.server")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Threadloom-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


#: the most attempts at one delivery; the longest wait between two (seconds)
ATTEMPTS = 16
RETRY_CAP = 300.0


async def post(http: Any, url: str, body: bytes, *, secret: str | None) -> str | None:
    """One attempt at a delivery: POST ``body`` to ``url``, signed when there is a
    secret; None once answered (2xx-4xx but 429: a 4xx will not change), else what went
    wrong."""
    import httpx

    stamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Threadloom-Timestamp": stamp}
    if secret:
        headers["X-Threadloom-Signature"] = sign(secret, stamp, body)
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code != 429 and response.status_code < 500:
        return None
    return f"answered {response.status_code}"


def run_webhook(url: str, output: Any) -> RunWebhook:
    """The delivery of a run's webhook, kept with the run's end (``Storage.end_run``):
    the ended run's record plus ``values``, its ``output``. A body that cannot be made
    is logged, and no delivery kept: the run's end is written all the same."""

    def delivery(run: dict[str, Any]) -> tuple[str, bytes, str] | None:
        from threadloom.server.services.runs import public_run

        try:
            body = serde.dumps({**public_run(run), "values": output})
        except Exception as exc:
            log.error("the webhook of run %s could not be made: %s: %s", run["run_id"],
                      type(exc).__name__, exc)
            return None
        return url, body, f"run {run['run_id']}"

    return delivery


class WebhookOutbox:
    """Webhooks kept in ``storage`` until sent (see the module docstring): ``queue``
    keeps one; ``start`` (in a process executing runs) sends those due until ``stop``."""

    #: how long a delivery taken is held (longer than an attempt's 10 s timeout)
    lease_seconds = 30.0
    #: the most deliveries taken (and attempted at once) per look
    batch = 32

    def __init__(self, storage: Any, secret: str | None, *, interval: float = 1.0) -> None:
        self.storage = storage
        self.secret = secret
        #: how often the sender looks for deliveries due (a ``queue`` here wakes it)
        self.interval = interval
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def queue(self, url: str, payload: Any, *, name: str) -> None:
        """Keep a POST of ``payload`` (as JSON) to ``url`` until it is sent."""
        await self.storage.queue_webhook(url, serde.dumps(payload), name)
        self.wake()

    def wake(self) -> None:
        """Look for deliveries due now (one was just kept, e.g. with a run's end)."""
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Send the deliveries due, from now until ``stop``."""
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop(), name="threadloom-webhooks")

    async def stop(self) -> None:
        """Stop sending (deliveries not sent stay kept, for the next process)."""
        from threadloom.server.periodic import cancel

        await cancel(self._task)
        self._task = None

    async def _loop(self) -> None:
        import httpx

        from threadloom.server.periodic import log_failure

        assert self._wake is not None
        async with httpx.AsyncClient(timeout=10) as http:
            while True:
                self._wake.clear()
                try:
                    taken = await self.storage.take_webhooks(self.batch, self.lease_seconds)
                    await asyncio.gather(*(self._send(http, item) for item in taken))
                except Exception as exc:  # the database is away: look again later
                    log_failure(self.storage, "sending webhooks", exc)
                    taken = []
                if len(taken) < self.batch:  # (else more are due: at once)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.interval)

    async def _send(self, http: Any, item: dict[str, Any]) -> None:
        failed = await post(http, item["url"], item["body"], secret=self.secret)
        attempts = item["attempts"] + 1
        if failed is None:
            await self.storage.end_webhook(item["id"])
            return
        if attempts >= ATTEMPTS:
            log.error("webhook %s to %s dropped after %s attempts: %s", item["name"],
                      item["url"], attempts, failed)
            await self.storage.end_webhook(item["id"])
            return
        log.warning("webhook %s to %s: %s (attempt %s; tried again)", item["name"],
                    item["url"], failed, attempts)
        delay = min(RETRY_CAP, 0.5 * 2 ** (attempts - 1))
        await self.storage.end_webhook(item["id"], retry_at=time.time() + delay, error=failed)
