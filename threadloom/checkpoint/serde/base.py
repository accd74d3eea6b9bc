"""Errors raised by the checkpoint serializers.

Every failure to *write* a value is a ``TypeError`` (or ``ValueError`` for cycles and other
shape problems) naming the offending type and how to fix it. Every failure to *read*
stored bytes is a ``ValueError`` subclass, so a saver can catch one class for "this blob is
unusable" without ever running code that the blob asked for.
"""

from __future__ import annotations

from threadloom.checkpoint.base import SerializerProtocol

__all__ = [
    "CorruptCheckpointError",
    "DecryptionError",
    "EncryptionKeyError",
    "NestingTooDeepError",
    "PickleNotAllowedError",
    "SerdeError",
    "SerializerProtocol",
    "UnknownTypeError",
    "UnregisteredTypeError",
]


class SerdeError(Exception):
    """Base class of every error raised on purpose by the serializers."""


class CorruptCheckpointError(SerdeError, ValueError):
    """Stored bytes could not be decoded: truncated, forged, or written by another format."""


class UnknownTypeError(CorruptCheckpointError):
    """Stored bytes name a class that is not in the serializer's registry.

    The serializer never imports a module named by stored bytes; register the class
    (``register_type(MyType)`` or ``MsgpackSerializer(allowed_types=[MyType])``) to read it.
    """


class PickleNotAllowedError(CorruptCheckpointError):
    """A ``"pickle"`` value was given to a serializer built without ``pickle_fallback=True``."""


class DecryptionError(CorruptCheckpointError):
    """An encrypted value failed authentication: tampered, truncated, or the wrong key."""


class EncryptionKeyError(SerdeError, ValueError):
    """The encryption key is missing or malformed."""


class NestingTooDeepError(SerdeError, ValueError):
    """A value to be written nests tuples/sets/objects deeper than the serializer reads back."""


class UnregisteredTypeError(SerdeError, TypeError):
    """A value to be written has a type the serializer is not allowed to encode."""
