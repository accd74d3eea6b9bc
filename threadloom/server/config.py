"""The server's configuration: a ``langgraph.json``-style file, read as the reference does.

    {
      "graphs": {"agent": "./agent.py:graph", "other": "mypkg.other:graph"},
      "auth": {
        "path": "./auth.py:auth",                       # a langgraph_sdk.Auth object
        "api_keys": {"secret-1": {"identity": "alice", "permissions": ["finance"]}}
      },
      "http": {"cors": {"allow_origins": ["https://inbox.example"]}},
      "webhooks": {
        "secret": "...",                                # or $THREADLOOM_WEBHOOK_SECRET
        "url": "https://hooks.example/approvals",       # approval events go here
        "events": ["requested", "answered", "expired"]  # which ones (default: all)
      }
    }

Graph specs are ``./file.py:attr`` (relative to the config file) or ``module:attr``
(importable, the config file's folder first on the import path); ``attr`` may be a
compiled graph, a ``StateGraph`` builder or a function of the checkpointer. Every
graph runs on the server's checkpointer and store (``threadloom.cli.bind_graph``):
threads live in the server's database, whatever checkpointer the graph was compiled
with. API keys may also come from ``$THREADLOOM_API_KEYS`` (the same JSON object).

``webhooks.secret`` signs every webhook (a run's ``webhook`` and the approval events:
HMAC-SHA256, see ``threadloom.server.webhooks``). With ``webhooks.url``, an approval
being requested, answered or expiring is POSTed there (``webhooks.events`` picks which),
by the process applying approval deadlines, retried like a run's webhook.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RUN_SLOTS", "ServerConfig", "import_object", "load_config"]

#: the runs a worker executes at once by default. A run mostly waits (on a model, a
#: tool, a person's answer read back): a worker process holds many at little cost, and
#: with too few slots queued runs wait for a slot while the CPU idles (bench/RESULTS.md,
#: "Run slots": 8 slots gave a quarter of the round trips 32 did when nodes wait 0.2 s,
#: the same when they only compute). LangGraph's Agent Server runs 10 a worker.
RUN_SLOTS = 32
#: how long ``threadloom serve`` / ``worker`` wait for their PostgreSQL database to
#: accept connections when they start (a database starting beside them, a failover)
DATABASE_WAIT_SECONDS = 30.0


@dataclass
class ServerConfig:
    """What ``threadloom serve`` serves and how it checks callers."""

    graphs: dict[str, str] = field(default_factory=dict)
    auth_path: str | None = None
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    cors: dict[str, Any] | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    dev: bool = False
    database: str = "threadloom.db"
    #: concurrent runs a worker executes (the embedded one, or ``threadloom worker``)
    workers: int = RUN_SLOTS
    #: a worker that has not renewed its lease on a run for this long loses the run
    lease_seconds: float = 30.0
    #: HMAC key signing webhook deliveries (None: unsigned)
    webhook_secret: str | None = None
    #: where approval events are POSTed (None: nowhere)
    webhook_url: str | None = None
    #: which approval events are POSTed (``webhooks.APPROVAL_EVENTS``)
    webhook_events: tuple[str, ...] = ("requested", "answered", "expired")

    @property
    def has_auth(self) -> bool:
        """Whether callers are authenticated (custom auth or API keys)."""
        return bool(self.auth_path or self.api_keys)


def load_config(path: str | os.PathLike[str] | None, **overrides: Any) -> ServerConfig:
    """Read a config file (None: an empty config) and apply ``overrides`` that are set."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise SystemExit(f"--config {str(path)!r}: no such file.")
        try:
            data = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--config {str(path)!r} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SystemExit(f"--config {str(path)!r} must hold a JSON object.")
        base = file.resolve().parent
    graphs = data.get("graphs") or {}
    if not isinstance(graphs, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in graphs.items()
    ):
        raise SystemExit('"graphs" must map graph ids to "./file.py:attr" strings.')
    auth = data.get("auth") or {}
    if not isinstance(auth, dict):
        raise SystemExit('"auth" must be an object: {"path": "./auth.py:auth"}.')
    api_keys = dict(auth.get("api_keys") or {})
    env_keys = os.environ.get("THREADLOOM_API_KEYS")
    if env_keys:
        try:
            api_keys.update(json.loads(env_keys))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"$THREADLOOM_API_KEYS is not a JSON object: {exc}") from exc
    for key, who in api_keys.items():
        if not isinstance(who, dict) or not isinstance(who.get("identity"), str):
            raise SystemExit(
                f"API key {key[:4]}...: map it to {{\"identity\": \"alice\", "
                "\"permissions\": [...]}}."
            )
    webhooks = {} if data.get("webhooks") is None else data["webhooks"]
    if not isinstance(webhooks, dict):
        raise SystemExit('"webhooks" must be an object: {"url": ..., "secret": ..., '
                         '"events": [...]}.')
    config = ServerConfig(
        graphs=dict(graphs),
        auth_path=auth.get("path"),
        api_keys=api_keys,
        cors=(data.get("http") or {}).get("cors"),
        base_dir=base,
        webhook_secret=webhooks.get("secret") or os.environ.get("THREADLOOM_WEBHOOK_SECRET"),
        webhook_url=_webhook_url(webhooks.get("url")),
        webhook_events=_webhook_events(webhooks.get("events")),
    )
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    return config


def _webhook_url(url: Any) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise SystemExit(f'"webhooks.url" must be an http:// or https:// URL, not {url!r}.')
    return url


def _webhook_events(events: Any) -> tuple[str, ...]:
    from threadloom.server.webhooks import APPROVAL_EVENTS

    if events is None:
        return APPROVAL_EVENTS
    if not isinstance(events, list) or any(e not in APPROVAL_EVENTS for e in events):
        raise SystemExit(
            f'"webhooks.events" must be a list of {list(APPROVAL_EVENTS)}, not {events!r}.'
        )
    return tuple(events)


def import_object(spec: str, base_dir: Path, *, what: str) -> Any:
    """The object a ``./file.py:attr`` or ``module:attr`` spec names."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise SystemExit(f"{what} {spec!r}: use ./file.py:attr or module:attr.")
    if target.endswith(".py") or "/" in target or target.startswith("."):
        file = (base_dir / target).resolve()
        if not file.is_file():
            raise SystemExit(f"{what} {spec!r}: no such file {str(file)!r}.")
        name = f"threadloom_served_{file.stem}_{abs(hash(str(file)))}"
        module = sys.modules.get(name)
        if module is None:
            module_spec = importlib.util.spec_from_file_location(name, file)
            if module_spec is None or module_spec.loader is None:
                raise SystemExit(f"{what} {spec!r}: cannot import {str(file)!r}.")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            if str(file.parent) not in sys.path:
                sys.path.insert(0, str(file.parent))
            module_spec.loader.exec_module(module)
    else:
        if str(base_dir) not in sys.path:
            sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise SystemExit(f"{what} {spec!r}: cannot import {target!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SystemExit(f"{what} {spec!r}: {target!r} has no attribute {attr!r}.")
        obj = getattr(obj, part)
    return obj
