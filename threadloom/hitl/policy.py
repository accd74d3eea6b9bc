"""Which actions need a person, and on what terms.

A policy maps action (tool) names to a rule: ``"always"``, ``"never"``, a predicate on
the arguments (``lambda args: not args["path"].startswith("/tmp/")``), or an
``ApprovalRule`` that also sets the allowed answers, the reviewers and quorum, the
deadline and the description. Actions not named get ``default``. Settings given to the
policy itself (``reviewers=``, ``deadline=``, ...) apply to every rule that does not set
its own.

A predicate that raises (say the model left out ``path``) counts as "needs approval":
when in doubt, ask.

Moving along the spectrum from "a person approves everything" to "fully autonomous" is
one change to the policy::

    ApprovalPolicy(default="always")                       # every action
    ApprovalPolicy({"read_file": "never"})                 # all but reading
    ApprovalPolicy({"delete_file": outside_tmp}, default="never")  # only risky calls
    ApprovalPolicy(default="never")                        # nobody is asked
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from threadloom.hitl.deadlines import Deadline
from threadloom.hitl.decision import Decision
from threadloom.hitl.quorum import Reviewers
from threadloom.hitl.request import Allowed

__all__ = ["ApprovalPolicy", "ApprovalRule", "When"]

When = Literal["always", "never"] | Callable[[dict[str, Any]], bool]
"""When an action needs approval: always, never, or when the predicate on its
arguments returns True."""

Description = str | Callable[[str, dict[str, Any]], str]


@dataclass(frozen=True)
class ApprovalRule:
    """The terms for one action. Unset fields (None) take the policy's settings."""

    when: When = "always"
    allow: Allowed | Sequence[str] | None = None
    reviewers: Reviewers | None = None
    deadline: Deadline | None = None
    description: Description | None = None
    require_digest: bool | None = None

    def __post_init__(self) -> None:
        _check_when(self.when)

    def needs_approval(self, args: Mapping[str, Any]) -> bool:
        if self.when == "always":
            return True
        if self.when == "never":
            return False
        try:
            return bool(self.when(dict(args)))
        except Exception:  # malformed arguments: ask a person rather than guess
            return True

    def describe(self, action: str, args: Mapping[str, Any]) -> str | None:
        if self.description is None or isinstance(self.description, str):
            return self.description
        return self.description(action, dict(args))


def _check_when(when: Any) -> None:
    if when in ("always", "never") or callable(when):
        return
    raise ValueError(
        f"Approval rule {when!r} is not understood: use 'always', 'never', a function "
        "taking the arguments dict and returning True when a person must approve, or "
        "ApprovalRule(...)."
    )


def _as_rule(value: When | ApprovalRule) -> ApprovalRule:
    return value if isinstance(value, ApprovalRule) else ApprovalRule(when=value)


class ApprovalPolicy:
    """Which actions need approval and how; give it to ``ToolNode(approval=...)``,
    ``create_react_agent(approval=...)``, or call ``policy.review(...)`` in a node.

    ``ApprovalPolicy({"delete_file": lambda a: not a["path"].startswith("/tmp/"),
    "read_file": "never"}, default="always")``.
    """

    def __init__(
        self,
        rules: Mapping[str, When | ApprovalRule] | None = None,
        *,
        default: When | ApprovalRule = "always",
        allow: Allowed | Sequence[str] | None = None,
        reviewers: Reviewers | None = None,
        deadline: Deadline | None = None,
        description: Description | None = None,
        require_digest: bool = True,
        hooks: Any = None,
    ) -> None:
        self.rules: dict[str, ApprovalRule] = {
            name: _as_rule(rule) for name, rule in (rules or {}).items()
        }
        self.default = _as_rule(default)
        self.allow = allow
        self.reviewers = reviewers
        self.deadline = deadline
        self.description = description
        # False lets a bare "accept" (no digest echoed) approve whatever is pending.
        self.require_digest = require_digest
        # The approval hooks a ToolNode with this policy carries into its graph.
        self._hooks = hooks

    @property
    def hooks(self) -> Any:
        """The ``ApprovalHooks`` graphs using this policy carry (default: system clock,
        reviewer from ``config["configurable"]["reviewer"]``)."""
        if self._hooks is None:
            from threadloom.hitl.approval_hooks import DEFAULT_HOOKS

            return DEFAULT_HOOKS
        return self._hooks

    @classmethod
    def always(cls, **settings: Any) -> ApprovalPolicy:
        """Every action needs approval."""
        return cls(default="always", **settings)

    @classmethod
    def never(cls) -> ApprovalPolicy:
        """No action needs approval (fully autonomous, but still one line from asking)."""
        return cls(default="never")

    def __repr__(self) -> str:
        return f"ApprovalPolicy(rules={sorted(self.rules)}, default={self.default.when!r})"

    def rule_for(self, action: str) -> ApprovalRule:
        """The rule for ``action`` with the policy's settings filled in."""
        rule = self.rules.get(action, self.default)
        return dataclasses.replace(
            rule,
            allow=rule.allow if rule.allow is not None else self.allow,
            reviewers=rule.reviewers if rule.reviewers is not None else self.reviewers,
            deadline=rule.deadline if rule.deadline is not None else self.deadline,
            description=rule.description if rule.description is not None else self.description,
            require_digest=(
                rule.require_digest if rule.require_digest is not None else self.require_digest
            ),
        )

    def needs_approval(self, action: str, args: Mapping[str, Any]) -> bool:
        return self.rule_for(action).needs_approval(args)

    def review(
        self,
        action: str,
        args: Mapping[str, Any],
        *,
        id: str | None = None,
        args_schema: Any = None,
    ) -> Decision:
        """Inside a node: ask for approval if the policy says so, else approve at once.

        Returns the settled ``Decision``; run the action only if ``decision.approved``,
        with ``decision.args``.
        """
        from threadloom.hitl.approve import asking_context, request_approval

        rule = self.rule_for(action)
        if not rule.needs_approval(args):
            checkpoint_id, _ = asking_context()
            return Decision.automatic(id or action, action, args, checkpoint_id)
        return request_approval(
            action,
            args,
            id=id,
            description=rule.describe(action, args),
            allow=rule.allow,
            reviewers=rule.reviewers,
            deadline=rule.deadline,
            args_schema=args_schema,
            require_digest=rule.require_digest is not False,
        )
