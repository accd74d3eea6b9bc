"""People in the loop: approval requests, policies, deadlines, quorum and the audit trail.

The pieces, one concept a module:

* ``request`` / ``response`` - the one request shape (Agent Inbox compatible) and every
  answer shape UIs send;
* ``policy`` - which actions need a person (``ApprovalPolicy``), for ``ToolNode`` /
  ``create_react_agent(approval=...)`` or ``policy.review(...)`` in any node;
* ``approve`` - ``request_approval`` / ``collect_decisions`` inside a node;
* ``digest`` + ``decision`` - approvals bound to the exact action, checked at execution;
* ``quorum`` - reviewer identity (from the run's config), roles, M distinct approvers;
* ``deadlines`` - what happens when nobody decides in time; ``sweep`` applies it;
* ``audit`` - the per-thread, hash-chained log of decisions; ``export_jsonl``;
* ``hooks`` - ``ApprovalHooks``: what graphs that use approvals carry (the deployment's
  clock and reviewer source), where answers are checked before a resume and updates
  recorded. Importing this package changes no graph: ``ToolNode(approval=...)`` and
  ``create_react_agent(approval=...)`` attach the hooks, a hand-built graph gets them
  with ``compile(..., hooks=[ApprovalHooks()])``.
"""

from threadloom.hitl.approval_hooks import ApprovalHooks, uses_approvals
from threadloom.hitl.approve import collect_decisions, request_approval
from threadloom.hitl.audit import arg_diff, export_jsonl, verify_chain
from threadloom.hitl.deadlines import (
    DEADLINE_REVIEWER,
    Deadline,
    Escalate,
    SweepResult,
    asweep,
    sweep,
)
from threadloom.hitl.decision import Decision
from threadloom.hitl.digest import action_digest
from threadloom.hitl.errors import (
    AnswerTooLargeError,
    ApprovalError,
    ApprovalHooksMissingError,
    ApprovalMismatchError,
    ClockOverrideError,
    DeadlinePassedError,
    DigestRequiredError,
    DuplicateApproverError,
    InvalidEditError,
    InvalidResponseError,
    NoPendingRequestError,
    ReviewerNotAllowedError,
)
from threadloom.hitl.policy import ApprovalPolicy, ApprovalRule
from threadloom.hitl.quorum import Reviewer, Reviewers
from threadloom.hitl.request import Allowed, ApprovalRequest, requests_in
from threadloom.hitl.response import ApprovalResponse, echo_digests

__all__ = [
    "DEADLINE_REVIEWER",
    "Allowed",
    "AnswerTooLargeError",
    "ApprovalError",
    "ApprovalHooks",
    "ApprovalHooksMissingError",
    "ApprovalMismatchError",
    "ApprovalPolicy",
    "ApprovalRequest",
    "ApprovalResponse",
    "ApprovalRule",
    "ClockOverrideError",
    "Deadline",
    "DeadlinePassedError",
    "Decision",
    "DigestRequiredError",
    "DuplicateApproverError",
    "Escalate",
    "InvalidEditError",
    "InvalidResponseError",
    "NoPendingRequestError",
    "Reviewer",
    "ReviewerNotAllowedError",
    "Reviewers",
    "SweepResult",
    "action_digest",
    "arg_diff",
    "asweep",
    "collect_decisions",
    "echo_digests",
    "export_jsonl",
    "request_approval",
    "requests_in",
    "sweep",
    "uses_approvals",
    "verify_chain",
]
