"""Delta chains read back: rebuild list values from stored rows (a full row plus the
deltas appended to it), and say which rows a prune must keep.

Why apart from the planner (``delta``): every saver reads chains (the memory saver from
its dicts, the SQL savers from fetched rows), and reading needs none of the planner's
per-thread state. ``resolve()`` rebuilds values iteratively (no recursion, cycle-safe),
decoding each row once even when several requested versions share a chain;
``needed_keys()`` is what a kept checkpoint needs: its rows plus every base their chains
walk through. Damage (a missing base, a loop, a delta over a non-list) is
``BrokenChainError``, which savers turn into ``CorruptCheckpointError`` naming the row.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EMPTY",
    "BlobKey",
    "BrokenChainError",
    "Resolved",
    "StoredBlob",
    "chain_roots",
    "needed_keys",
    "resolve",
    "shared_copy",
]

EMPTY: Any = object()
"""Planned value of a channel listed in ``new_versions`` but absent from the values."""


class BrokenChainError(ValueError):
    """A delta's base row is missing or the chain loops: the stored data is damaged."""

    def __init__(self, key: Hashable, reason: str) -> None:
        super().__init__(f"{reason} (at {key!r})")
        self.key = key


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One stored row: a full value, or (``base_version`` set) the items appended to it."""

    type: str
    blob: bytes | None
    base_version: str | None = None
    root_version: str | None = None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A rebuilt value, with the chain facts a later delta needs."""

    value: Any
    root: str  # version of the chain's full row
    depth: int  # deltas applied on top of it


BlobKey = tuple[Any, ...]  # (..., channel, version): the version is always last


def _base_key(key: BlobKey, base_version: str) -> BlobKey:
    return (*key[:-1], base_version)


def resolve(
    rows: Mapping[BlobKey, StoredBlob],
    targets: Iterable[BlobKey],
    decode: Callable[[BlobKey, StoredBlob], Any],
) -> dict[BlobKey, Resolved]:
    """Rebuild the value of each target key present in ``rows``.

    Targets missing from ``rows`` are left out (an absent blob means an empty channel).
    ``decode(key, row)`` turns a row into a Python value; it is called once per row.
    Raises ``BrokenChainError`` when a base is missing, a chain loops, or a value that
    deltas extend is not a list.
    """
    out: dict[BlobKey, Resolved] = {}
    wanted = {t for t in targets if t in rows}
    for target in wanted:
        if target in out:
            continue
        chain: list[BlobKey] = []
        seen: set[BlobKey] = set()
        key = target
        while True:
            if key in out:
                base = out[key]
                acc_root, acc_depth, acc = base.root, base.depth, base.value
                break
            row = rows.get(key)
            if row is None:
                raise BrokenChainError(key, "the base version of a stored list delta is missing")
            if row.base_version is None:
                acc = decode(key, row)
                acc_root, acc_depth = str(key[-1]), 0
                if key in wanted:
                    out[key] = Resolved(acc, acc_root, 0)
                break
            if key in seen:
                raise BrokenChainError(key, "stored list deltas form a loop")
            seen.add(key)
            chain.append(key)
            key = _base_key(key, row.base_version)
        if chain and type(acc) is not list:
            raise BrokenChainError(key, "a stored list delta extends a value that is not a list")
        acc = list(acc) if chain else acc
        for key in reversed(chain):
            items = decode(key, rows[key])
            if type(items) is not list:
                raise BrokenChainError(key, "a stored list delta does not hold a list")
            acc.extend(items)
            acc_depth += 1
            if key in wanted:
                out[key] = Resolved(list(acc), acc_root, acc_depth)
    return out


def shared_copy(value: Any) -> Any:
    """The value for a second checkpoint of the same read that holds the same version: a
    list of its own over the same items (values rebuilt in one read share the items
    common to them, as ``resolve`` builds them)."""
    return list(value) if type(value) is list else value


def chain_roots(rows: Mapping[BlobKey, StoredBlob]) -> set[BlobKey]:
    """Keys of the chain roots the delta rows in ``rows`` need (to fetch in one query)."""
    return {
        _base_key(k, r.root_version or r.base_version or "")
        for k, r in rows.items()
        if r.base_version is not None
    }


def needed_keys(referenced: Iterable[BlobKey], bases: Mapping[BlobKey, str | None]) -> set[BlobKey]:
    """``referenced`` plus every base their delta chains walk through.

    ``bases`` maps each stored key to its base version (None for a full row). Keys not in
    ``bases`` are ignored (nothing stored for them).
    """
    needed: set[BlobKey] = set()
    for start in referenced:
        key: BlobKey | None = start
        while key is not None and key in bases and key not in needed:
            needed.add(key)
            base = bases[key]
            key = _base_key(key, base) if base is not None else None
    return needed
