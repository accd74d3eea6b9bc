"""Checkpoint serializers: values to ``(type_tag, bytes)`` and back, safely.

* :class:`MsgpackSerializer` - the default: compact msgpack that only rebuilds allowlisted
  types and never unpickles unless built with ``pickle_fallback=True``.
* :func:`register_type` - allow your own classes (pydantic models, dataclasses, ...) in
  every serializer of the process.
* :class:`EncryptedSerializer` - encrypt another serializer's output (AES-GCM via
  ``EncryptedSerializer.from_aes_gcm()``; needs ``pip install threadloom[crypto]``), each
  value bound to its place in the store (``serde.place``), with key ids for rotation
  (``threadloom.checkpoint.rekey``).

Inside: ``registry`` (which classes may be stored), ``codecs`` (how one class is taken apart
and rebuilt), ``msgpack`` (the wire format and the serializer), ``encrypted``, ``place``
(where a stored value is), ``allowlist`` (a graph's classes, for strict serializers);
``base``, ``types`` and ``jsonplus`` are the modules LangGraph code imports.
"""

from threadloom.checkpoint.serde.base import (
    CorruptCheckpointError,
    DecryptionError,
    EncryptionKeyError,
    NestingTooDeepError,
    PickleNotAllowedError,
    SerdeError,
    SerializerProtocol,
    UnboundCiphertextError,
    UnencryptedValueError,
    UnknownKeyError,
    UnknownTypeError,
    UnregisteredTypeError,
)
from threadloom.checkpoint.serde.encrypted import (
    AesGcmCipher,
    CipherProtocol,
    EncryptedSerializer,
    key_id,
)
from threadloom.checkpoint.serde.msgpack import (
    DEFAULT_REGISTRY,
    MsgpackSerializer,
    TypeRegistry,
    register_type,
    type_key,
)

__all__ = [
    "AesGcmCipher",
    "CipherProtocol",
    "CorruptCheckpointError",
    "DEFAULT_REGISTRY",
    "DecryptionError",
    "EncryptedSerializer",
    "EncryptionKeyError",
    "MsgpackSerializer",
    "PickleNotAllowedError",
    "SerdeError",
    "SerializerProtocol",
    "TypeRegistry",
    "UnboundCiphertextError",
    "UnencryptedValueError",
    "UnknownKeyError",
    "UnknownTypeError",
    "NestingTooDeepError",
    "UnregisteredTypeError",
    "key_id",
    "register_type",
    "type_key",
]
