"""Managed values: read-only state keys the engine computes for every task.

Declare ``remaining_steps: RemainingSteps`` in a state schema and each node sees how many
supersteps are left before the recursion limit; ``IsLastStep`` is True on the last one.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, Required, get_args, get_origin

__all__ = ["IsLastStep", "RemainingSteps"]


class _RemainingStepsMarker:
    name = "remaining_steps"


class _IsLastStepMarker:
    name = "is_last_step"


RemainingSteps = Annotated[int, _RemainingStepsMarker]
IsLastStep = Annotated[bool, _IsLastStepMarker]


def is_managed(annotation: Any) -> str | None:
    """The managed-value kind named by an annotation (or marker), else None.

    ``NotRequired[...]`` / ``Required[...]`` wrappers (as in a TypedDict) are looked through.
    """
    while get_origin(annotation) in (NotRequired, Required):
        annotation = get_args(annotation)[0]
    if annotation is _RemainingStepsMarker:
        return "remaining_steps"
    if annotation is _IsLastStepMarker:
        return "is_last_step"
    if get_origin(annotation) is Annotated:
        for extra in get_args(annotation)[1:]:
            if extra in (_RemainingStepsMarker, _IsLastStepMarker):
                name: str = extra.name
                return name
    return None


def managed_value(kind: str, step: int, stop: int) -> int | bool:
    remaining = stop - step
    return remaining if kind == "remaining_steps" else remaining <= 1
