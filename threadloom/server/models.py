"""Request bodies of the HTTP API, validated by pydantic (a bad body is a 422).

Field names, types and defaults follow the Agent Server API that the official client
speaks; unknown fields are ignored, as the reference does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "MAX_OFFSET",
    "AssistantCreate",
    "AssistantSearch",
    "AssistantUpdate",
    "AssistantVersions",
    "CronCreate",
    "CronSearch",
    "CronUpdate",
    "HistoryQuery",
    "LatestVersion",
    "RunCancelMany",
    "RunCreate",
    "StateAtCheckpoint",
    "StateUpdate",
    "StoreDelete",
    "StoreNamespaces",
    "StorePut",
    "StoreSearch",
    "ThreadCreate",
    "ThreadPatch",
    "ThreadPrune",
    "ThreadSearch",
    "ThreadTTL",
]

#: the largest ``offset`` a search takes (a 32-bit database integer)
MAX_OFFSET = 2**31 - 1
SortOrder = Literal["asc", "desc"]
StreamMode = Literal[
    "values", "updates", "messages", "messages-tuple", "custom", "debug", "tasks",
    "checkpoints", "events",
]
Strategy = Literal["reject", "interrupt", "rollback", "enqueue"]
ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
# a store namespace label: the GET route joins labels with dots; no NUL (PostgreSQL)
Label = Annotated[str, Field(min_length=1, pattern=r"^[^.\x00]*$")]


def _webhook_url(url: str) -> str:
    """A webhook's URL: absolute, http or https, with a host - what a delivery can be
    made to (anything else was retried for hours, each attempt failing the same way)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an absolute http:// or https:// URL is expected, not {url!r}")
    return url


WebhookUrl = Annotated[str, Field(min_length=1, json_schema_extra={
    "format": "uri", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\s]+"}),
    AfterValidator(_webhook_url)]
Namespace = Annotated[list[Label], Field(min_length=1)]
# a field path of an item's value to index (``"a.b"``, ``"list[0]"``)
IndexPath = Annotated[str, Field(min_length=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    def data(self) -> dict[str, Any]:
        """The fields the client sent (and their defaults), as plain data."""
        return self.model_dump(exclude_unset=False)


class Checkpoint(_Body):
    """Where in a thread's history: a checkpoint id, its namespace, the subgraph map."""

    checkpoint_id: str | None = None
    checkpoint_ns: str | None = ""
    checkpoint_map: dict[str, Any] | None = None
    thread_id: str | None = None


class AssistantCreate(_Body):
    graph_id: str
    assistant_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    name: str | None = None
    description: str | None = None


class AssistantUpdate(_Body):
    graph_id: str | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None


class AssistantSearch(_Body):
    metadata: dict[str, Any] | None = None
    graph_id: str | None = None
    name: str | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal["assistant_id", "created_at", "updated_at", "name", "graph_id"] | None = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None


class AssistantVersions(_Body):
    metadata: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class LatestVersion(_Body):
    # a version the storage can hold (SQLite's and PostgreSQL's 64-bit integers): one out
    # of that range is a 422 naming it, not the driver's OverflowError as a 500
    version: int = Field(ge=-(2**63), le=2**63 - 1)


class ThreadTTL(_Body):
    """When a thread goes: ``ttl`` minutes after it was created or last given a TTL."""

    ttl: float = Field(gt=0, le=10**9, description="Minutes until the thread expires.")
    strategy: Literal["delete"] = "delete"


class ThreadCreate(_Body):
    thread_id: str | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[dict[str, Any]] | None = None
    graph_id: str | None = None
    ttl: ThreadTTL | Annotated[float, Field(gt=0, le=10**9)] | None = None


class ThreadPatch(_Body):
    metadata: dict[str, Any] | None = None
    ttl: ThreadTTL | Annotated[float, Field(gt=0, le=10**9)] | None = None


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = None
    status: ThreadStatus | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: Literal[
        "thread_id", "status", "created_at", "updated_at", "state_updated_at"
    ] | None = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None
    extract: dict[str, Any] | None = None


class ThreadPrune(_Body):
    thread_ids: list[str]
    strategy: Literal["delete", "keep_latest"] = "delete"


class StateUpdate(_Body):
    values: dict[str, Any] | list[Any] | None = None
    as_node: str | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_id: str | None = None


class StateAtCheckpoint(_Body):
    checkpoint: Checkpoint
    subgraphs: bool = False


class HistoryQuery(_Body):
    limit: int = Field(10, ge=1, le=10_000)
    before: str | Checkpoint | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: Checkpoint | None = None


class Command(_Body):
    resume: Any = None
    update: dict[str, Any] | list[Any] | None = None
    goto: Any = None


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    command: Command | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_id: str | None = None
    checkpoint_during: bool | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    feedback_keys: list[str] | None = None
    webhook: WebhookUrl | None = None
    multitask_strategy: Strategy | None = None
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    on_completion: Literal["delete", "keep"] = "delete"
    after_seconds: float | None = Field(None, ge=0)
    durability: Literal["sync", "async", "exit"] | None = None

    def data(self) -> dict[str, Any]:
        out = self.model_dump(exclude_none=True)
        if self.command is not None:
            out["command"] = self.command.model_dump(exclude_unset=True)
        if isinstance(out.get("stream_mode"), str):
            out["stream_mode"] = [out["stream_mode"]]
        return out


class RunCancelMany(_Body):
    thread_id: str | None = None
    run_ids: list[str] | None = None
    status: Literal["pending", "running", "all"] | None = None


class StorePut(_Body):
    namespace: Namespace
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[IndexPath] | None = None
    ttl: float | None = Field(None, ge=0)


class StoreDelete(_Body):
    namespace: Namespace
    key: str


class StoreSearch(_Body):
    namespace_prefix: list[Label] | None = None
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=0, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(_Body):
    prefix: list[Label] | None = None
    suffix: list[Label] | None = None
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class CronCreate(_Body):
    schedule: str
    assistant_id: str
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    webhook: WebhookUrl | None = None
    timezone: str | None = None
    end_time: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool = True
    multitask_strategy: Strategy | None = None
    stream_mode: StreamMode | list[StreamMode] | None = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None
    durability: Literal["sync", "async", "exit"] | None = None


class CronUpdate(_Body):
    schedule: str | None = None
    end_time: str | None = None
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    webhook: WebhookUrl | None = None
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    enabled: bool | None = None
    timezone: str | None = None


class CronSearch(_Body):
    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    sort_by: str | None = None
    sort_order: SortOrder | None = None
    select: list[str] | None = None
