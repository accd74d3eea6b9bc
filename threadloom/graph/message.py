"""Message-list state helpers: the ``add_messages`` reducer and ``MessagesState``.

``add_messages`` merges two lists of chat messages by id: new messages are
appended, messages whose id already exists replace the old one in place, and
:class:`~langchain_core.messages.RemoveMessage` entries delete messages.
``MessagesState`` is a ready-made state schema whose ``messages`` key uses it.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, cast, overload

from langchain_core.messages import (
    AnyMessage,
    BaseMessage,
    BaseMessageChunk,
    MessageLikeRepresentation,
    RemoveMessage,
    convert_to_messages,
    message_chunk_to_message,
)

# typing_extensions' TypedDict: pydantic (tool signatures) rejects typing's on Python < 3.12.
from typing_extensions import TypedDict

from threadloom._context import current_task
from threadloom.channels.binop import _get_overwrite
from threadloom.graph import _message_index
from threadloom.graph.state import StateGraph
from threadloom.types import Overwrite
from threadloom.warnings import LangGraphDeprecatedSinceV10

__all__ = [
    "REMOVE_ALL_MESSAGES",
    "AnyMessage",
    "Messages",
    "MessageGraph",
    "MessagesState",
    "add_messages",
    "push_message",
]

REMOVE_ALL_MESSAGES = "__remove_all__"
"""Id for a ``RemoveMessage`` that clears every message preceding it."""

Messages = list[MessageLikeRepresentation] | MessageLikeRepresentation
"""A single message-like value or a list of them (accepted by ``add_messages``)."""

MessageFormat = Literal["langchain-openai"]
"""Output formats understood by ``add_messages(format=...)``."""

_ALLOWED_FORMATS: tuple[str | None, ...] = ("langchain-openai", None)


class _Unset:
    """Sentinel type marking an argument that was not passed at all."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unset>"


_UNSET = _Unset()

Reducer = Callable[[Messages, Messages], list[BaseMessage]]
"""A configured ``add_messages`` reducer: ``(left, right) -> merged``."""


@overload
def add_messages(
    left: Messages,
    right: Messages,
    *,
    format: MessageFormat | None = None,
) -> list[BaseMessage]: ...


@overload
def add_messages(
    *,
    format: MessageFormat | None = None,
) -> Reducer: ...


def add_messages(
    left: Messages | None | _Unset = _UNSET,
    right: Messages | None | _Unset = _UNSET,
    *,
    format: MessageFormat | None = None,
) -> list[BaseMessage] | Reducer:
    """Merge two lists of messages, updating existing messages by id.

    Both sides are first coerced to lists of ``BaseMessage``: message objects,
    ``(role, content)`` tuples, ``{"role"/"type": ..., "content": ...}`` dicts
    and plain strings (which become ``HumanMessage``) are accepted, message
    chunks are converted to full messages, and a single message (rather than a
    list) is wrapped in a list. Messages lacking an ``id`` get a fresh
    ``str(uuid.uuid4())`` id.

    Merge semantics (the result is always a new list; ``left`` is never
    mutated in place):

    * a right-hand message whose id is already present replaces the old
      message at the same position;
    * any other right-hand message is appended;
    * ``RemoveMessage(id=x)`` deletes message ``x``; deleting an id that does
      not exist raises ``ValueError``;
    * ``RemoveMessage(id=REMOVE_ALL_MESSAGES)`` discards everything on the
      left and everything before it on the right; only the right-hand
      messages after the last such marker are kept (merged with the same
      rules among themselves).

    When called with only keyword arguments, e.g.
    ``add_messages(format="langchain-openai")``, a configured reducer taking
    ``(left, right)`` is returned instead, suitable for use in
    ``Annotated[list[AnyMessage], add_messages(format=...)]``.

    Args:
        left: The current messages.
        right: The messages to merge in.
        format: ``None`` (default) to keep messages as they are, or
            ``"langchain-openai"`` to convert message content to
            OpenAI-style content blocks (e.g. ``"hi"`` becomes
            ``[{"type": "text", "text": "hi"}]``).

    Returns:
        The merged list of messages, or a configured reducer when neither
        ``left`` nor ``right`` is given.

    Raises:
        ValueError: If only one of ``left``/``right`` is given or either is
            ``None``, if a ``RemoveMessage`` targets an unknown id, or if
            ``format`` is not a supported value.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> history = [HumanMessage(content="Hello", id="1")]
        >>> update = [AIMessage(content="Hi there!", id="2")]
        >>> [m.content for m in add_messages(history, update)]
        ['Hello', 'Hi there!']
        >>> edit = [HumanMessage(content="Hello again", id="1")]
        >>> [m.content for m in add_messages(history + update, edit)]
        ['Hello again', 'Hi there!']
    """
    if format not in _ALLOWED_FORMATS:
        msg = (
            f"Unrecognized format={format!r}. Expected one of "
            f"{', '.join(repr(f) for f in _ALLOWED_FORMATS)}."
        )
        raise ValueError(msg)

    left_unset = isinstance(left, _Unset)
    right_unset = isinstance(right, _Unset)
    if left_unset and right_unset:
        return _make_reducer(format)
    if left_unset or right_unset or left is None or right is None:
        missing = [
            name
            for name, value in (("left", left), ("right", right))
            if value is None or isinstance(value, _Unset)
        ]
        msg = (
            "add_messages requires non-null 'left' and 'right' arguments; "
            f"missing or None: {', '.join(repr(n) for n in missing)}."
        )
        raise ValueError(msg)

    return _merge(cast(Messages, left), cast(Messages, right), format)


def _messages_delta_reducer(state: Messages, writes: Sequence[Messages]) -> list[BaseMessage]:
    """The batched form of ``add_messages`` that ``DeltaChannel`` takes: merge every write
    of ``writes`` (each one message-like or a list of them; a tuple is one message) into
    ``state``, in order."""
    right: list[Any] = []
    for write in writes:
        if isinstance(write, list):
            right.extend(write)
        else:
            right.append(write)
    return _merge(state, right, None)


def _prepare_delta_write(write: Any) -> Any:
    """A write as ``DeltaChannel`` records it: message-likes coerced to messages with
    ids, so that every replay of the record rebuilds the same messages (ids included)."""
    is_overwrite, replacement = _get_overwrite(write)
    if is_overwrite:  # the replacing messages: a list or a tuple of them, or one
        if isinstance(replacement, (list, tuple)):
            return Overwrite(_coerce(list(replacement)))
        return Overwrite(_coerce([replacement]))
    if isinstance(write, list):
        return _coerce(write)
    return _coerce([write])


_messages_delta_reducer.prepare_write = _prepare_delta_write  # type: ignore[attr-defined]


def _make_reducer(format: MessageFormat | None) -> Reducer:
    """Return a two-argument reducer bound to ``format``."""

    def reducer(left: Messages, right: Messages) -> list[BaseMessage]:
        """Merge ``right`` into ``left`` (see ``add_messages``)."""
        return add_messages(left, right, format=format)

    reducer.__name__ = "add_messages"
    reducer.__qualname__ = "add_messages"
    reducer.__doc__ = add_messages.__doc__
    return reducer


def _coerce(value: Messages) -> list[BaseMessage]:
    """Coerce a message-like value (or list of them) to full messages with ids."""
    items: Sequence[Any] = value if isinstance(value, list) else [value]
    messages: list[BaseMessage] = []
    for message in items:
        if not isinstance(message, BaseMessage):  # (a message is taken as it is)
            message = convert_to_messages((message,))[0]
        if isinstance(message, BaseMessageChunk):
            message = message_chunk_to_message(message)
        if not message.id:  # none, or an empty string from the wire
            message.id = str(uuid.uuid4())
        messages.append(message)
    return messages


def _merge(left: Messages, right: Messages, format: MessageFormat | None) -> list[BaseMessage]:
    """Merge ``right`` into ``left`` and apply ``format``.

    ``left`` is usually the list the previous merge returned: its id index is then reused
    (``_message_index``), so a merge costs O(len(right)) beyond copying the list.
    """
    index = _message_index.recall(left) if format is None else None
    left_msgs = cast(list[BaseMessage], left) if index is not None else _coerce(left)
    right_msgs = _coerce(right)

    last_remove_all: int | None = None
    for idx, message in enumerate(right_msgs):
        if isinstance(message, RemoveMessage) and message.id == REMOVE_ALL_MESSAGES:
            last_remove_all = idx
    if last_remove_all is not None:
        left_msgs = []
        index = None
        right_msgs = right_msgs[last_remove_all + 1 :]

    # New list: never mutate the caller's (possibly checkpointed) list.
    merged: list[BaseMessage] = list(left_msgs)
    if index is None:
        index = _index_of(merged)
    to_remove: set[str] = set()
    for message in right_msgs:
        message_id = cast(str, message.id)
        existing = index.get(message_id)
        if existing is not None and merged[existing].id != message_id:
            index = _index_of(merged)  # an id changed in place: index the list again
            existing = index.get(message_id)
        if isinstance(message, RemoveMessage):
            if existing is None:
                msg = (
                    f"Attempting to delete a message with an ID that doesn't exist ('{message_id}')"
                )
                raise ValueError(msg)
            to_remove.add(message_id)
        elif existing is not None:
            # Replace in place; a later re-add cancels an earlier removal.
            to_remove.discard(message_id)
            merged[existing] = message
        else:
            index[message_id] = len(merged)
            merged.append(message)

    if to_remove:
        merged = [m for m in merged if m.id not in to_remove]
        index = _index_of(merged)

    if format == "langchain-openai":
        return _format_openai(merged)
    _message_index.remember(merged, index)
    return merged


def _index_of(messages: list[BaseMessage]) -> _message_index.Index:
    return _message_index.Index({cast(str, m.id): i for i, m in enumerate(messages)})


def _format_openai(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Each message as it reads in OpenAI's chat format, back as a message.

    Plain text stays a string, other blocks become OpenAI content blocks (an image
    source a data URL), tool-use blocks the message's tool calls, and a human
    message carrying tool results the tool messages they are. A message that converts
    to one message keeps its id; the pieces of a split message get new ids.
    """
    from langchain_core.messages import convert_to_openai_messages

    formatted: list[BaseMessage] = []
    for message in messages:
        converted = convert_to_messages(convert_to_openai_messages([message]))
        if len(converted) == 1:
            converted[0].id = message.id
        for new_message in converted:
            if new_message.id is None:
                new_message.id = str(uuid.uuid4())
            formatted.append(new_message)
    return formatted


def push_message(
    message: MessageLikeRepresentation | BaseMessageChunk, *, state_key: str | None = "messages"
) -> AnyMessage:
    """Send a message to the ``messages`` stream now, from inside a node.

    The message (which must carry an id) reaches ``stream_mode="messages"`` at once and,
    unless ``state_key`` is None, is also written to that state key when the node ends
    (before the node's own return value), so the state shows it too. It is streamed only
    once: returning it from the node afterwards does not stream it again.
    """
    task = current_task.get()
    if task is None:
        raise RuntimeError("push_message() can only be called from inside a graph node.")
    if isinstance(message, BaseMessageChunk):
        message = message_chunk_to_message(message)
    elif not isinstance(message, BaseMessage):
        message = convert_to_messages([message])[0]
    if not message.id:
        raise ValueError("Message ID is required: push_message() needs a message with an id.")
    task.push_message(message, state_key)
    # (convert_to_messages makes one of the concrete message classes AnyMessage lists)
    return cast(AnyMessage, message)


class MessagesState(TypedDict):
    """State schema with a single ``messages`` key reduced by ``add_messages``.

    Subclass it to add more keys::

        class State(MessagesState):
            documents: list[str]
    """

    messages: Annotated[list[AnyMessage], add_messages]



class MessageGraph(StateGraph[Any]):
    """Deprecated: a graph whose whole state is one list of messages (merged with
    ``add_messages``). Use ``StateGraph(MessagesState)`` (a ``messages`` key) instead."""

    def __init__(self) -> None:
        warnings.warn(
            "MessageGraph is deprecated in LangGraph v1.0.0, to be removed in v2.0.0. "
            "Please use StateGraph with a `messages` key instead.",
            LangGraphDeprecatedSinceV10,
            stacklevel=2,
        )
        # (a state of one unnamed channel: an annotated type, not a schema class)
        super().__init__(Annotated[list[AnyMessage], add_messages])  # type: ignore[arg-type]
