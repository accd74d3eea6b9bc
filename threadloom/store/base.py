"""The long-term memory store interface, its data shapes and the rules every backend shares.

A *store* keeps JSON-like documents (``dict`` values) under a hierarchical *namespace*
(a tuple of string labels such as ``("users", "u-42", "memories")``) and a *key*. Unlike a
checkpoint, which belongs to one thread, store items outlive threads: nodes and tools read
and write them through the ``store`` they are given, to remember facts across
conversations.

Every backend implements only two methods, :meth:`BaseStore.batch` and
:meth:`BaseStore.abatch`, which execute a list of operations (:class:`GetOp`,
:class:`PutOp`, :class:`SearchOp`, :class:`ListNamespacesOp`). The convenience methods
(``get``, ``put``, ``search``, ...) build those operations. Validation and the filter
language live here, in one place, so all backends accept and reject exactly the same input
and return the same answers.

Shared semantics (documented once, relied on by every backend):

* **Batches** run their operations in order; a ``GetOp`` after a ``PutOp`` in the same
  batch sees the write. Every operation is validated before any of them runs, so an invalid
  batch changes nothing.
* **Ordering**: ``search`` without a query returns items in insertion order (the order in
  which each ``(namespace, key)`` was first written; overwriting keeps the position,
  delete-then-put moves it to the end). All backends agree, so ``limit``/``offset``
  pagination is stable and portable.
* **Timestamps** are timezone-aware UTC datetimes. ``InMemoryStore`` resets ``created_at``
  when a key is overwritten (LangGraph's in-memory behaviour); the SQL stores keep the
  original ``created_at`` and only move ``updated_at`` (LangGraph's SQL behaviour).
* **Semantic search** (``query=``) needs an embedding index: a store created with
  ``index={"embed": ..., "dims": ..., "fields": [...]}`` (``InMemoryStore``,
  ``SqliteStore``) embeds the configured fields of every value it stores and ranks
  ``search(..., query=...)`` hits by cosine similarity (``SearchItem.score``; items stored
  without vectors follow unscored). See :mod:`threadloom.store.embed` for the accepted
  ``embed`` forms and field paths. ``put(..., index=False)`` stores a value unindexed,
  ``index=[...]`` embeds those fields instead of the configured ones. A store without an
  index (or a backend without semantic search) raises
  :class:`SemanticSearchNotSupportedError` for a query rather than silently returning
  unranked results that look ranked. ``query=None`` or ``""`` is simply "no query".
* **TTL** is not supported either: ``put(..., ttl=<number>)`` raises
  ``NotImplementedError``; ``refresh_ttl`` arguments are accepted and ignored (there is
  nothing to refresh).

Filter language (``search(..., filter={...})``), evaluated against item values:

* Keys name a field of the value; dots descend into nested objects (``"user.age"`` reads
  ``value["user"]["age"]``). Dots never index into lists. Keys must match
  ``^[A-Za-z0-9_\\-.]{1,128}$`` with no empty segments; anything else raises
  ``ValueError`` naming the key. The same rule applies to every backend, so a filter that
  works in tests keeps working on SQLite and PostgreSQL (where keys become JSON paths).
* ``{"k": v}`` with a scalar or list ``v`` is exact JSON equality: numbers compare by value
  (``1 == 1.0``) but booleans are not numbers (``True != 1``); ``None`` matches an explicit
  JSON ``null`` only, never a missing field.
* ``{"k": {"a": 1}}`` (a mapping whose keys do not start with ``$``) is a *partial* match:
  it is the same as ``{"k.a": 1}``. ``{"k": {}}`` matches when ``k`` is an object.
* ``{"k": {"$op": v, ...}}`` applies operators, all of which must hold:
  ``$eq`` (exact equality, also for objects), ``$ne`` (true when the field is missing or
  differs), ``$gt $gte $lt $lte`` (operand must be a number or a string; a field only
  matches when it has the same kind: numbers by value, strings by code point).
  A missing field satisfies ``$ne`` and nothing else.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, ParamSpec, TypedDict, TypeVar

from threadloom.store.embed import tokenize_path

__all__ = [
    "NOT_PROVIDED",
    "BaseStore",
    "GetOp",
    "IndexConfig",
    "InvalidNamespaceError",
    "Item",
    "ListNamespacesOp",
    "MatchCondition",
    "NamespacePath",
    "NotProvided",
    "Op",
    "PutOp",
    "Result",
    "SearchItem",
    "SearchOp",
    "SemanticSearchNotSupportedError",
    "TTLConfig",
]


# --------------------------------------------------------------------------------------
# Data shapes
# --------------------------------------------------------------------------------------


def _coerce_datetime(value: datetime | str, field: str) -> datetime:
    """Accept a datetime or an ISO string (as produced by ``Item.dict()``), return aware UTC.

    Naive datetimes are assumed to be UTC: the stores only ever produce aware ones, and
    treating a naive value as local time would silently shift it.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"Item.{field} must be a datetime or ISO string, got {value!r}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


_ITEM_FIELDS = ("namespace", "key", "value", "created_at", "updated_at")


class Item:
    """One stored document plus where it lives and when it was written.

    Items are what ``get`` and ``search`` return. Equality compares every field (value
    included) so tests and callers can compare whole items; the hash ignores the value
    (dicts are unhashable) but is consistent with equality.
    """

    __slots__ = ("value", "key", "namespace", "created_at", "updated_at")

    def __init__(
        self,
        *,
        value: dict[str, Any],
        key: str,
        namespace: tuple[str, ...],
        created_at: datetime | str,
        updated_at: datetime | str,
    ) -> None:
        self.value: dict[str, Any] = value
        self.key: str = key
        self.namespace: tuple[str, ...] = tuple(namespace)
        self.created_at: datetime = _coerce_datetime(created_at, "created_at")
        self.updated_at: datetime = _coerce_datetime(updated_at, "updated_at")

    def _base_fields(self) -> tuple[Any, ...]:
        return (self.namespace, self.key, self.value, self.created_at, self.updated_at)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Item):
            return NotImplemented
        return self._base_fields() == other._base_fields()

    def __hash__(self) -> int:
        return hash((self.namespace, self.key, self.created_at, self.updated_at))

    def dict(self) -> dict[str, Any]:
        """A JSON-friendly view: namespace as a list, timestamps as ISO 8601 strings."""
        return {
            "namespace": list(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _ITEM_FIELDS)
        return f"{type(self).__name__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor: rebuild through a helper so pickle/copy work.
        return (_rebuild_item, (type(self), self._state()))

    def _state(self) -> builtins.dict[str, Any]:  # (``dict`` here is the method above)
        return {name: getattr(self, name) for name in _ITEM_FIELDS}


class SearchItem(Item):
    """An :class:`Item` returned by ``search``, with the relevance ``score``.

    ``score`` is the cosine similarity to the query for semantic searches, ``None`` for
    plain searches (and for unindexed items in a semantic search). Two search items are
    equal when all base fields and the score match; a search item equals a plain item with
    the same base fields, so a search hit can be compared with the result of ``get``.
    """

    __slots__ = ("score",)

    def __init__(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        created_at: datetime | str,
        updated_at: datetime | str,
        score: float | None = None,
    ) -> None:
        super().__init__(
            value=value,
            key=key,
            namespace=namespace,
            created_at=created_at,
            updated_at=updated_at,
        )
        self.score: float | None = score

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SearchItem):
            return self._base_fields() == other._base_fields() and self.score == other.score
        return super().__eq__(other)

    __hash__ = Item.__hash__

    def dict(self) -> dict[str, Any]:
        """Like :meth:`Item.dict`, plus ``score``."""
        result = super().dict()
        result["score"] = self.score
        return result

    def __repr__(self) -> str:
        base = super().__repr__()[:-1]
        return f"{base}, score={self.score!r})"

    def _state(self) -> builtins.dict[str, Any]:
        state = super()._state()
        state["score"] = self.score
        return state


def _rebuild_item(cls: type[Item], state: dict[str, Any]) -> Item:
    """Unpickling helper for :class:`Item` / :class:`SearchItem`."""
    return cls(**state)


class NotProvided:
    """Sentinel type: "argument not given", distinct from an explicit ``None``."""

    _instance: NotProvided | None = None

    def __new__(cls) -> NotProvided:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_PROVIDED"


NOT_PROVIDED = NotProvided()

NamespacePath = tuple[str, ...]
"""A namespace pattern for ``list_namespaces``; the label ``"*"`` matches any one label."""


class GetOp(NamedTuple):
    """Read one item by exact namespace and key; the result is an ``Item`` or ``None``."""

    namespace: tuple[str, ...]
    key: str
    refresh_ttl: bool = True


class SearchOp(NamedTuple):
    """Find items whose namespace starts with ``namespace_prefix`` and match ``filter``."""

    namespace_prefix: tuple[str, ...]
    filter: dict[str, Any] | None = None
    limit: int = 10
    offset: int = 0
    query: str | None = None
    refresh_ttl: bool = True


class PutOp(NamedTuple):
    """Write (insert or overwrite) one item; ``value=None`` deletes it.

    ``index`` selects fields to embed for semantic search (``False``: do not index this
    value; ``None``: the store's configured fields); with no index configured it is
    accepted and ignored. ``ttl`` (minutes) is not supported; it must be ``None``.
    """

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any] | None
    # (LangGraph's field name; it shadows tuple.index, which a PutOp does not offer)
    index: Literal[False] | list[str] | None = None  # type: ignore[assignment]
    ttl: float | None = None


class MatchCondition(NamedTuple):
    """One namespace pattern for ``list_namespaces``: ``path`` must be a prefix or suffix."""

    match_type: Literal["prefix", "suffix"]
    path: NamespacePath


class ListNamespacesOp(NamedTuple):
    """List distinct namespaces (optionally truncated to ``max_depth`` labels), sorted."""

    match_conditions: tuple[MatchCondition, ...] | None = None
    max_depth: int | None = None
    limit: int = 100
    offset: int = 0


Op = GetOp | SearchOp | PutOp | ListNamespacesOp
Result = Item | list[Item] | list[SearchItem] | list[tuple[str, ...]] | None


class IndexConfig(TypedDict, total=False):
    """Semantic-search index settings: ``embed`` (an Embeddings object, a sync or async
    function from texts to vectors, or a ``"provider:model"`` string), ``dims`` (vector
    size) and ``fields`` (JSON paths to embed; default ``["$"]``, the whole value)."""

    dims: int
    embed: Any
    fields: list[str] | None


class TTLConfig(TypedDict, total=False):
    """Time-to-live settings (accepted for API compatibility; not supported yet)."""

    refresh_on_read: bool
    default_ttl: float | None
    sweep_interval_minutes: int | None


class InvalidNamespaceError(ValueError):
    """A namespace (or one of its labels) is malformed; the message names the bad value."""


class SemanticSearchNotSupportedError(NotImplementedError):
    """``query=`` / ``index=`` asked for semantic search of a store that has no index (or
    of a backend that cannot do it).

    Raised instead of silently ignoring the query so callers never mistake unranked
    results for relevance-ranked ones.
    """


# --------------------------------------------------------------------------------------
# Validation (shared by every backend so they accept and reject the same input)
# --------------------------------------------------------------------------------------

_RESERVED_ROOT_LABEL = "langgraph"
_FILTER_KEY_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,128}$")
_ORDER_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})
_FILTER_OPS = frozenset({"$eq", "$ne"}) | _ORDER_OPS
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _as_namespace(namespace: Any, what: str = "namespace") -> tuple[str, ...]:
    """Turn a sequence of labels into a tuple; a bare string is a mistake, not labels."""
    if isinstance(namespace, str | bytes) or not isinstance(namespace, Iterable):
        raise InvalidNamespaceError(
            f"{what} must be a tuple of string labels, got {namespace!r}; "
            f"write ({namespace!r},) for a one-label namespace"
        )
    return tuple(namespace)


def _validate_labels(namespace: tuple[Any, ...], *, allow_wildcard: bool = False) -> None:
    """Each label must be a non-empty string without "." or NUL.

    Labels are joined with "." in the SQL backends (so a prefix search is one range scan);
    a "." inside a label would make ``("a.b",)`` indistinguishable from ``("a", "b")``.
    NUL is rejected because PostgreSQL text cannot hold it.
    """
    for index, label in enumerate(namespace):
        if not isinstance(label, str):
            raise InvalidNamespaceError(
                f"Namespace labels must be strings, but label {index} of {namespace!r} is "
                f"{label!r} ({type(label).__name__})"
            )
        if allow_wildcard and label == "*":
            continue
        if not label:
            raise InvalidNamespaceError(
                f"Namespace labels cannot be empty strings: label {index} of {namespace!r}"
            )
        if "." in label:
            raise InvalidNamespaceError(
                f"Namespace labels cannot contain periods ('.'): {label!r} in {namespace!r}"
            )
        if "\x00" in label:
            raise InvalidNamespaceError(
                f"Namespace labels cannot contain NUL characters: {label!r} in {namespace!r}"
            )


def _validate_write_namespace(namespace: tuple[Any, ...]) -> None:
    """Rules for storing a value: non-empty, valid labels, root label not reserved."""
    if not namespace:
        raise InvalidNamespaceError(
            f"Namespace cannot be empty when storing a value (got {namespace!r})"
        )
    _validate_labels(namespace)
    if namespace[0] == _RESERVED_ROOT_LABEL:
        raise InvalidNamespaceError(
            f"Root label for namespace cannot be {_RESERVED_ROOT_LABEL!r} (reserved): {namespace!r}"
        )


def _validate_key(key: Any) -> None:
    if not isinstance(key, str):
        raise ValueError(f"Store keys must be strings, got {key!r} ({type(key).__name__})")
    if "\x00" in key:
        raise ValueError(f"Store keys cannot contain NUL characters: {key!r}")


def _validate_page(limit: Any, offset: Any) -> None:
    for name, number in (("limit", limit), ("offset", offset)):
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {number!r}")


def _reject_query(query: str | None) -> None:
    if query:
        raise SemanticSearchNotSupportedError(
            f"Semantic search (query={query!r}) is not supported by this store: it has no "
            "embedding index. Create it with one, e.g. InMemoryStore(index={'embed': "
            "embeddings, 'dims': 1536}), or drop query= and use filter=."
        )


def _validate_op(op: Any, semantic: bool = False) -> None:
    """Validate one operation; called for every op of a batch before any runs."""
    if isinstance(op, GetOp):
        _validate_labels(_as_namespace(op.namespace))
        _validate_key(op.key)
    elif isinstance(op, PutOp):
        namespace = _as_namespace(op.namespace)
        _validate_key(op.key)
        if op.value is None:
            _validate_labels(namespace)
        else:
            _validate_write_namespace(namespace)
            if not isinstance(op.value, dict):
                raise ValueError(
                    f"Store values must be dicts, got {op.value!r} "
                    f"({type(op.value).__name__}) for key {op.key!r}"
                )
        if op.ttl is not None:
            raise NotImplementedError(
                f"TTL is not supported by threadloom stores yet (ttl={op.ttl!r})"
            )
        if op.index not in (None, False) and not (
            isinstance(op.index, list) and all(isinstance(f, str) for f in op.index)
        ):
            raise ValueError(f"index must be None, False or a list of field paths: {op.index!r}")
        if isinstance(op.index, list):
            for field in op.index:
                tokenize_path(field)
    elif isinstance(op, SearchOp):
        _validate_labels(_as_namespace(op.namespace_prefix, "namespace_prefix"))
        _validate_page(op.limit, op.offset)
        if op.query is not None and not isinstance(op.query, str):
            raise ValueError(f"query must be a string or None, got {op.query!r}")
        if not semantic:
            _reject_query(op.query)
        _parse_filter(op.filter)
    elif isinstance(op, ListNamespacesOp):
        for condition in op.match_conditions or ():
            if not isinstance(condition, MatchCondition) or condition.match_type not in (
                "prefix",
                "suffix",
            ):
                raise ValueError(f"Invalid namespace match condition: {condition!r}")
            _validate_labels(_as_namespace(condition.path, "path"), allow_wildcard=True)
        if op.max_depth is not None and (
            isinstance(op.max_depth, bool) or not isinstance(op.max_depth, int) or op.max_depth < 1
        ):
            raise ValueError(f"max_depth must be a positive integer or None: {op.max_depth!r}")
        _validate_page(op.limit, op.offset)
    else:
        raise TypeError(f"Unknown store operation: {op!r}")


def _validate_ops(ops: Iterable[Op], *, semantic: bool = False) -> list[Op]:
    """Validate a batch; ``semantic`` says the store has an embedding index (queries
    allowed)."""
    ops = list(ops)
    for op in ops:
        _validate_op(op, semantic)
    return ops


# --------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Condition:
    """One normalized filter test: ``op`` applied to the field at ``path``.

    ``op`` is one of ``$eq $ne $gt $gte $lt $lte`` or the internal ``$object``
    ("the field is an object", produced by ``{"k": {}}``).
    """

    key: str
    path: tuple[str, ...]
    op: str
    operand: Any


def _check_filter_key(key: Any) -> tuple[str, ...]:
    if not isinstance(key, str) or not _FILTER_KEY_RE.match(key):
        raise ValueError(
            f"Invalid filter key {key!r}: keys must match ^[A-Za-z0-9_\\-.]{{1,128}}$ "
            "(letters, digits, '_', '-', and '.' between nested field names)"
        )
    path = tuple(key.split("."))
    if any(not segment for segment in path):
        raise ValueError(f"Invalid filter key {key!r}: empty field name between dots")
    return path


def _check_json_operand(value: Any, key: str) -> None:
    """Operands must be JSON values so every backend can compare them the same way."""
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"Filter value for {key!r} must be finite, got {value!r}")
        return
    if isinstance(value, list | tuple):
        for element in value:
            _check_json_operand(element, key)
        return
    if isinstance(value, Mapping):
        for sub_key, element in value.items():
            if not isinstance(sub_key, str):
                raise ValueError(f"Filter value for {key!r} has a non-string key {sub_key!r}")
            _check_json_operand(element, key)
        return
    raise ValueError(
        f"Filter value for {key!r} must be JSON-like (None, bool, number, str, list, dict), "
        f"got {value!r} ({type(value).__name__})"
    )


def _to_json_value(value: Any) -> Any:
    """Tuples become lists, mappings become dicts: the JSON shape stored values have."""
    if isinstance(value, list | tuple):
        return [_to_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


def _parse_filter(filter: Mapping[str, Any] | None) -> list[_Condition]:
    """Validate a filter and flatten it into conditions (raises ``ValueError``)."""
    if filter is None:
        return []
    if not isinstance(filter, Mapping):
        raise ValueError(f"filter must be a dict, got {filter!r}")
    conditions: list[_Condition] = []
    for key, expected in filter.items():
        _flatten_condition(key, expected, conditions)
    return conditions


def _flatten_condition(key: Any, expected: Any, out: list[_Condition]) -> None:
    path = _check_filter_key(key)
    if isinstance(expected, Mapping):
        op_keys = [k for k in expected if isinstance(k, str) and k.startswith("$")]
        if op_keys and len(op_keys) != len(expected):
            raise ValueError(
                f"Filter for {key!r} mixes operators and field names: {dict(expected)!r}"
            )
        if not op_keys:
            if not expected:
                out.append(_Condition(key, path, "$object", None))
            for sub_key, sub_expected in expected.items():
                if not isinstance(sub_key, str):
                    raise ValueError(f"Invalid filter key {sub_key!r} under {key!r}")
                _flatten_condition(f"{key}.{sub_key}", sub_expected, out)
            return
        for op, operand in expected.items():
            if op not in _FILTER_OPS:
                raise ValueError(
                    f"Unknown filter operator {op!r} for {key!r}; supported: "
                    f"{', '.join(sorted(_FILTER_OPS))}"
                )
            _check_json_operand(operand, key)
            if op in _ORDER_OPS and (
                isinstance(operand, bool) or not isinstance(operand, int | float | str)
            ):
                raise ValueError(
                    f"Operator {op} for {key!r} needs a number or string, got {operand!r}"
                )
            out.append(_Condition(key, path, op, _to_json_value(operand)))
        return
    _check_json_operand(expected, key)
    out.append(_Condition(key, path, "$eq", _to_json_value(expected)))


_MISSING = object()


def _lookup(value: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if not isinstance(value, Mapping) or segment not in value:
            return _MISSING
        value = value[segment]
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_equal(left: Any, right: Any) -> bool:
    """JSON equality: numbers by value, booleans distinct from numbers, deep for containers."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) or _is_number(right):
        return _is_number(left) and _is_number(right) and left == right
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list | tuple | Mapping) or isinstance(right, list | tuple | Mapping):
        return False
    return type(left) is type(right) and left == right


def _condition_holds(value: Mapping[str, Any], condition: _Condition) -> bool:
    actual = _lookup(value, condition.path)
    op, operand = condition.op, condition.operand
    if op == "$ne":
        return actual is _MISSING or not _json_equal(actual, operand)
    if actual is _MISSING:
        return False
    if op == "$eq":
        return _json_equal(actual, operand)
    if op == "$object":
        return isinstance(actual, Mapping)
    if isinstance(operand, str):
        if not isinstance(actual, str):
            return False
    elif not _is_number(actual):
        return False
    if op == "$gt":
        return bool(actual > operand)
    if op == "$gte":
        return bool(actual >= operand)
    if op == "$lt":
        return bool(actual < operand)
    return bool(actual <= operand)


def _matches(value: Mapping[str, Any], conditions: Sequence[_Condition]) -> bool:
    """Python evaluation of a parsed filter (InMemoryStore, and SQL fallbacks)."""
    return all(_condition_holds(value, condition) for condition in conditions)


def _fits_int64(value: Any) -> bool:
    return (
        not isinstance(value, int) or isinstance(value, bool) or (_INT64_MIN <= value <= _INT64_MAX)
    )


# --------------------------------------------------------------------------------------
# Namespaces
# --------------------------------------------------------------------------------------

NAMESPACE_SEPARATOR = "."


def _join_namespace(namespace: Sequence[str]) -> str:
    """SQL storage form of a namespace. Unambiguous because labels cannot contain "."."""
    return NAMESPACE_SEPARATOR.join(namespace)


def _split_namespace(text: str) -> tuple[str, ...]:
    return tuple(text.split(NAMESPACE_SEPARATOR)) if text else ()


def _prefix_bounds(prefix: Sequence[str]) -> tuple[str, str, str]:
    """``(exact, low, high)`` so that "namespace starts with prefix" is
    ``ns = exact OR (ns >= low AND ns < high)`` under byte/code-point ordering.

    ``high`` replaces the trailing "." with "/", the next character, so the range covers
    exactly the strings that start with ``exact + "."``. This is a plain index range scan
    and needs no LIKE escaping for labels containing ``%`` or ``_``.
    """
    exact = _join_namespace(prefix)
    return exact, exact + NAMESPACE_SEPARATOR, exact + chr(ord(NAMESPACE_SEPARATOR) + 1)


def _literal_prefix(conditions: Sequence[MatchCondition] | None) -> tuple[str, ...]:
    """The longest wildcard-free leading part of the first prefix condition (for SQL)."""
    for condition in conditions or ():
        if condition.match_type == "prefix":
            literal: list[str] = []
            for label in condition.path:
                if label == "*":
                    break
                literal.append(label)
            return tuple(literal)
    return ()


def _path_matches(labels: Sequence[str], pattern: Sequence[str]) -> bool:
    return len(labels) == len(pattern) and all(
        p == "*" or p == label for label, p in zip(labels, pattern, strict=True)
    )


def _namespace_matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    if condition.match_type == "prefix":
        return _path_matches(namespace[: len(path)], path)
    return _path_matches(namespace[len(namespace) - len(path) :], path)


def _list_namespaces(
    namespaces: Iterable[tuple[str, ...]], op: ListNamespacesOp
) -> list[tuple[str, ...]]:
    """Apply a ``ListNamespacesOp`` to candidate namespaces: match, truncate, dedupe, sort,
    page. Sorting is by label tuple (not by joined string) so every backend agrees."""
    conditions = op.match_conditions or ()
    selected: set[tuple[str, ...]] = set()
    for namespace in namespaces:
        if all(_namespace_matches(namespace, c) for c in conditions):
            selected.add(namespace[: op.max_depth] if op.max_depth else namespace)
    ordered = sorted(selected)
    return ordered[op.offset : op.offset + op.limit]


# --------------------------------------------------------------------------------------
# JSON (SQL backends)
# --------------------------------------------------------------------------------------


def _dumps_value(value: dict[str, Any], key: str) -> str:
    """Serialize a value for a SQL backend, naming the key when it is not plain JSON.

    ``allow_nan=False`` because NaN/Infinity are not JSON and break SQL JSON functions.
    """
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Value for key {key!r} cannot be stored as JSON ({exc}); SQL-backed stores "
            "hold plain JSON (dict, list, str, int, float, bool, None)"
        ) from exc


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------


class BaseStore(ABC):
    """Long-term memory shared across threads: documents under hierarchical namespaces.

    Subclasses implement :meth:`batch` and :meth:`abatch`; the helpers below are thin
    wrappers that build operations, so a backend is correct as soon as its batch is.
    """

    supports_ttl: bool = False
    ttl_config: TTLConfig | None = None

    @abstractmethod
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order and return one result per op (``None`` for puts)."""

    @abstractmethod
    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of :meth:`batch`."""

    # -- sync helpers -----------------------------------------------------------------

    def get(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """Return the item at ``(namespace, key)``, or ``None`` when there is none."""
        return self.batch([_get_op(namespace, key, refresh_ttl)])[0]  # type: ignore[return-value]

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Items under ``namespace_prefix`` matching ``filter``, in insertion order.

        See the module docstring for the filter language. ``query`` raises
        ranks by semantic similarity when the store has an embedding index and raises
        :class:`SemanticSearchNotSupportedError` otherwise.
        """
        op = _search_op(namespace_prefix, query, filter, limit, offset, refresh_ttl)
        return self.batch([op])[0]  # type: ignore[return-value]

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | None | NotProvided = NOT_PROVIDED,
    ) -> None:
        """Insert or overwrite the item at ``(namespace, key)`` with ``value`` (a dict)."""
        self.batch([_put_op(namespace, key, value, index, ttl)])

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Remove the item at ``(namespace, key)``; deleting a missing item is a no-op."""
        self.batch([PutOp(_as_namespace(namespace), key, None)])

    def list_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """Distinct namespaces (sorted), optionally filtered by ``prefix``/``suffix``
        patterns (``"*"`` matches one label) and truncated to ``max_depth`` labels."""
        op = _list_op(prefix, suffix, max_depth, limit, offset)
        return self.batch([op])[0]  # type: ignore[return-value]

    # -- async helpers ----------------------------------------------------------------

    async def aget(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """Async twin of :meth:`get`."""
        return (await self.abatch([_get_op(namespace, key, refresh_ttl)]))[0]  # type: ignore[return-value]

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Async twin of :meth:`search`."""
        op = _search_op(namespace_prefix, query, filter, limit, offset, refresh_ttl)
        return (await self.abatch([op]))[0]  # type: ignore[return-value]

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | None | NotProvided = NOT_PROVIDED,
    ) -> None:
        """Async twin of :meth:`put`."""
        await self.abatch([_put_op(namespace, key, value, index, ttl)])

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        """Async twin of :meth:`delete`."""
        await self.abatch([PutOp(_as_namespace(namespace), key, None)])

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """Async twin of :meth:`list_namespaces`."""
        op = _list_op(prefix, suffix, max_depth, limit, offset)
        return (await self.abatch([op]))[0]  # type: ignore[return-value]


def _get_op(namespace: tuple[str, ...], key: str, refresh_ttl: bool | None) -> GetOp:
    return GetOp(_as_namespace(namespace), key, True if refresh_ttl is None else refresh_ttl)


def _search_op(
    namespace_prefix: tuple[str, ...],
    query: str | None,
    filter: dict[str, Any] | None,
    limit: int,
    offset: int,
    refresh_ttl: bool | None,
) -> SearchOp:
    return SearchOp(
        _as_namespace(namespace_prefix, "namespace_prefix"),
        filter,
        limit,
        offset,
        query,
        True if refresh_ttl is None else refresh_ttl,
    )


def _put_op(
    namespace: tuple[str, ...],
    key: str,
    value: dict[str, Any],
    index: Literal[False] | list[str] | None,
    ttl: float | None | NotProvided,
) -> PutOp:
    if value is None or not isinstance(value, dict):
        # put(None) would silently delete: insist on delete() for that.
        raise ValueError(
            f"Store values must be dicts, got {value!r} ({type(value).__name__}) for key "
            f"{key!r}; use delete() to remove an item"
        )
    return PutOp(
        _as_namespace(namespace),
        key,
        value,
        index,
        None if isinstance(ttl, NotProvided) else ttl,
    )


def _list_op(
    prefix: NamespacePath | None,
    suffix: NamespacePath | None,
    max_depth: int | None,
    limit: int,
    offset: int,
) -> ListNamespacesOp:
    conditions: list[MatchCondition] = []
    if prefix is not None:
        conditions.append(MatchCondition("prefix", _as_namespace(prefix, "prefix")))
    if suffix is not None:
        conditions.append(MatchCondition("suffix", _as_namespace(suffix, "suffix")))
    return ListNamespacesOp(tuple(conditions) or None, max_depth, limit, offset)


_P = ParamSpec("_P")
_R = TypeVar("_R")


async def _run_in_thread(func: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run blocking backend work off the event loop (used by SQLite / sync Postgres)."""
    return await asyncio.to_thread(func, *args, **kwargs)
