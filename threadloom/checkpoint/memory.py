"""``InMemorySaver``: checkpoints in a dict, for tests, demos and short-lived processes.

Values are serialized on the way in (only the channels that changed, once per version), so
a node that later mutates an object it returned cannot rewrite history, and the memory
used grows with what changed rather than with the whole state at every step. Everything
is lost when the process exits: use ``SqliteSaver`` or ``PostgresSaver`` for anything a
person may answer tomorrow.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

from threadloom.checkpoint.base import (
    WRITES_IDX_MAP,
    AuditRecord,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    chain_audit_records,
    get_checkpoint_id,
)

__all__ = ["InMemorySaver", "MemorySaver"]

_EMPTY = ("empty", b"")


def _config(thread_id: str, ns: str, checkpoint_id: str) -> dict[str, Any]:
    conf = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    return {"configurable": conf}


def _thread_and_ns(config: dict[str, Any]) -> tuple[str, str]:
    conf = config.get("configurable") or {}
    if "thread_id" not in conf:
        raise ValueError(
            "The checkpointer needs config['configurable']['thread_id'] to know which "
            "thread to read or write, e.g. {'configurable': {'thread_id': 'my-thread'}}."
        )
    return str(conf["thread_id"]), conf.get("checkpoint_ns", "")


class InMemorySaver(BaseCheckpointSaver):
    """Keeps checkpoints in process memory. ``MemorySaver`` is the same class."""

    def __init__(self, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        # thread -> ns -> checkpoint_id -> (checkpoint without values, metadata, parent id)
        self.storage: defaultdict[str, dict[str, dict[str, tuple[Any, Any, str | None]]]] = (
            defaultdict(dict)
        )
        # (thread, ns, channel, version) -> serialized value
        self.blobs: dict[tuple[str, str, str, Any], tuple[str, bytes]] = {}
        # (thread, ns, checkpoint_id) -> {(task_id, idx): (task_id, channel, value, path)}
        self.writes: defaultdict[tuple[str, str, str], dict[tuple[str, int], tuple]] = (
            defaultdict(dict)
        )
        self._lock = threading.RLock()

    def __enter__(self) -> InMemorySaver:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aenter__(self) -> InMemorySaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    # -- reading ---------------------------------------------------------------------

    def _load(
        self, thread_id: str, ns: str, checkpoint_id: str, saved: tuple[Any, Any, str | None]
    ) -> CheckpointTuple:
        stored, metadata, parent_id = saved
        checkpoint: Checkpoint = dict(stored)  # type: ignore[assignment]
        values: dict[str, Any] = {}
        loads = self.serde.loads_typed
        for channel, version in stored["channel_versions"].items():
            blob = self.blobs.get((thread_id, ns, channel, version))
            if blob is not None and blob[0] != "empty":
                values[channel] = loads(blob)
        checkpoint["channel_values"] = values
        checkpoint["channel_versions"] = dict(stored["channel_versions"])
        checkpoint["versions_seen"] = {k: dict(v) for k, v in stored["versions_seen"].items()}
        writes = self.writes.get((thread_id, ns, checkpoint_id), {})
        pending = [
            (task_id, channel, loads(value))
            for (task_id, channel, value, _path) in sorted(
                writes.values(), key=lambda w: (w[3], w[0])
            )
        ]
        return CheckpointTuple(
            config=_config(thread_id, ns, checkpoint_id),
            checkpoint=checkpoint,
            metadata=self.serde.loads_typed(metadata),
            parent_config=_config(thread_id, ns, parent_id) if parent_id else None,
            pending_writes=pending,
        )

    def get_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        thread_id, ns = _thread_and_ns(config)
        with self._lock:
            checkpoints = self.storage.get(thread_id, {}).get(ns)
            if not checkpoints:
                return None
            checkpoint_id = get_checkpoint_id(config)
            if checkpoint_id is None:
                checkpoint_id = max(checkpoints)
            saved = checkpoints.get(checkpoint_id)
            if saved is None:
                return None
            return self._load(thread_id, ns, checkpoint_id, saved)

    def list(
        self,
        config: dict[str, Any] | None,
        *,
        filter: dict[str, Any] | None = None,
        before: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        with self._lock:
            conf = (config or {}).get("configurable") or {}
            thread_ids = [str(conf["thread_id"])] if "thread_id" in conf else list(self.storage)
            wanted_ns = conf.get("checkpoint_ns")
            wanted_id = conf.get("checkpoint_id")
            before_id = get_checkpoint_id(before) if before else None
            found: list[CheckpointTuple] = []
            for thread_id in thread_ids:
                for ns, checkpoints in self.storage.get(thread_id, {}).items():
                    if wanted_ns is not None and ns != wanted_ns:
                        continue
                    for checkpoint_id in sorted(checkpoints, reverse=True):
                        if wanted_id and checkpoint_id != wanted_id:
                            continue
                        if before_id and checkpoint_id >= before_id:
                            continue
                        saved = checkpoints[checkpoint_id]
                        if filter:
                            metadata = self.serde.loads_typed(saved[1])
                            if any(metadata.get(k) != v for k, v in filter.items()):
                                continue
                        found.append(self._load(thread_id, ns, checkpoint_id, saved))
                        if limit is not None and len(found) >= limit:
                            break
                    if limit is not None and len(found) >= limit:
                        break
        yield from found

    # -- writing ---------------------------------------------------------------------

    def put(
        self,
        config: dict[str, Any],
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> dict[str, Any]:
        thread_id, ns = _thread_and_ns(config)
        dumps = self.serde.dumps_typed
        values = checkpoint["channel_values"]
        with self._lock:
            for channel, version in new_versions.items():
                key = (thread_id, ns, channel, version)
                if key not in self.blobs:
                    self.blobs[key] = dumps(values[channel]) if channel in values else _EMPTY
            # Kept by reference: put() takes ownership of the checkpoint (the engine never
            # touches a checkpoint after handing it over); reads return copies.
            stored = {k: v for k, v in checkpoint.items() if k != "channel_values"}
            self.storage[thread_id].setdefault(ns, {})[checkpoint["id"]] = (
                stored,
                dumps(dict(metadata)),
                get_checkpoint_id(config),
            )
        return _config(thread_id, ns, checkpoint["id"])

    def put_writes(
        self,
        config: dict[str, Any],
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        thread_id, ns = _thread_and_ns(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise ValueError("put_writes needs a checkpoint_id in config['configurable'].")
        dumps = self.serde.dumps_typed
        with self._lock:
            bucket = self.writes[(thread_id, ns, checkpoint_id)]
            for idx, (channel, value) in enumerate(writes):
                key = (task_id, WRITES_IDX_MAP.get(channel, idx))
                if key[1] >= 0 and key in bucket:
                    continue
                bucket[key] = (task_id, channel, dumps(value), task_path)

    def delete_thread(self, thread_id: str) -> None:
        thread_id = str(thread_id)
        with self._lock:
            self.storage.pop(thread_id, None)
            for key in [k for k in self.writes if k[0] == thread_id]:
                del self.writes[key]
            for key in [k for k in self.blobs if k[0] == thread_id]:
                del self.blobs[key]

    # The in-memory operations never block on I/O: run them inline, not in a thread.

    async def aget_tuple(self, config: dict[str, Any]) -> CheckpointTuple | None:
        return self.get_tuple(config)

    async def alist(self, config, *, filter=None, before=None, limit=None):  # type: ignore[override]
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config, checkpoint, metadata, new_versions):  # type: ignore[override]
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes, task_id, task_path=""):  # type: ignore[override]
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    # -- audit log (added for threadloom.hitl) --------------------------------------

    def _audit_log(self) -> dict[str, list[str]]:
        # thread -> records as JSON text (copies: callers cannot rewrite history)
        log = self.__dict__.get("_audit")
        if log is None:
            log = self.__dict__.setdefault("_audit", {})
        return log

    def put_audit(self, thread_id: str, records: Sequence[AuditRecord]) -> list[AuditRecord]:
        thread_id = str(thread_id)
        with self._lock:
            log = self._audit_log().setdefault(thread_id, [])
            last = json.loads(log[-1]) if log else None
            stored = chain_audit_records(last, thread_id, records)
            texts = [json.dumps(r) for r in stored]  # TypeError on non-JSON values
            log.extend(texts)
        return stored

    def list_audit(self, thread_id: str) -> list[AuditRecord]:
        with self._lock:
            return [json.loads(r) for r in self._audit_log().get(str(thread_id), ())]

    async def aput_audit(self, thread_id, records):  # type: ignore[override]
        return self.put_audit(thread_id, records)

    async def alist_audit(self, thread_id: str) -> list[AuditRecord]:
        return self.list_audit(thread_id)


MemorySaver = InMemorySaver
