"""Checking one answer against its request, before anything is stored or run.

The same function runs twice: when the answer arrives (``invoke(Command(resume=...))``,
before anything is written, so a bad answer leaves the thread exactly as it was) and in
the paused node when it re-runs (so nothing that skipped the first check can run).

Checked, in order: the answer type exists and the request allows it; a deadline answer
really is the deadline's (and the deadline has passed); the digest names this very
proposal; a person's answer came before the deadline; the reviewer may decide
(roles, identity, not twice); an edit keeps the action and its arguments fit the
schema; a response carries text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from threadloom.hitl.clock import from_iso
from threadloom.hitl.deadlines import deadline_at
from threadloom.hitl.errors import (
    ApprovalMismatchError,
    DeadlinePassedError,
    InvalidEditError,
    InvalidResponseError,
)
from threadloom.hitl.quorum import check_reviewer
from threadloom.hitl.request import ApprovalRequest
from threadloom.hitl.response import ApprovalResponse

__all__ = [
    "ArgsValidator",
    "json_schema_errors",
    "schema_validator",
    "validate_response",
]

ArgsValidator = Callable[[str, dict[str, Any]], dict[str, Any]]
"""``(action, args) -> args``: checks edited arguments (raising ``InvalidEditError``)
and returns them as the action will receive them."""

DEFAULT_REJECT_REASON = "The reviewer rejected this action."


def validate_response(
    request: ApprovalRequest,
    answer: ApprovalResponse,
    *,
    now: datetime,
    validate_args: ArgsValidator | None = None,
    require_digest: bool = False,
) -> ApprovalResponse:
    """Return ``answer`` ready to apply (edit arguments normalized), or raise.

    ``require_digest`` (used in the node) refuses an answer that carries no digest: it
    never passed the check at arrival, e.g. because it was sent while no request was
    pending and is now being taken for a newer one.
    """
    rid, action = request.id, request.action
    kind = answer.type
    if answer.digest is None and require_digest:
        raise ApprovalMismatchError(
            f"The answer to request {rid!r} ({action}) was not given for it: it carries no "
            "digest, so it arrived while this request was not pending (e.g. before "
            "update_state changed the thread). Read the pending request with get_state "
            "and answer it.",
            request_id=rid,
            expected=request.digest,
        )
    if answer.digest is not None and answer.digest != request.digest:
        raise ApprovalMismatchError(
            f"The answer to request {rid!r} ({action}) was given for another proposal "
            f"(digest {answer.digest}); the request pending now has digest "
            f"{request.digest} with arguments {request.args}. The action or its arguments "
            "changed since the reviewer looked: review the request as it is now.",
            request_id=rid,
            expected=request.digest,
            got=answer.digest,
        )
    if answer.via_deadline:
        return _check_deadline_answer(request, answer, now)
    if kind == "escalate":
        raise InvalidResponseError(
            f"'escalate' is applied by a request's deadline, not given by a person "
            f"(request {rid!r}).",
            request_id=rid,
        )
    if not request.allowed.permits(kind):
        raise InvalidResponseError(
            f"Request {rid!r} ({action}) does not allow the answer {kind!r}; allowed: "
            f"{request.allowed.names}.",
            request_id=rid,
        )
    due = deadline_at(request)
    if due is not None and request.deadline is not None and now > due:
        raise DeadlinePassedError(
            f"Request {rid!r} ({action}) had to be decided by {request.deadline['at']} "
            f"(it is now {now.isoformat()}); its deadline decides it: "
            f"{request.deadline['on_timeout']!r}. Run `threadloom sweep` (or "
            "threadloom.hitl.sweep) to apply it.",
            request_id=rid,
        )
    check_reviewer(
        request_id=rid,
        action=action,
        reviewers=request.reviewers,
        reviewer=answer.reviewer,
        response_type="accept" if kind == "edit" and answer.args == request.args else kind,
        approvals=request.approvals,
        rejections=request.rejections,
    )
    if kind == "edit":
        if answer.action is not None and answer.action != action:
            raise InvalidEditError(
                f"An edit may change the arguments of {action}, not the action (got "
                f"{answer.action!r}) for request {rid!r}. To do something else, reject "
                "with a reason the agent can act on.",
                request_id=rid,
            )
        args = dict(answer.args or {})
        if validate_args is not None:
            args = validate_args(action, args)
        return dataclasses.replace(answer, args=args, action=action)
    if kind == "reject" and not answer.message:
        return dataclasses.replace(answer, message=DEFAULT_REJECT_REASON)
    if kind == "response" and not (isinstance(answer.message, str) and answer.message.strip()):
        raise InvalidResponseError(
            f"A 'response' to request {rid!r} needs the text for the agent: "
            "{'type': 'response', 'args': 'your message'}.",
            request_id=rid,
        )
    return answer


def _check_deadline_answer(
    request: ApprovalRequest, answer: ApprovalResponse, now: datetime
) -> ApprovalResponse:
    rid = request.id
    deadline = request.deadline
    if not deadline:
        raise InvalidResponseError(
            f"A deadline answer was given for request {rid!r}, which has no deadline.",
            request_id=rid,
        )
    due = from_iso(deadline["at"])
    when = from_iso(answer.at) if answer.at else now
    if when < due:
        raise InvalidResponseError(
            f"The deadline of request {rid!r} is {deadline['at']}; it has not passed "
            f"(now {when.isoformat()}), so its decision cannot be applied yet.",
            request_id=rid,
        )
    if answer.type != deadline["on_timeout"]:
        raise InvalidResponseError(
            f"The deadline of request {rid!r} decides {deadline['on_timeout']!r}, not "
            f"{answer.type!r}.",
            request_id=rid,
        )
    return answer


# -- argument schemas ----------------------------------------------------------------------


def schema_validator(schema: Any, *, request_id: str | None = None) -> ArgsValidator:
    """A validator for a pydantic model class or a JSON schema dict."""

    def check(action: str, args: dict[str, Any]) -> dict[str, Any]:
        return validate_args_against(schema, action, args, request_id=request_id)

    return check


def validate_args_against(
    schema: Any, action: str, args: dict[str, Any], *, request_id: str | None = None
) -> dict[str, Any]:
    """``args`` checked against ``schema`` (pydantic v2/v1 model or JSON schema dict)."""
    if schema is None:
        return args
    if isinstance(schema, Mapping):
        problems = json_schema_errors(schema, args)
        if problems:
            raise InvalidEditError(
                f"The edited arguments of {action} do not fit its schema: "
                + "; ".join(problems)
                + ". Fix them and answer again; the thread is still paused.",
                request_id=request_id,
                errors=problems,
            )
        return args
    unknown = _unknown_fields(schema, args)
    if unknown:
        raise InvalidEditError(
            f"The edited arguments of {action} name fields it does not take: {unknown}. "
            "Fix them and answer again; the thread is still paused.",
            request_id=request_id,
            errors=[f"{k}: unknown field" for k in unknown],
        )
    validate = getattr(schema, "model_validate", None)
    try:
        if validate is not None:
            model = validate(args)
            dumped = model.model_dump(mode="json", exclude_unset=True)
        else:  # pydantic v1 model
            model = schema.parse_obj(args)
            dumped = model.dict(exclude_unset=True)
    except Exception as exc:  # pydantic.ValidationError (v1 or v2)
        errors = exc.errors() if hasattr(exc, "errors") else [str(exc)]
        lines = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
            if isinstance(e, Mapping)
            else str(e)
            for e in errors
        ]
        raise InvalidEditError(
            f"The edited arguments of {action} do not fit its schema: "
            + "; ".join(lines)
            + ". Fix them and answer again; the thread is still paused.",
            request_id=request_id,
            errors=list(errors),
        ) from exc
    # Keep what the reviewer gave, with values as the schema reads them ("3" -> 3).
    return {k: dumped.get(k, v) for k, v in args.items()}


def _unknown_fields(schema: Any, args: Mapping[str, Any]) -> list[str]:
    """Keys a pydantic model would silently drop: an edit naming them is a mistake."""
    fields = getattr(schema, "model_fields", None)
    if fields is None:
        fields = getattr(schema, "__fields__", None)  # pydantic v1
    if not isinstance(fields, Mapping):
        return []
    config = getattr(schema, "model_config", None) or {}
    if isinstance(config, Mapping) and config.get("extra") == "allow":
        return []
    names = set(fields)
    names |= {a for f in fields.values() if (a := getattr(f, "alias", None))}
    return [k for k in args if k not in names]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
    "object": (dict,),
    "null": (type(None),),
}


def json_schema_errors(schema: Mapping[str, Any], args: Mapping[str, Any]) -> list[str]:
    """The problems of ``args`` against an object JSON schema (required keys, unknown
    keys when ``additionalProperties`` is false, top-level value types). Deliberately
    small: the action's own pydantic schema, when there is one, is checked in full."""
    problems: list[str] = []
    props = schema.get("properties") or {}
    for key in schema.get("required") or ():
        if key not in args:
            problems.append(f"{key}: field required")
    if schema.get("additionalProperties") is False:
        problems += [f"{k}: unknown field" for k in args if k not in props]
    for key, value in args.items():
        spec = props.get(key)
        if not isinstance(spec, Mapping) or "type" not in spec:
            continue
        names = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        types = tuple(t for n in names for t in _JSON_TYPES.get(n, (object,)))
        ok = isinstance(value, types) and not (
            isinstance(value, bool) and "boolean" not in names
        )
        if not ok:
            problems.append(f"{key}: expected {' or '.join(names)}, got {type(value).__name__}")
    return problems
