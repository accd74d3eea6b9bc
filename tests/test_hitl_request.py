"""The building blocks on their own: request and answer shapes, policies, digests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from threadloom.checkpoint.base import create_checkpoint_id
from threadloom.hitl import (
    Allowed,
    ApprovalHooks,
    ApprovalPolicy,
    ApprovalRequest,
    ApprovalResponse,
    ApprovalRule,
    Deadline,
    Escalate,
    InvalidResponseError,
    Reviewer,
    Reviewers,
    action_digest,
    requests_in,
)
from threadloom.hitl.clock import checkpoint_time
from threadloom.hitl.response import match_responses
from threadloom.hitl.validation import json_schema_errors


def make(id: str = "r1", **kw: object) -> ApprovalRequest:
    return ApprovalRequest.create(id=id, action="send_email",
                                  args={"to": "a@b.c", "body": "hi"}, checkpoint_id="cp-1", **kw)


def test_request_round_trips_through_its_agent_inbox_dict() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    req = make(allowed=["accept", "reject"], reviewers=Reviewers(["finance"], quorum=2),
               deadline=Deadline(after=timedelta(hours=2)).resolve(start))
    data = req.to_dict()
    assert data["action_request"] == {
        "action": "send_email", "args": {"to": "a@b.c", "body": "hi"}}
    assert data["config"] == {"allow_accept": True, "allow_edit": False, "allow_respond": False,
                              "allow_ignore": False, "allow_reject": True}
    assert data["deadline"]["at"] == "2030-01-01T02:00:00+00:00"
    assert ApprovalRequest.from_dict(data) == req
    assert requests_in(data) == [req] and requests_in([data, data]) == [req, req]
    assert requests_in("please approve") is None and requests_in([data, "x"]) is None


def test_digest_covers_action_args_request_and_checkpoint() -> None:
    base = action_digest("a", {"x": 1, "y": [1, 2]}, request_id="r", checkpoint_id="c")
    assert base.startswith("sha256:") and len(base) == 7 + 64
    assert base == action_digest("a", {"y": [1, 2], "x": 1}, request_id="r", checkpoint_id="c")
    for changed in (
        action_digest("b", {"x": 1, "y": [1, 2]}, request_id="r", checkpoint_id="c"),
        action_digest("a", {"x": 2, "y": [1, 2]}, request_id="r", checkpoint_id="c"),
        action_digest("a", {"x": 1, "y": [1, 2]}, request_id="s", checkpoint_id="c"),
        action_digest("a", {"x": 1, "y": [1, 2]}, request_id="r", checkpoint_id="d"),
    ):
        assert changed != base
    edited = make().with_args({"to": "x@y.z", "body": "hi"})
    assert edited.digest != make().digest and edited.original_args == make().args


@pytest.mark.parametrize(
    ("value", "kind", "args", "message"),
    [
        ({"type": "accept", "args": {"action": "send_email", "args": {"to": "1"}}},
         "accept", None, None),
        ({"type": "edit", "args": {"action": "send_email", "args": {"to": "z"}}},
         "edit", {"to": "z"}, None),
        ({"type": "edit", "args": {"to": "z"}}, "edit", {"to": "z"}, None),
        ({"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "z"}}},
         "edit", {"to": "z"}, None),
        ({"type": "response", "args": "use the other list"}, "response", None,
         "use the other list"),
        ({"type": "ignore", "args": None}, "ignore", None, None),
        ({"type": "reject", "args": "too risky"}, "reject", None, "too risky"),
        ({"type": "reject", "message": "too risky"}, "reject", None, "too risky"),
        ({"type": "approve"}, "accept", None, None),
        (True, "accept", None, None),
        (False, "reject", None, None),
        ("reject", "reject", None, None),
    ],
)
def test_every_ui_answer_shape_is_read(
    value: object, kind: str, args: object, message: object
) -> None:
    answer = ApprovalResponse.parse(value)
    assert (answer.type, answer.args, answer.message) == (kind, args, message)


def test_bad_answer_shapes_say_what_to_send() -> None:
    with pytest.raises(InvalidResponseError, match="'type': 'accept'"):
        ApprovalResponse.parse(42)
    with pytest.raises(InvalidResponseError, match="needs the new arguments"):
        ApprovalResponse.parse({"type": "edit", "args": "bigger"})


def test_answers_pair_with_requests_by_order_or_id() -> None:
    one, two = make("r1"), make("r2")
    assert [a and a.type for a in match_responses([one, two], [True, None])] == ["accept", None]
    assert [a and a.type for a in match_responses([one, two], {"r2": False})] == [None, "reject"]
    assert [a.type for a in match_responses([one], {"type": "ignore"})] == ["ignore"]  # type: ignore[union-attr]
    with pytest.raises(InvalidResponseError, match="2 requests are pending"):
        match_responses([one, two], {"type": "accept"})


def test_allowed_names() -> None:
    assert Allowed.of(["approve", "respond"]).names == ["accept", "response"]
    with pytest.raises(ValueError, match="Unknown response types"):
        Allowed.of(["maybe"])


def test_policy_rules_predicates_defaults_and_fail_closed() -> None:
    policy = ApprovalPolicy(
        {"delete_file": lambda args: not args["path"].startswith("/tmp/"), "read_file": "never"},
        default="always",
        reviewers=Reviewers(["ops"]),
    )
    assert policy.needs_approval("delete_file", {"path": "/etc/x"})
    assert not policy.needs_approval("delete_file", {"path": "/tmp/x"})
    assert policy.needs_approval("delete_file", {})  # predicate raised: ask a person
    assert not policy.needs_approval("read_file", {"path": "/etc/x"})
    assert policy.needs_approval("anything_else", {})
    assert policy.rule_for("anything_else").reviewers == Reviewers(["ops"])
    assert not ApprovalPolicy.never().needs_approval("delete_file", {"path": "/"})
    own = ApprovalPolicy({"x": ApprovalRule(reviewers=Reviewers(["finance"]))},
                         reviewers=Reviewers(["ops"]))
    assert own.rule_for("x").reviewers == Reviewers(["finance"])
    with pytest.raises(ValueError, match="'always', 'never'"):
        ApprovalPolicy({"x": "sometimes"})  # type: ignore[dict-item]


def test_deadline_and_reviewer_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Deadline()
    with pytest.raises(ValueError, match="on_timeout"):
        Deadline(after=timedelta(1), on_timeout="shrug")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1"):
        Reviewers(quorum=0)
    chained = Deadline(after=timedelta(hours=1), on_timeout=Escalate(
        to=Reviewers(["cfo"]), after=timedelta(hours=2), on_timeout="accept"))
    resolved = chained.resolve(datetime(2030, 1, 1, tzinfo=UTC))
    assert resolved["on_timeout"] == "escalate"
    assert resolved["escalate"] == {"reviewers": {"roles": ["cfo"], "quorum": 1, "rejections": 1},
                                    "after_seconds": 7200.0, "on_timeout": "accept",
                                    "escalate": None}
    assert Reviewer.of({"id": "a", "roles": ["x"]}) == Reviewer("a", ("x",))
    with pytest.raises(ValueError, match="non-empty string 'id'"):
        Reviewer.of({"roles": []})
    with pytest.raises(ValueError, match="list of strings"):
        Reviewer.of({"id": "a", "roles": "admin"})


def test_clock_reads_checkpoint_ids_and_the_deployments_clock() -> None:
    before = datetime.now(UTC)
    when = checkpoint_time(create_checkpoint_id())
    assert when is not None and before - timedelta(seconds=1) <= when <= datetime.now(UTC)
    assert checkpoint_time("not-a-uuid") is None
    fixed = datetime(2031, 5, 1, tzinfo=UTC)
    # The clock belongs to the deployment (ApprovalHooks), not to a run's config.
    assert ApprovalHooks(clock=lambda: fixed).now() == fixed
    assert ApprovalHooks(clock=lambda: "2031-05-01T00:00:00").now() == fixed
    assert ApprovalHooks(clock=lambda: fixed.replace(tzinfo=None)).now() == fixed
    with pytest.raises(TypeError, match="must return a datetime"):
        ApprovalHooks(clock=lambda: 12).now()


def test_small_json_schema_check_for_custom_requests() -> None:
    schema = {"type": "object", "properties": {"to": {"type": "string"},
                                                "n": {"type": "integer"}},
              "required": ["to"], "additionalProperties": False}
    assert json_schema_errors(schema, {"to": "x", "n": 2}) == []
    assert json_schema_errors(schema, {"n": True, "zz": 1}) == [
        "to: field required", "zz: unknown field", "n: expected integer, got bool"]
