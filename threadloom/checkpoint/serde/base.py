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
    "UnboundCiphertextError",
    "UnencryptedValueError",
    "UnknownKeyError",
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


class UnencryptedValueError(CorruptCheckpointError):
    """A serializer that encrypts was given a value stored unencrypted.

    A ``CorruptCheckpointError`` because, to a store that is encrypted, an unencrypted row
    is as untrustworthy as a damaged one (anyone with write access to the database can put
    one there); its own class so a migration can tell it apart and opt in
    (``EncryptedSerializer(..., allow_plaintext_reads=True)``, then ``threadloom rekey``).
    """


class UnboundCiphertextError(DecryptionError):
    """An encrypted value was read where a place is expected, but it is bound to none
    (written by ``dumps_typed``, or by threadloom before values were bound to their
    place): it could have been copied there from anywhere. ``allow_unbound_reads=True``
    reads it while a store is migrated (``threadloom rekey`` binds every value)."""


class UnknownKeyError(DecryptionError):
    """An encrypted value names a key id that is not among the serializer's keys: give
    the old key in ``old_keys`` until ``threadloom rekey`` re-encrypted the store."""


class EncryptionKeyError(SerdeError, ValueError):
    """The encryption key is missing or malformed."""


class NestingTooDeepError(SerdeError, ValueError):
    """A value to be written nests tuples/sets/objects deeper than the serializer reads back."""


class UnregisteredTypeError(SerdeError, TypeError):
    """A value to be written has a type the serializer is not allowed to encode."""
