"""``langgraph._internal._typing``: the empty-channel sentinel and small type aliases."""

from typing import Any, TypedDict

from threadloom.channels.base import MISSING

StateLike = Any
"""A state value: a dict, TypedDict, dataclass or pydantic model instance."""



class DeprecatedKwargs(TypedDict):
    """Keyword arguments a function still accepts but no longer documents.

    Libraries type their ``**kwargs`` with it (``**deprecated_kwargs:
    Unpack[DeprecatedKwargs]``) and warn or raise on what arrives there; it has no keys.
    """


__all__ = ["MISSING", "DeprecatedKwargs", "StateLike"]
