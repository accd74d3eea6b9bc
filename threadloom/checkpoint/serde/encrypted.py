"""Encryption at rest for checkpoint values.

:class:`EncryptedSerializer` wraps another serializer (by default
:class:`~threadloom.checkpoint.serde.msgpack.MsgpackSerializer`): the inner ``(tag, data)``
is encrypted and stored as ``("<tag>+<ciphername>:<key id>", ciphertext)``.

What it guarantees, with the savers:

* **Nothing unencrypted is read** unless asked for: a value whose tag has no ``+`` (stored
  before encryption was turned on, or slipped in by someone with write access to the
  database) raises :class:`UnencryptedValueError`. ``allow_plaintext_reads=True`` reads
  them, for the time a store is being migrated (``threadloom rekey`` encrypts them).
* **A value is bound to its place.** The savers call :meth:`dumps_typed_at` /
  :meth:`loads_typed_at` with where the value is stored (thread, namespace, checkpoint,
  channel and version, or task and write index: ``threadloom.checkpoint.serde.place``);
  the place, the inner tag and the key id are authenticated as AES-GCM associated data,
  so a ciphertext copied to another thread, checkpoint or channel fails to decrypt
  (:class:`DecryptionError`). Values written by ``dumps_typed`` (no place) and by
  threadloom before places existed (tag ``<tag>+aesgcm``, no key id) are *unbound*:
  readable by ``loads_typed``, refused where a place is expected
  (:class:`UnboundCiphertextError`) unless ``allow_unbound_reads=True``.
* **Keys rotate.** Every value names the key it was encrypted with (its *key id*, derived
  from the key: ``key_id(key)``); the serializer writes with one key and reads with it
  and any ``old_keys``. :func:`threadloom.checkpoint.rekey.rekey` (``threadloom rekey``)
  re-encrypts a database with the current key, after which the old keys can go.

``cryptography`` is imported only when an AES-GCM cipher is made:
``pip install threadloom[crypto]`` (or ``pycryptodome`` for :meth:`from_pycryptodome_aes`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import inspect
import os
import re
import string
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde.base import (
    DecryptionError,
    EncryptionKeyError,
    UnboundCiphertextError,
    UnencryptedValueError,
    UnknownKeyError,
)
from threadloom.checkpoint.serde.place import Place, place_bytes, place_name

__all__ = [
    "AesGcmCipher",
    "CipherProtocol",
    "EncryptedSerializer",
    "PycryptodomeAesGcmCipher",
    "key_id",
    "parse_key",
    "parse_keys",
]

_KEY_SIZES = (16, 24, 32)
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEX = frozenset(string.hexdigits)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # cipher names and key ids: no '+' or ':'
_UNBOUND = b"\x00unbound"  # the "place" of a value written without one


@runtime_checkable
class CipherProtocol(Protocol):
    """An authenticated cipher: ``encrypt`` returns ``(ciphername, ciphertext)``.

    A cipher may take ``aad`` (associated data: authenticated, not stored) as a keyword
    of both methods, as the AES-GCM ciphers here do; for one that does not, the
    serializer seals a digest of the associated data inside the plaintext instead (the
    same guarantee, 16 bytes more per value). A ``key_id`` attribute names its key in
    stored values (needed when a serializer has several ciphers).
    """

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Encrypt ``plaintext``; the name is stored in the tag and given back to decrypt."""
        ...

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Decrypt, raising :class:`DecryptionError` if the data fails authentication."""
        ...


def key_id(key: bytes) -> str:
    """The id stored with each value encrypted under ``key``: 8 hex digits of a hash of
    it (it identifies the key without revealing anything usable about it)."""
    return hashlib.sha256(b"threadloom-key-id\x00" + bytes(key)).hexdigest()[:8]


def parse_key(text: str | bytes, *, source: str = "key") -> bytes:
    """Decode an AES key given as hex or base64 (standard or URL-safe) text.

    The decoded key must be 16, 24 or 32 bytes. ``source`` names where the text came from
    in error messages; the key itself is never echoed.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise EncryptionKeyError(
                f"{source} is not text: give the key as hex or base64."
            ) from None
    text = text.strip()
    key: bytes | None = None
    if len(text) in (2 * n for n in _KEY_SIZES) and set(text) <= _HEX:
        key = bytes.fromhex(text)
    else:
        padded = (text + "=" * (-len(text) % 4)).encode("ascii", "replace")
        for altchars in (None, b"-_"):  # standard, then URL-safe alphabet
            try:
                key = base64.b64decode(padded, altchars=altchars, validate=True)
                break
            except (binascii.Error, ValueError):
                continue
    if key is None or len(key) not in _KEY_SIZES:
        got = "undecodable text" if key is None else f"{len(key)} bytes"
        raise EncryptionKeyError(
            f"{source} must be an AES key of 16, 24 or 32 bytes written as hex or base64 "
            f'(got {got}). Make one with: python -c "import os; print(os.urandom(32).hex())"'
        )
    return key


def parse_keys(text: str, *, source: str = "keys") -> list[bytes]:
    """Several keys in one text (an environment variable of old keys): hex or base64
    keys separated by commas or whitespace."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    return [parse_key(p, source=f"{source} (key {i + 1})") for i, p in enumerate(parts)]


def _raw_key(key: bytes | bytearray | str, source: str) -> bytes:
    return parse_key(key, source=source) if isinstance(key, str) else bytes(key)


def _check_key(key: Any) -> bytes:
    if not isinstance(key, bytes | bytearray) or len(key) not in _KEY_SIZES:
        raise EncryptionKeyError(
            "AES key must be 16, 24 or 32 bytes "
            f"(got {len(key) if isinstance(key, bytes | bytearray) else type(key).__name__})."
        )
    return bytes(key)


def _failed() -> DecryptionError:
    return DecryptionError(
        "Encrypted checkpoint value failed authentication: it was tampered with, truncated, "
        "encrypted with a different key, or copied here from another thread, checkpoint or "
        "channel."
    )


class AesGcmCipher:
    """AES-GCM (``cryptography``'s ``AESGCM``) with a random 12-byte nonce per value.

    Ciphertext layout: ``nonce (12) || encrypted data || GCM tag (16)``. Any change to it,
    to the associated data, or the wrong key, raises :class:`DecryptionError`.
    """

    name = "aesgcm"

    def __init__(self, key: bytes) -> None:
        key = _check_key(key)
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise ImportError(
                "Encrypted checkpoints need the 'cryptography' package: "
                "pip install threadloom[crypto]"
            ) from exc
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    def encrypt(self, plaintext: bytes, aad: bytes | None = None) -> tuple[str, bytes]:
        """Encrypt with a fresh random nonce, prepended to the result."""
        nonce = os.urandom(_NONCE_SIZE)
        return self.name, nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, ciphername: str, ciphertext: bytes, aad: bytes | None = None) -> bytes:
        """Authenticate and decrypt; :class:`DecryptionError` on any mismatch."""
        _check_name(ciphername, self.name)
        if len(ciphertext) < _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionError("Encrypted checkpoint value is truncated.")
        from cryptography.exceptions import InvalidTag

        nonce, body = ciphertext[:_NONCE_SIZE], ciphertext[_NONCE_SIZE:]
        try:
            return self._aead.decrypt(nonce, bytes(body), aad)
        except InvalidTag:
            raise _failed() from None


class PycryptodomeAesGcmCipher:
    """:class:`AesGcmCipher` on ``pycryptodome`` instead of ``cryptography``.

    Same name and ciphertext layout (``nonce (12) || encrypted data || GCM tag (16)``), so
    values written by either cipher are read by the other with the same key.
    """

    name = AesGcmCipher.name

    def __init__(self, key: bytes) -> None:
        key = _check_key(key)
        try:
            from Crypto.Cipher import AES
        except ImportError as exc:
            raise ImportError(
                "EncryptedSerializer.from_pycryptodome_aes() needs the 'pycryptodome' "
                "package (pip install pycryptodome), or use from_aes_gcm() with "
                "'cryptography'."
            ) from exc
        self._aes = AES
        self._key = key
        self.key_id = key_id(key)

    def encrypt(self, plaintext: bytes, aad: bytes | None = None) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE_SIZE)
        cipher = self._aes.new(self._key, self._aes.MODE_GCM, nonce=nonce, mac_len=_TAG_SIZE)
        if aad:
            cipher.update(aad)
        body, tag = cipher.encrypt_and_digest(plaintext)
        return self.name, nonce + body + tag

    def decrypt(self, ciphername: str, ciphertext: bytes, aad: bytes | None = None) -> bytes:
        _check_name(ciphername, self.name)
        if len(ciphertext) < _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionError("Encrypted checkpoint value is truncated.")
        nonce = ciphertext[:_NONCE_SIZE]
        body, tag = ciphertext[_NONCE_SIZE:-_TAG_SIZE], ciphertext[-_TAG_SIZE:]
        cipher = self._aes.new(self._key, self._aes.MODE_GCM, nonce=nonce, mac_len=_TAG_SIZE)
        if aad:
            cipher.update(aad)
        try:
            plaintext: bytes = cipher.decrypt_and_verify(bytes(body), bytes(tag))
        except ValueError:
            raise _failed() from None
        return plaintext


def _check_name(got: str, want: str) -> None:
    if got != want:
        raise DecryptionError(
            f"Checkpoint value was encrypted with cipher {got!r}, but this serializer uses "
            f"{want!r}."
        )


class _Key:
    """One cipher of a serializer, with its key id and how it takes associated data."""

    __slots__ = ("cipher", "kid", "takes_aad")

    def __init__(self, cipher: Any, kid: str) -> None:
        self.cipher = cipher
        self.kid = kid
        try:
            params = inspect.signature(cipher.encrypt).parameters
            self.takes_aad = "aad" in params and "aad" in inspect.signature(
                cipher.decrypt
            ).parameters
        except (TypeError, ValueError):
            self.takes_aad = False

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        sealed: tuple[str, bytes]
        if self.takes_aad:
            sealed = self.cipher.encrypt(plaintext, aad=aad)
        else:
            sealed = self.cipher.encrypt(_digest(aad) + plaintext)
        return sealed

    def open(self, ciphername: str, ciphertext: bytes, aad: bytes) -> bytes:
        if self.takes_aad:
            opened: bytes = self.cipher.decrypt(ciphername, ciphertext, aad=aad)
            return opened
        plaintext = self.cipher.decrypt(ciphername, ciphertext)
        if plaintext[:16] != _digest(aad):
            raise _failed()
        return bytes(plaintext[16:])


def _digest(aad: bytes) -> bytes:
    return hashlib.blake2b(aad, digest_size=16, person=b"threadloom-aad").digest()


@functools.lru_cache(maxsize=4096)  # reads of a delta chain meet the same places again
def _aad(inner: str, kid: str, place: Place | None) -> bytes:
    """What a value's encryption authenticates besides its bytes: the format, the inner
    tag, the key id and the place (or the mark of a value written without one)."""
    where = _UNBOUND if place is None else place_bytes(place)
    return f"tl2{len(inner)}:{inner}{len(kid)}:{kid}".encode() + where


class EncryptedSerializer(SerializerProtocol):
    """Encrypt the output of another serializer (see the module docstring).

    Args:
        cipher: the cipher that writes (and reads) - an object with
            ``encrypt(plaintext) -> (ciphername, ciphertext)`` and
            ``decrypt(ciphername, ciphertext) -> plaintext`` (:class:`CipherProtocol`).
        serde: the serializer whose output is encrypted; defaults to a new
            ``default_serializer()`` (``MsgpackSerializer(strict=False)``).
        old_ciphers: more ciphers for reading only (old keys during a key rotation).
        allow_plaintext_reads: read values stored unencrypted (tags without ``+``) instead
            of raising :class:`UnencryptedValueError`: only while a store written without
            encryption is migrated (``threadloom rekey`` encrypts them).
        allow_unbound_reads: read, where a place is expected, values encrypted without
            one (by ``dumps_typed``, or by threadloom before values were bound to their
            place) instead of raising :class:`UnboundCiphertextError`: only while such a
            store is migrated (``threadloom rekey`` binds them).

    Use :meth:`from_aes_gcm` for the standard AES-GCM setup.
    """

    def __init__(
        self,
        cipher: CipherProtocol,
        serde: SerializerProtocol | None = None,
        *,
        old_ciphers: Iterable[CipherProtocol] = (),
        allow_plaintext_reads: bool = False,
        allow_unbound_reads: bool = False,
    ) -> None:
        if serde is None:
            # here, not at the top: importing the serde package imports this module first
            from threadloom.checkpoint.serde.msgpack import default_serializer

            serde = default_serializer()
        self.cipher = cipher
        self.serde = serde
        self.allow_plaintext_reads = allow_plaintext_reads
        self.allow_unbound_reads = allow_unbound_reads
        ciphers = [cipher, *old_ciphers]
        self._keys: dict[str, _Key] = {}
        for c in ciphers:
            kid = str(getattr(c, "key_id", None) or "0")
            if not _NAME.match(kid):
                raise EncryptionKeyError(
                    f"Cipher key id {kid!r} is unusable: use 1-64 letters, digits, '_', '.' "
                    "or '-'."
                )
            if kid in self._keys:
                if self._keys[kid].cipher is c or len(ciphers) == 1:
                    continue
                raise EncryptionKeyError(
                    f"Two keys share the key id {kid!r} (the same key given twice, or "
                    "ciphers without a key_id attribute): give each cipher its own key_id."
                )
            self._keys[kid] = _Key(c, kid)
        self._write = self._keys[str(getattr(cipher, "key_id", None) or "0")]

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_aes_gcm(
        cls,
        key: bytes | str | None = None,
        *,
        old_keys: Iterable[bytes | str] | None = None,
        env_var: str = "THREADLOOM_AES_KEY",
        old_keys_env_var: str = "THREADLOOM_AES_OLD_KEYS",
        serde: SerializerProtocol | None = None,
        allow_plaintext_reads: bool = False,
        allow_unbound_reads: bool = False,
    ) -> EncryptedSerializer:
        """An AES-GCM encrypting serializer.

        ``key`` (the key values are written with) is 16, 24 or 32 raw bytes (or hex/base64
        text). Without it the key is read from the environment variable ``env_var`` as
        hex or base64; a missing or malformed variable raises :class:`EncryptionKeyError`
        naming it. ``old_keys`` are keys values may still be encrypted with (read only);
        without them they are read from ``old_keys_env_var`` if it is set (keys separated
        by commas or whitespace).
        """
        if key is None:
            text = os.environ.get(env_var)
            if not text or not text.strip():
                raise EncryptionKeyError(
                    f"No encryption key: environment variable {env_var} is not set. Set it "
                    "to a 32-byte key as hex or base64 (e.g. the output of "
                    'python -c "import os; print(os.urandom(32).hex())"), or pass '
                    "key=... to EncryptedSerializer.from_aes_gcm()."
                )
            raw = parse_key(text, source=f"environment variable {env_var}")
        else:
            raw = _raw_key(key, "key")
        olds = _old_keys(old_keys, old_keys_env_var)
        return cls(
            AesGcmCipher(raw),
            serde,
            old_ciphers=[AesGcmCipher(k) for k in olds],
            allow_plaintext_reads=allow_plaintext_reads,
            allow_unbound_reads=allow_unbound_reads,
        )

    @classmethod
    def from_pycryptodome_aes(
        cls,
        serde: SerializerProtocol | None = None,
        *,
        key: bytes | str | None = None,
        old_keys: Iterable[bytes | str] | None = None,
        env_var: str = "LANGGRAPH_AES_KEY",
        old_keys_env_var: str = "LANGGRAPH_AES_OLD_KEYS",
        allow_plaintext_reads: bool = False,
        allow_unbound_reads: bool = False,
    ) -> EncryptedSerializer:
        """LangGraph's constructor name: AES-GCM through ``pycryptodome``.

        Takes ``key`` and ``old_keys`` like :meth:`from_aes_gcm` (raw bytes, or hex/base64
        text), read from ``env_var`` / ``old_keys_env_var`` when not given; the stored
        format is the same as ``from_aes_gcm``'s.
        """
        if key is None:
            text = os.environ.get(env_var)
            if not text or not text.strip():
                raise EncryptionKeyError(
                    f"No encryption key: pass key=... or set the environment variable "
                    f"{env_var} to a 16, 24 or 32-byte AES key."
                )
            raw = text.encode() if len(text.encode()) in _KEY_SIZES else parse_key(
                text, source=f"environment variable {env_var}"
            )
        else:
            raw = _raw_key(key, "key")
        olds = _old_keys(old_keys, old_keys_env_var)
        return cls(
            PycryptodomeAesGcmCipher(raw),
            serde,
            old_ciphers=[PycryptodomeAesGcmCipher(k) for k in olds],
            allow_plaintext_reads=allow_plaintext_reads,
            allow_unbound_reads=allow_unbound_reads,
        )

    # -- keys --------------------------------------------------------------------------

    @property
    def key_id(self) -> str:
        """The id of the key values are written with."""
        return self._write.kid

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Ids of every key this serializer reads (the write key first)."""
        return tuple(self._keys)

    def is_current(self, tag: str) -> bool:
        """Whether a stored value with this tag is sealed the way this serializer writes:
        encrypted, bound-capable (has a key id) and under the write key."""
        _, plus, rest = tag.partition("+")
        return bool(plus) and rest.rpartition(":")[2] == self._write.kid and ":" in rest

    # -- the serializer protocol -------------------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize with the inner serializer, then encrypt, bound to no place: readable
        by :meth:`loads_typed` anywhere. Savers use :meth:`dumps_typed_at`."""
        return self._seal(self.serde.dumps_typed(obj), None)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decrypt a value written by :meth:`dumps_typed` (or by threadloom before places
        existed), then deserialize. A value bound to a place is read by
        :meth:`loads_typed_at` with that place."""
        return self.serde.loads_typed(self._open(data, None))

    def dumps_typed_at(self, obj: Any, place: Place) -> tuple[str, bytes]:
        """:meth:`dumps_typed`, bound to ``place`` (see ``serde.place``)."""
        return self._seal(self.serde.dumps_typed(obj), place)

    def loads_typed_at(self, data: tuple[str, bytes], place: Place) -> Any:
        """:meth:`loads_typed` for a value stored at ``place``: a value sealed for another
        place fails authentication (:class:`DecryptionError`)."""
        return self.serde.loads_typed(self._open(data, place))

    def reseal(
        self, data: tuple[str, bytes], place: Place, new_place: Place | None = None
    ) -> tuple[str, bytes]:
        """The value stored at ``place`` sealed for ``new_place`` (default: the same
        place) with the write key, without deserializing it. Reads what
        :meth:`loads_typed_at` reads (so plaintext and unbound values only with their
        opt-ins); a value already sealed so is returned as it is."""
        target = place if new_place is None else new_place
        tag = _tag_of(data)
        if target == place and self.is_current(tag):
            self._open(data, place)  # still authenticate it: never copy a forgery onward
            return data
        return self._seal(self._open(data, place), target)

    # -- sealing -----------------------------------------------------------------------

    def _seal(self, inner_data: tuple[str, bytes], place: Place | None) -> tuple[str, bytes]:
        inner, data = inner_data
        if "+" in inner or len(inner.encode()) > 255:
            raise ValueError(f"Inner serializer produced an unusable type tag {inner!r}.")
        key = self._write
        ciphername, ciphertext = key.seal(bytes(data), _aad(inner, key.kid, place))
        return f"{inner}+{ciphername}:{key.kid}", ciphertext

    def _open(self, data: tuple[str, bytes], place: Place | None) -> tuple[str, bytes]:
        """The inner ``(tag, data)`` of a stored value, read at ``place`` (None: unbound)."""
        tag = _tag_of(data)
        payload = bytes(data[1]) if data[1] is not None else b""
        if "+" not in tag:
            if not self.allow_plaintext_reads:
                raise UnencryptedValueError(
                    f"Refusing an unencrypted value (type tag {tag!r}"
                    f"{'' if place is None else ', ' + place_name(place)}): this serializer "
                    "encrypts, so the value was stored before encryption was turned on or "
                    "written by someone bypassing it. To migrate a store written without "
                    "encryption, read it with allow_plaintext_reads=True and run "
                    "`threadloom rekey`, which encrypts such values."
                )
            return tag, payload
        inner, _, rest = tag.partition("+")
        ciphername, colon, kid = rest.rpartition(":")
        if not colon:  # threadloom's first format: no key id, not bound to a place
            return self._open_legacy(inner, rest, payload, place)
        key = self._keys.get(kid)
        if key is None:
            raise UnknownKeyError(
                f"Encrypted value (type tag {tag!r}"
                f"{'' if place is None else ', ' + place_name(place)}) was encrypted with "
                f"key id {kid!r}, which is not among this serializer's keys "
                f"({', '.join(self._keys)}): give that key in old_keys (or "
                "THREADLOOM_AES_OLD_KEYS) until `threadloom rekey` has re-encrypted the store."
            )
        try:
            return inner, key.open(ciphername, payload, _aad(inner, kid, place))
        except DecryptionError as exc:
            if place is None:
                raise DecryptionError(
                    f"{exc} (a value a saver stored is bound to its place: read it with "
                    "loads_typed_at)"
                ) from None
            try:  # written without a place (dumps_typed)? say so, or read it if allowed
                plaintext = key.open(ciphername, payload, _aad(inner, kid, None))
            except DecryptionError:
                raise DecryptionError(f"{exc} ({place_name(place)})") from None
            if not self.allow_unbound_reads:
                raise _unbound(tag, place) from None
            return inner, plaintext

    def _open_legacy(
        self, inner: str, ciphername: str, payload: bytes, place: Place | None
    ) -> tuple[str, bytes]:
        tag = f"{inner}+{ciphername}"
        if place is not None and not self.allow_unbound_reads:
            raise _unbound(tag, place)
        failure: DecryptionError | None = None
        for key in self._keys.values():  # no key id: try each key, the write key first
            try:
                plaintext = key.cipher.decrypt(ciphername, payload)
            except DecryptionError as exc:
                failure = exc
                continue
            size = plaintext[0] if plaintext else -1
            if size < 0 or plaintext[1 : 1 + size] != inner.encode():
                raise DecryptionError(
                    f"Encrypted checkpoint value does not match its type tag {tag!r}: the "
                    "tag was altered."
                )
            return inner, bytes(plaintext[1 + size :])
        assert failure is not None
        raise failure


def _tag_of(data: Any) -> str:
    try:
        tag, _payload = data
    except (TypeError, ValueError):
        raise DecryptionError("loads_typed() expects a (type_tag, bytes) pair.") from None
    if not isinstance(tag, str):
        raise DecryptionError(f"Checkpoint type tag must be a string, got {tag!r}.")
    return tag


def _unbound(tag: str, place: Place) -> UnboundCiphertextError:
    return UnboundCiphertextError(
        f"Refusing an encrypted value not bound to its place (type tag {tag!r}, "
        f"{place_name(place)}): it was written without one (by dumps_typed, or by a "
        "threadloom older than place binding), so it could have been copied here from "
        "anywhere. To migrate such a store, read it with allow_unbound_reads=True and run "
        "`threadloom rekey`, which binds every value to its place."
    )


def _old_keys(old_keys: Iterable[bytes | str] | None, env_var: str) -> list[bytes]:
    if old_keys is not None:
        return [_raw_key(k, f"old key {i + 1}") for i, k in enumerate(old_keys)]
    text = os.environ.get(env_var)
    if not text or not text.strip():
        return []
    return parse_keys(text, source=f"environment variable {env_var}")
