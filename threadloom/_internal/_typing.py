"""``langgraph._internal._typing``: the empty-channel sentinel and small type aliases."""

from typing import Any

from threadloom.channels.base import MISSING

StateLike = Any
"""A state value: a dict, TypedDict, dataclass or pydantic model instance."""

__all__ = ["MISSING", "StateLike"]
