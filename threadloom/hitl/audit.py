"""The audit trail: who decided what, when, on which request, and what they changed.

Every resume, every answer to an approval request, every refused answer and every
``update_state`` appends one JSON record to the thread's log in the checkpointer
(``put_audit``). Records are numbered and hash-chained by the saver, so a removed or
altered entry is detectable (``verify_chain``). When the saver's serializer encrypts, the
records are stored encrypted like checkpoint values, each bound to its thread and place in
the log; the chain covers the plaintext records, which carry a random ``salt``
(``threadloom.checkpoint._stored.auditcodec``). ``graph.get_audit_log(config)`` reads a
thread's log; ``export_jsonl`` writes records as JSON lines for archiving or a SIEM.

Record keys (absent when they do not apply):

``seq``, ``hash``, ``prev_hash``, ``thread_id``
    position in the log and the chain;
``event``
    ``"decision"`` (an answer to an approval request), ``"resume"`` (an answer to any
    other interrupt), ``"update_state"``, ``"command_update"`` (``Command(update=...)``
    given to ``invoke``), ``"refused"`` (an answer or execution that was
    refused: the thread did not change);
``at``, ``who``
    when, and the reviewer identity from the run's config (``{"id", "roles"}``; None if
    the run carried none);
``checkpoint_id``, ``interrupt_id``, ``request_id``, ``action``, ``digest``
    what was answered - ``digest`` binds the record to the exact proposal;
``decision``, ``message``, ``via_deadline``
    the answer type (accept / edit / reject / response / ignore / escalate), the reason
    or text, and whether a deadline made it;
``args``, ``args_diff``
    the arguments proposed, and for edits what changed:
    ``{"changed": {k: {"from": a, "to": b}}, "added": {...}, "removed": {...}}``;
``status``
    after this answer: ``"decided:<outcome>"``, or ``"pending"`` with ``approvals`` /
    ``rejections`` counted against ``needed``;
``as_node``, ``values``, ``tool_call_changes``
    for ``update_state`` and ``command_update``: the node, the values written, and tool-call edits
    (``[{"tool_call_id", "action": {"from", "to"}, "args_diff"}]``);
``error``, ``stage``
    for refusals: the error type and message, and ``"arrival"`` or ``"execution"``;
``answer``
    for an answer refused as too large (``AnswerTooLargeError``): only its ``bytes``,
    ``sha256`` digest and the ``limit`` it broke, never the answer itself.

Size: a record is at most ``ApprovalHooks(max_record_bytes=...)`` (``MAX_RECORD_BYTES``
by default) of JSON. Its largest payload fields (``value``, ``values``, ``args``,
``message``, ``error``...) are replaced, largest first, by a summary until it fits:
``{"omitted": "too large for the audit log", "bytes", "sha256", "head"}`` (``head``: the
first characters, so a reason stays readable; ``sha256`` identifies the exact value).
The ids, the event, the time, the digest and the outcome are always kept whole.

Retention: the log goes with its thread (``delete_thread`` deletes it); ``prune`` keeps
what the saver's ``audit_keep_last`` says, leaving an anchor record (``event:
"pruned"``) for what it removed, so the chain still verifies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from threadloom.checkpoint.base import (
    KEYED,
    AuditRecord,
    BaseCheckpointSaver,
    audit_marker_seal,
    audit_record_hash,
    is_prune_marker,
)
from threadloom.hitl.decision import Decision
from threadloom.hitl.digest import canonical_json, json_digest, to_jsonable
from threadloom.hitl.errors import AnswerTooLargeError
from threadloom.hitl.quorum import Reviewer
from threadloom.hitl.request import ApprovalRequest
from threadloom.hitl.response import ApprovalResponse

__all__ = [
    "MAX_RECORD_BYTES",
    "AuditRecord",
    "arg_diff",
    "bounded_record",
    "command_update_record",
    "decision_record",
    "export_jsonl",
    "refused_record",
    "resume_record",
    "supports_audit",
    "update_record",
    "verify_chain",
]


MAX_RECORD_BYTES = 64 * 1024
"""The default largest audit record, in bytes of JSON (``ApprovalHooks(max_record_bytes)``)."""

# Never summarized: what says who did what to which request, when and with what outcome.
_WHOLE = frozenset({
    "event", "seq", "hash", "prev_hash", "thread_id", "at", "checkpoint_id",
    "new_checkpoint_id", "interrupt_id", "request_id", "action", "digest", "decision",
    "via_deadline", "status", "approvals", "rejections", "needed", "escalation", "stage",
    "as_node", "answer", "run_id",
})
_HEAD = 256  # characters of a summarized value kept readable


def _size(value: Any) -> int:
    return len(canonical_json(value).encode())


def _summary(value: Any) -> dict[str, Any]:
    size, digest = json_digest(value)
    text = value if isinstance(value, str) else canonical_json(value)
    return {
        "omitted": "too large for the audit log",
        "bytes": size,
        "sha256": digest,
        "head": text[:_HEAD],
    }


def bounded_record(record: AuditRecord, limit: int = MAX_RECORD_BYTES) -> AuditRecord:
    """``record`` if its JSON fits in ``limit`` bytes; else a copy whose largest payload
    fields are replaced, largest first, by summaries (size, sha256, a readable head)
    until it fits (see the module docstring)."""
    if _size(record) <= limit:
        return record
    out = dict(record)
    for name in sorted((k for k in out if k not in _WHOLE), key=lambda k: -_size(out[k])):
        out[name] = _summary(out[name])
        if _size(out) <= limit:
            break
    return out


def supports_audit(saver: Any) -> bool:
    """Whether ``saver`` stores an audit log (implements ``put_audit``/``list_audit``)."""
    if saver is None:
        return False
    put = getattr(type(saver), "put_audit", None)
    return put is not None and put is not BaseCheckpointSaver.put_audit


def arg_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """What an edit changed: ``{"changed": {k: {"from", "to"}}, "added", "removed"}``."""
    old_j, new_j = to_jsonable(dict(old)), to_jsonable(dict(new))
    return {
        "changed": {
            k: {"from": old_j[k], "to": new_j[k]}
            for k in old_j
            if k in new_j and old_j[k] != new_j[k]
        },
        "added": {k: v for k, v in new_j.items() if k not in old_j},
        "removed": {k: v for k, v in old_j.items() if k not in new_j},
    }


def _who(reviewer: Reviewer | None) -> dict[str, Any] | None:
    return reviewer.to_dict() if reviewer is not None else None


def _status(result: Decision | ApprovalRequest) -> dict[str, Any]:
    if isinstance(result, Decision):
        return {"status": f"decided:{result.outcome}"}
    rule = result.reviewers
    return {
        "status": "pending",
        "approvals": len(result.approvals),
        "rejections": len(result.rejections),
        "needed": rule.quorum,
        "escalation": result.escalation,
    }


def decision_record(
    *,
    checkpoint_id: str | None,
    interrupt_id: str | None,
    request: ApprovalRequest,
    answer: ApprovalResponse,
    result: Decision | ApprovalRequest,
) -> AuditRecord:
    """One answer to one approval request, and where it left the request."""
    record: AuditRecord = {
        "event": "decision",
        "at": answer.at,
        "who": _who(answer.reviewer),
        "checkpoint_id": checkpoint_id,
        "interrupt_id": interrupt_id,
        "request_id": request.id,
        "action": request.action,
        "digest": request.digest,
        "decision": answer.type,
        "message": answer.message,
        "via_deadline": answer.via_deadline,
        "args": to_jsonable(request.args),
        **_status(result),
    }
    if answer.type == "edit" and answer.args is not None:
        record["args_diff"] = arg_diff(request.args, answer.args)
    return record


def resume_record(
    *,
    checkpoint_id: str | None,
    interrupt_id: str | None,
    value: Any,
    who: Reviewer | None,
    at: str,
) -> AuditRecord:
    """An answer to an interrupt that is not an approval request (plain ``interrupt()``)."""
    return {
        "event": "resume",
        "at": at,
        "who": _who(who),
        "checkpoint_id": checkpoint_id,
        "interrupt_id": interrupt_id,
        "value": to_jsonable(value),
    }


def refused_record(
    error: BaseException,
    *,
    stage: str,
    checkpoint_id: str | None,
    who: Reviewer | None,
    at: str,
    interrupt_id: str | None = None,
    request_id: str | None = None,
) -> AuditRecord:
    """An answer or an execution that was refused; the thread did not change. An answer
    refused as too large is kept as its size and digest only (``answer``)."""
    record: AuditRecord = {
        "event": "refused",
        "stage": stage,
        "at": at,
        "who": _who(who),
        "checkpoint_id": checkpoint_id,
        "interrupt_id": interrupt_id,
        "request_id": request_id if request_id is not None else getattr(error, "request_id", None),
        "error": f"{type(error).__name__}: {error}",
    }
    if isinstance(error, AnswerTooLargeError):
        record["answer"] = {"bytes": error.size, "sha256": error.digest, "limit": error.limit}
    return record


def _messages_by_id(messages: Any) -> dict[str, Any]:
    if not isinstance(messages, (list, tuple)):
        return {}
    return {m.id: m for m in messages if getattr(m, "id", None)}


def tool_call_changes(before: Any, values: Any) -> list[dict[str, Any]]:
    """Tool calls that ``values`` rewrites in messages already in ``before``."""
    if not isinstance(before, Mapping) or not isinstance(values, Mapping):
        return []
    out: list[dict[str, Any]] = []
    for key, new_messages in values.items():
        old = _messages_by_id(before.get(key))
        if not old or not isinstance(new_messages, (list, tuple)):
            continue
        for message in new_messages:
            message_id = getattr(message, "id", None)
            previous = old.get(message_id) if message_id is not None else None
            new_calls = getattr(message, "tool_calls", None)
            if previous is None or new_calls is None:
                continue
            old_calls = {c.get("id"): c for c in getattr(previous, "tool_calls", None) or ()}
            for call in new_calls:
                was = old_calls.pop(call.get("id"), None)
                if was is None:
                    out.append({"tool_call_id": call.get("id"), "added": to_jsonable(call)})
                    continue
                change: dict[str, Any] = {"tool_call_id": call.get("id")}
                if was.get("name") != call.get("name"):
                    change["action"] = {"from": was.get("name"), "to": call.get("name")}
                diff = arg_diff(was.get("args") or {}, call.get("args") or {})
                if any(diff.values()):
                    change["args_diff"] = diff
                if len(change) > 1:
                    out.append(change)
            out += [{"tool_call_id": i, "removed": to_jsonable(c)} for i, c in old_calls.items()]
    return out


def update_record(
    *,
    as_node: str | None,
    values: Any,
    before: Any,
    checkpoint_id: str | None,
    new_checkpoint_id: str | None,
    who: Reviewer | None,
    at: str,
) -> AuditRecord:
    """An ``update_state``: who wrote what, as which node, and which tool calls changed."""
    record: AuditRecord = {
        "event": "update_state",
        "at": at,
        "who": _who(who),
        "checkpoint_id": checkpoint_id,
        "new_checkpoint_id": new_checkpoint_id,
        "as_node": as_node,
        "values": to_jsonable(values),
    }
    changes = tool_call_changes(before, values)
    if changes:
        record["tool_call_changes"] = changes
    return record


def command_update_record(
    *,
    values: Any,
    before: Any,
    checkpoint_id: str | None,
    who: Reviewer | None,
    at: str,
) -> AuditRecord:
    """A ``Command(update=...)`` given to ``invoke``/``stream``: who wrote what, and which
    pending tool calls it rewrote (as ``update_state`` records do)."""
    if isinstance(values, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in values
    ):
        values = dict(values)
    record: AuditRecord = {
        "event": "command_update",
        "at": at,
        "who": _who(who),
        "checkpoint_id": checkpoint_id,
        "values": to_jsonable(values),
    }
    changes = tool_call_changes(before, values)
    if changes:
        record["tool_call_changes"] = changes
    return record


def verify_chain(
    records: Sequence[AuditRecord],
    *,
    head: Mapping[str, Any] | None = None,
    key: bytes | None = None,
    anchors: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Raise ``ValueError`` if the records are not an intact chain (numbering, links,
    hashes); a log read whole from ``get_audit_log`` must pass.

    ``head`` (``saver.audit_head(thread_id)``) is the chain's anchor: a log whose last
    record is not the anchored one was cut short. ``key`` is the saver's ``audit_key``:
    every record must then carry an HMAC under it, so a rewritten suffix re-hashed
    without the key shows. ``anchors`` are ``{"seq", "hash"}`` pairs recorded elsewhere
    (the thread's checkpoints): each must still be in the chain, unless ``prune`` removed
    it.

    A log ``prune`` cut (``saver.audit_keep_last``) starts with the anchor record that
    stands for the removed records (``event: "pruned"``): its ``seal`` is checked (an
    HMAC under ``key`` when the log is keyed) and the chain goes on from its ``hash``.
    """
    prev = ""
    expected_seq = 1
    pruned = 0  # records 1..pruned were removed by prune (the log starts with its anchor)
    for index, record in enumerate(records):
        if is_prune_marker(record):
            if index:
                raise ValueError(
                    f"Audit record {record.get('seq')} is a prune anchor in the middle of the "
                    "log: only the first record may stand for pruned ones."
                )
            _check_signed(record, "seal", key)
            if audit_marker_seal(record, key if _keyed(record, "seal") else None) != record.get(
                "seal"
            ):
                raise ValueError(
                    f"Audit record {record.get('seq')} (the anchor of the pruned records) was "
                    "altered (seal mismatch)."
                )
            pruned = int(record.get("seq") or 0)
            prev = str(record.get("hash"))
            expected_seq = pruned + 1
            continue
        if record.get("seq") != expected_seq:
            raise ValueError(
                f"Audit log gap: expected seq {expected_seq}, got {record.get('seq')}."
            )
        if record.get("prev_hash") != prev:
            raise ValueError(f"Audit record {record.get('seq')} does not follow the one before it.")
        stored = str(record.get("hash"))
        _check_signed(record, "hash", key)
        if audit_record_hash(record, key if _keyed(record, "hash") else None) != stored:
            raise ValueError(f"Audit record {record.get('seq')} was altered (hash mismatch).")
        prev = stored
        expected_seq += 1
    last = expected_seq - 1
    if head is not None and (head.get("seq") != last or head.get("hash") != prev):
        raise ValueError(
            f"Audit log was cut short or rewritten: its anchor names record {head.get('seq')} "
            f"({head.get('hash')}), the log ends at record {last}."
        )
    by_seq = {r.get("seq"): r.get("hash") for r in records}
    for anchor in anchors:
        if int(anchor.get("seq") or 0) < pruned:
            continue  # a record prune removed: what is kept is checked
        if by_seq.get(anchor.get("seq")) != anchor.get("hash"):
            raise ValueError(
                f"Audit log does not hold record {anchor.get('seq')} ({anchor.get('hash')}) "
                "that the thread's checkpoints anchor: it was cut short or rewritten."
            )


def _keyed(record: Mapping[str, Any], field: str) -> bool:
    return str(record.get(field)).startswith(KEYED)


def _check_signed(record: Mapping[str, Any], field: str, key: bytes | None) -> None:
    """A record signed with HMAC needs the key to verify; with a key, every record must
    be signed (one written or re-hashed without it shows)."""
    keyed = _keyed(record, field)
    if keyed and key is None:
        raise ValueError(
            f"Audit record {record.get('seq')} is signed (HMAC): give the audit key to "
            "verify it."
        )
    if key is not None and not keyed:
        raise ValueError(
            f"Audit record {record.get('seq')} is not signed with the audit key: it was "
            "written or re-hashed without it."
        )


def export_jsonl(records: Iterable[Mapping[str, Any]], path_or_file: str | Path | IO[str]) -> int:
    """Write ``records`` as JSON lines (one object per line, UTF-8); return the count.

    ``path_or_file`` is a path (the file is replaced) or an open text file (appended to).
    """
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "w", encoding="utf-8") as fh:
            return export_jsonl(records, fh)
    count = 0
    for record in records:
        path_or_file.write(json.dumps(to_jsonable(record), ensure_ascii=False, sort_keys=True))
        path_or_file.write("\n")
        count += 1
    return count
