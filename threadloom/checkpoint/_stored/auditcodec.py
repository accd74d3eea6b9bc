"""How an audit record (or the audit log's anchor) is stored: JSON text, sealed by the
saver's serializer when it encrypts.

Audit records hold what people decided and wrote - resume answers, ``update_state``
values, tool arguments - so they are encrypted exactly as checkpoint values are: with a
serializer that binds values to their place (``EncryptedSerializer``), a record's JSON
text is sealed for ``("audit", thread, seq)`` (the anchor for ``("audit-head",
thread)``) and stored as the envelope ``{"sealed": "<type tag>", "data": "<base64>"}``.
A record cannot be read without the key, moved to another thread or position, or edited.

The hash chain covers the **plaintext** records (``chain_audit_records``), not the
ciphertext: a record's hash is what it says, so

* re-encrypting the log under a new key (``threadloom rekey``) changes no hash, and the
  anchors kept in checkpoint metadata and in exported JSON lines stay valid;
* an exported log verifies without the encryption key (``verify_chain`` needs only the
  HMAC ``audit_key``, if the saver has one).

So that a plaintext hash tells nothing about what it covers (a hash anchored in
plaintext metadata could otherwise confirm a guess such as "the decision was accept"),
records chained under an encrypting serializer carry a random ``salt``, itself sealed.

Where the serializer does not encrypt, records are stored as plain JSON text. Where it
does, an unsealed record is refused (``UnencryptedValueError``) unless the serializer
allows plaintext reads (a log written before encryption was turned on, during its
migration: ``threadloom rekey`` seals it).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from threadloom.checkpoint.serde.base import CorruptCheckpointError, UnencryptedValueError
from threadloom.checkpoint.serde.place import Place, binds, place_name

__all__ = ["SEALED", "open_text", "reseal_text", "seal_text"]

SEALED = "sealed"  # the envelope's key for the type tag; "data" holds the base64 bytes


def seal_text(serde: Any, text: str, place: Place) -> str:
    """The stored form of a record's JSON ``text`` at ``place``."""
    if not binds(serde):
        return text
    tag, data = serde.dumps_typed_at(text.encode("utf-8"), place)
    return json.dumps({SEALED: tag, "data": base64.b64encode(data).decode("ascii")})


def _parse(raw: Any, place: Place) -> Any:
    if isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return raw  # a driver that decoded JSON already
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"Stored {place_name(place)} is not valid JSON ({exc}); the row is damaged."
        ) from exc


def _envelope(value: Any, place: Place) -> tuple[str, bytes] | None:
    if not (isinstance(value, dict) and set(value) == {SEALED, "data"}):
        return None
    try:
        return str(value[SEALED]), base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CorruptCheckpointError(
            f"Stored {place_name(place)} is sealed but its data is not base64 ({exc}); the "
            "row is damaged."
        ) from exc


def _plaintext_allowed(serde: Any, place: Place) -> None:
    if binds(serde) and not getattr(serde, "allow_plaintext_reads", True):
        raise UnencryptedValueError(
            f"Refusing the unencrypted {place_name(place)}: this saver's serializer "
            "encrypts, so it was stored before encryption was turned on or written by "
            "someone bypassing it. To migrate, read it with allow_plaintext_reads=True and "
            "run `threadloom rekey`, which encrypts it."
        )


def open_text(serde: Any, raw: Any, place: Place) -> dict[str, Any]:
    """The record (a JSON object) stored as ``raw`` at ``place``."""
    value = _parse(raw, place)
    sealed = _envelope(value, place)
    if sealed is not None:
        if not binds(serde):
            raise CorruptCheckpointError(
                f"Stored {place_name(place)} is encrypted: read it through a saver whose "
                "serializer is the EncryptedSerializer (with the key) it was written with."
            )
        try:
            text = serde.loads_typed_at(sealed, place)
        except CorruptCheckpointError:
            raise
        except Exception as exc:
            raise CorruptCheckpointError(
                f"Stored {place_name(place)} cannot be decoded ({type(exc).__name__}: {exc})."
            ) from exc
        value = _parse(text, place)
    else:
        _plaintext_allowed(serde, place)
    if not isinstance(value, dict):
        raise CorruptCheckpointError(
            f"Stored {place_name(place)} is not a JSON object; the row is damaged."
        )
    return value


def reseal_text(serde: Any, raw: Any, place: Place, new_place: Place | None = None) -> str | None:
    """``raw`` (stored at ``place``) as stored at ``new_place`` (default: the same) under
    the serializer's current key; None when nothing is to change (the serializer does not
    encrypt, or the record is sealed so already)."""
    if not binds(serde):
        return None
    value = _parse(raw, place)
    sealed = _envelope(value, place)
    target = place if new_place is None else new_place
    if sealed is None:
        _plaintext_allowed(serde, place)
        text = raw if isinstance(raw, str) else json.dumps(value)
        return seal_text(serde, text, target)
    is_current = getattr(serde, "is_current", None)
    if target == place and is_current is not None and is_current(sealed[0]):
        return None
    tag, data = serde.reseal(sealed, place, target)
    return json.dumps({SEALED: tag, "data": base64.b64encode(data).decode("ascii")})
