"""Semantic search support shared by the stores: embedders, field paths, ranking.

A store created with ``index={"embed": ..., "dims": ..., "fields": [...]}`` embeds the
text found at ``fields`` of every value it stores and ranks ``search(..., query=...)``
results by cosine similarity between the query's vector and the item's vectors (the
best-matching field counts).

``embed`` may be

* a LangChain ``Embeddings`` object (anything with ``embed_documents`` / ``embed_query``;
  ``aembed_documents`` / ``aembed_query`` are used by the async store methods),
* a function ``texts -> vectors``, sync or ``async def`` (an async-only function cannot
  serve the sync methods while an event loop is running in the same thread),
* a ``"provider:model"`` string, resolved through LangChain's ``init_embeddings``
  (``langchain`` must be installed with the provider's package; there is no network
  fallback).

Field paths name where the text lives in a value:

* ``"$"`` is the whole value (as JSON text); it is the default when ``fields`` is omitted,
* ``"text"`` a top-level key, ``"a.b"`` a nested key,
* ``"items[0]"``, ``"items[-1]"`` one list element, ``"items[*].x"`` every element.

A string is embedded as is; any other JSON value as its JSON text. A path that finds
nothing simply contributes no vector.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

__all__ = ["Embedder", "ensure_embeddings", "get_text_at_path", "tokenize_path"]

Vector = list[float]


class Embedder:
    """A uniform face over the accepted ``embed`` forms: sync and async, documents and
    queries."""

    def __init__(
        self,
        *,
        documents: Callable[[list[str]], list[Vector]] | None,
        adocuments: Callable[[list[str]], Awaitable[list[Vector]]] | None,
        query: Callable[[str], Vector] | None = None,
        aquery: Callable[[str], Awaitable[Vector]] | None = None,
        label: str,
    ) -> None:
        self._documents = documents
        self._adocuments = adocuments
        self._query = query
        self._aquery = aquery
        self.label = label

    def embed_documents(self, texts: list[str]) -> list[Vector]:
        if not texts:
            return []
        if self._documents is not None:
            return _vectors(self._documents(texts), len(texts), self.label)
        assert self._adocuments is not None
        return _vectors(_run_coroutine(self._adocuments(texts), self.label), len(texts),
                        self.label)

    def embed_query(self, text: str) -> Vector:
        if self._query is not None:
            return _vector(self._query(text), self.label)
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[Vector]:
        if not texts:
            return []
        if self._adocuments is not None:
            return _vectors(await self._adocuments(texts), len(texts), self.label)
        assert self._documents is not None
        return _vectors(await asyncio.to_thread(self._documents, texts), len(texts),
                        self.label)

    async def aembed_query(self, text: str) -> Vector:
        if self._aquery is not None:
            return _vector(await self._aquery(text), self.label)
        if self._query is not None and self._adocuments is None:
            return _vector(await asyncio.to_thread(self._query, text), self.label)
        return (await self.aembed_documents([text]))[0]


def _run_coroutine(coroutine: Any, label: str) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    coroutine.close()
    raise RuntimeError(
        f"The embedding function {label} is async-only, so the sync store methods cannot "
        "call it from inside a running event loop; use the async methods (aput, asearch, "
        "abatch) or give a sync function / an Embeddings object"
    )


def _vector(value: Any, label: str) -> Vector:
    try:
        vector = [float(x) for x in value]
    except TypeError as exc:
        raise TypeError(f"{label} returned {value!r}, not a vector of numbers") from exc
    return vector


def _vectors(values: Any, count: int, label: str) -> list[Vector]:
    vectors = [_vector(v, label) for v in values]
    if len(vectors) != count:
        raise ValueError(f"{label} returned {len(vectors)} vectors for {count} texts")
    return vectors


def ensure_embeddings(embed: Any) -> Embedder:
    """Turn an ``IndexConfig["embed"]`` value into an :class:`Embedder` (see module doc)."""
    if isinstance(embed, Embedder):
        return embed
    if isinstance(embed, str):
        return _from_provider_string(embed)
    if hasattr(embed, "embed_documents") and hasattr(embed, "embed_query"):
        return Embedder(
            documents=embed.embed_documents,
            adocuments=getattr(embed, "aembed_documents", None),
            query=embed.embed_query,
            aquery=getattr(embed, "aembed_query", None),
            label=type(embed).__name__,
        )
    if callable(embed):
        label = getattr(embed, "__name__", type(embed).__name__)
        target = getattr(embed, "__call__", embed)  # noqa: B004 - async __call__ objects
        if inspect.iscoroutinefunction(embed) or inspect.iscoroutinefunction(target):
            return Embedder(documents=None, adocuments=embed, label=label)
        return Embedder(documents=embed, adocuments=None, label=label)
    raise TypeError(
        f"index['embed'] must be an Embeddings object, a function from texts to vectors "
        f"(sync or async) or a 'provider:model' string, got {embed!r} "
        f"({type(embed).__name__})"
    )


def _from_provider_string(spec: str) -> Embedder:
    if ":" not in spec:
        raise ValueError(
            f"index['embed']={spec!r}: a string must name 'provider:model' "
            "(e.g. 'openai:text-embedding-3-small')"
        )
    try:
        from langchain.embeddings import init_embeddings
    except ImportError as exc:
        raise ValueError(
            f"index['embed']={spec!r} needs LangChain's init_embeddings to resolve the "
            "provider, but the 'langchain' package is not installed; install it (with the "
            "provider's package) or pass an Embeddings object or a function instead"
        ) from exc
    try:
        embeddings = init_embeddings(spec)
    except Exception as exc:
        raise ValueError(
            f"index['embed']={spec!r} could not be resolved into an embeddings model: {exc}"
        ) from exc
    return ensure_embeddings(embeddings)


# --------------------------------------------------------------------------------------
# Field paths
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\[(\*|-?\d+)\]|([^.\[\]]+)|(\.)|(.)")


def tokenize_path(path: str) -> tuple[str | int, ...]:
    """``"a.b[*].c[0]"`` -> ``("a", "b", "*", "c", 0)``; ``"$"`` -> ``()`` (the whole
    value). ``"*"`` stands for every list element. Raises ``ValueError`` on bad syntax."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"Index field paths must be non-empty strings, got {path!r}")
    if path == "$":
        return ()
    tokens: list[str | int] = []
    expect_name = True
    for match in _TOKEN_RE.finditer(path):
        index, name, dot, other = match.groups()
        if other is not None or (dot is not None and expect_name):
            raise ValueError(f"Invalid index field path {path!r}")
        if dot is not None:
            expect_name = True
        elif name is not None:
            if not expect_name:
                raise ValueError(f"Invalid index field path {path!r}")
            tokens.append(name)
            expect_name = False
        else:
            if not tokens:
                raise ValueError(f"Invalid index field path {path!r}: starts with [...]")
            tokens.append("*" if index == "*" else int(index))
            expect_name = False
    if expect_name:
        raise ValueError(f"Invalid index field path {path!r}: ends with '.'")
    return tuple(tokens)


def get_text_at_path(value: Any, path: str | Sequence[str | int]) -> list[str]:
    """The texts found at ``path`` in ``value`` (strings as is, other JSON as JSON text)."""
    tokens = tokenize_path(path) if isinstance(path, str) else tuple(path)
    found: list[Any] = []
    _collect(value, tokens, found)
    return [item if isinstance(item, str) else _json_text(item) for item in found]


def _collect(value: Any, tokens: tuple[str | int, ...], out: list[Any]) -> None:
    if not tokens:
        if value is not None:
            out.append(value)
        return
    head, rest = tokens[0], tokens[1:]
    if head == "*":
        if isinstance(value, list):
            for element in value:
                _collect(element, rest, out)
        return
    if isinstance(head, int):
        if isinstance(value, list) and -len(value) <= head < len(value):
            _collect(value[head], rest, out)
        return
    if isinstance(value, dict) and head in value:
        _collect(value[head], rest, out)


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def texts_to_embed(value: dict[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """``(field, text)`` pairs for every text found at ``fields`` in ``value``."""
    pairs: list[tuple[str, str]] = []
    for field in fields:
        for text in get_text_at_path(value, field):
            pairs.append((field, text))
    return pairs


# --------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0.0 when either vector is all zeros."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def best_score(query: Sequence[float], vectors: Sequence[Sequence[float]]) -> float | None:
    """The item's score: its best-matching vector's cosine similarity (``None``: no
    vectors)."""
    if not vectors:
        return None
    return max(cosine(query, v) for v in vectors)


# --------------------------------------------------------------------------------------
# A store's index
# --------------------------------------------------------------------------------------


class SemanticIndex:
    """A store's resolved ``index=`` config plus the batch-level embedding steps.

    ``embed_puts`` / ``aembed_puts`` return, per op position, the ``(field, vector)``
    pairs of each write that is to be indexed; ``embed_queries`` / ``aembed_queries`` the
    query vector of each search with a query. Both run before the store changes anything,
    so an embedding failure leaves the batch unapplied.
    """

    def __init__(self, config: Any, store_name: str) -> None:
        if not isinstance(config, dict):
            raise TypeError(f"{store_name}(index=...) must be a dict, got {config!r}")
        if "embed" not in config:
            raise ValueError(f"{store_name}(index=...) needs 'embed' (the embedding model)")
        dims = config.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ValueError(
                f"{store_name}(index=...) needs 'dims', the embedding size as a positive "
                f"integer, got {dims!r}"
            )
        fields = config.get("fields") or ["$"]
        if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
            raise ValueError(
                f"{store_name}(index=...)['fields'] must be a list of field paths, "
                f"got {fields!r}"
            )
        for field in fields:
            tokenize_path(field)
        self.config = dict(config)
        self.dims = dims
        self.fields = list(fields)
        self.embedder = ensure_embeddings(config["embed"])

    def _plan_puts(self, ops: Sequence[Any]) -> tuple[list[tuple[int, str]], list[str]]:
        from threadloom.store.base import PutOp

        owners: list[tuple[int, str]] = []
        texts: list[str] = []
        for position, op in enumerate(ops):
            if not isinstance(op, PutOp) or op.value is None or op.index is False:
                continue
            fields = self.fields if op.index is None else op.index
            for field, text in texts_to_embed(op.value, fields):
                owners.append((position, field))
                texts.append(text)
        return owners, texts

    def _group(
        self, owners: list[tuple[int, str]], vectors: list[Vector], ops: Sequence[Any]
    ) -> dict[int, list[tuple[str, Vector]]]:
        from threadloom.store.base import PutOp

        grouped: dict[int, list[tuple[str, Vector]]] = {
            position: []
            for position, op in enumerate(ops)
            if isinstance(op, PutOp) and op.value is not None and op.index is not False
        }
        for (position, field), vector in zip(owners, vectors, strict=True):
            grouped[position].append((field, self._check(vector)))
        return grouped

    def _check(self, vector: Vector) -> Vector:
        if len(vector) != self.dims:
            raise ValueError(
                f"The embedding model ({self.embedder.label}) returned a vector of "
                f"{len(vector)} numbers, but the store's index says dims={self.dims}"
            )
        return vector

    @staticmethod
    def _queries(ops: Sequence[Any]) -> list[tuple[int, str]]:
        from threadloom.store.base import SearchOp

        return [(i, op.query) for i, op in enumerate(ops) if isinstance(op, SearchOp) and op.query]

    def embed_puts(self, ops: Sequence[Any]) -> dict[int, list[tuple[str, Vector]]]:
        owners, texts = self._plan_puts(ops)
        return self._group(owners, self.embedder.embed_documents(texts), ops)

    async def aembed_puts(self, ops: Sequence[Any]) -> dict[int, list[tuple[str, Vector]]]:
        owners, texts = self._plan_puts(ops)
        return self._group(owners, await self.embedder.aembed_documents(texts), ops)

    def embed_queries(self, ops: Sequence[Any]) -> dict[int, Vector]:
        return {i: self._check(self.embedder.embed_query(q)) for i, q in self._queries(ops)}

    async def aembed_queries(self, ops: Sequence[Any]) -> dict[int, Vector]:
        return {
            i: self._check(await self.embedder.aembed_query(q)) for i, q in self._queries(ops)
        }


def rank(
    candidates: Sequence[tuple[Any, Sequence[Sequence[float]]]],
    query: Sequence[float],
    offset: int,
    limit: int,
) -> list[tuple[Any, float | None]]:
    """Order ``(item, vectors)`` candidates by score, best first (ties keep their order);
    items without vectors follow, unscored, in their original order. Then page."""
    scored: list[tuple[Any, float]] = []
    unscored: list[tuple[Any, float | None]] = []
    for item, vectors in candidates:
        score = best_score(query, vectors)
        if score is None:
            unscored.append((item, None))
        else:
            scored.append((item, score))
    scored.sort(key=lambda pair: -pair[1])
    ordered: list[tuple[Any, float | None]] = [*scored, *unscored]
    return ordered[offset : offset + limit]
