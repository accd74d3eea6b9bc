"""Encryption at rest for checkpoint values.

:class:`EncryptedSerializer` wraps another serializer (by default
:class:`~threadloom.checkpoint.serde.msgpack.MsgpackSerializer`): the inner ``(tag, data)``
is encrypted and stored as ``("<tag>+<ciphername>", ciphertext)``. Values whose tag has no
``+`` were written before encryption was turned on and are passed to the inner serializer
as they are, so an existing store keeps working while new values get encrypted.

The inner tag is also sealed inside the ciphertext and compared on load, so with an
authenticated cipher (AES-GCM) the visible tag cannot be swapped either.

``cryptography`` is imported only when an AES-GCM cipher is made:
``pip install threadloom[crypto]``.
"""

from __future__ import annotations

import base64
import binascii
import os
import string
from typing import Any, Protocol, runtime_checkable

from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde.base import DecryptionError, EncryptionKeyError

__all__ = [
    "AesGcmCipher",
    "CipherProtocol",
    "EncryptedSerializer",
    "PycryptodomeAesGcmCipher",
    "parse_key",
]

_KEY_SIZES = (16, 24, 32)
_NONCE_SIZE = 12
_TAG_SIZE = 16
_HEX = frozenset(string.hexdigits)


@runtime_checkable
class CipherProtocol(Protocol):
    """An authenticated cipher: ``encrypt`` returns ``(ciphername, ciphertext)``."""

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Encrypt ``plaintext``; the name is stored in the tag and given back to decrypt."""
        ...

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Decrypt, raising :class:`DecryptionError` if the data fails authentication."""
        ...


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


class AesGcmCipher:
    """AES-GCM (``cryptography``'s ``AESGCM``) with a random 12-byte nonce per value.

    Ciphertext layout: ``nonce (12) || encrypted data || GCM tag (16)``. Any change to it,
    or the wrong key, raises :class:`DecryptionError`.
    """

    name = "aesgcm"

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) not in _KEY_SIZES:
            raise EncryptionKeyError(
                "AES key must be 16, 24 or 32 bytes "
                f"(got {len(key) if isinstance(key, bytes | bytearray) else type(key).__name__})."
            )
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise ImportError(
                "Encrypted checkpoints need the 'cryptography' package: "
                "pip install threadloom[crypto]"
            ) from exc
        self._aead = AESGCM(bytes(key))

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        """Encrypt with a fresh random nonce, prepended to the result."""
        nonce = os.urandom(_NONCE_SIZE)
        return self.name, nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        """Authenticate and decrypt; :class:`DecryptionError` on any mismatch."""
        if ciphername != self.name:
            raise DecryptionError(
                f"Checkpoint value was encrypted with cipher {ciphername!r}, but this "
                f"serializer uses {self.name!r}."
            )
        if len(ciphertext) < _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionError("Encrypted checkpoint value is truncated.")
        from cryptography.exceptions import InvalidTag

        nonce, body = ciphertext[:_NONCE_SIZE], ciphertext[_NONCE_SIZE:]
        try:
            return self._aead.decrypt(nonce, bytes(body), None)
        except InvalidTag:
            raise DecryptionError(
                "Encrypted checkpoint value failed authentication: it was tampered with, "
                "truncated, or encrypted with a different key."
            ) from None


class PycryptodomeAesGcmCipher:
    """:class:`AesGcmCipher` on ``pycryptodome`` instead of ``cryptography``.

    Same name and ciphertext layout (``nonce (12) || encrypted data || GCM tag (16)``), so
    values written by either cipher are read by the other with the same key.
    """

    name = AesGcmCipher.name

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes | bytearray) or len(key) not in _KEY_SIZES:
            raise EncryptionKeyError(
                "AES key must be 16, 24 or 32 bytes "
                f"(got {len(key) if isinstance(key, bytes | bytearray) else type(key).__name__})."
            )
        try:
            from Crypto.Cipher import AES
        except ImportError as exc:
            raise ImportError(
                "EncryptedSerializer.from_pycryptodome_aes() needs the 'pycryptodome' "
                "package (pip install pycryptodome), or use from_aes_gcm() with "
                "'cryptography'."
            ) from exc
        self._aes = AES
        self._key = bytes(key)

    def encrypt(self, plaintext: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(_NONCE_SIZE)
        cipher = self._aes.new(self._key, self._aes.MODE_GCM, nonce=nonce, mac_len=_TAG_SIZE)
        body, tag = cipher.encrypt_and_digest(plaintext)
        return self.name, nonce + body + tag

    def decrypt(self, ciphername: str, ciphertext: bytes) -> bytes:
        if ciphername != self.name:
            raise DecryptionError(
                f"Checkpoint value was encrypted with cipher {ciphername!r}, but this "
                f"serializer uses {self.name!r}."
            )
        if len(ciphertext) < _NONCE_SIZE + _TAG_SIZE:
            raise DecryptionError("Encrypted checkpoint value is truncated.")
        nonce = ciphertext[:_NONCE_SIZE]
        body, tag = ciphertext[_NONCE_SIZE:-_TAG_SIZE], ciphertext[-_TAG_SIZE:]
        cipher = self._aes.new(self._key, self._aes.MODE_GCM, nonce=nonce, mac_len=_TAG_SIZE)
        try:
            return cipher.decrypt_and_verify(bytes(body), bytes(tag))
        except ValueError:
            raise DecryptionError(
                "Encrypted checkpoint value failed authentication: it was tampered with, "
                "truncated, or encrypted with a different key."
            ) from None


class EncryptedSerializer(SerializerProtocol):
    """Encrypt the output of another serializer.

    Args:
        cipher: an object with ``encrypt(plaintext) -> (ciphername, ciphertext)`` and
            ``decrypt(ciphername, ciphertext) -> plaintext`` (see :class:`CipherProtocol`).
        serde: the serializer whose output is encrypted; defaults to a new
            ``default_serializer()`` (``MsgpackSerializer(strict=False)``).
        allow_plaintext: load values stored before encryption was enabled (tags without
            ``+``). Set it to ``False`` once a store is fully migrated, so nobody with write
            access to the store can slip in unencrypted values.

    Use :meth:`from_aes_gcm` for the standard AES-GCM setup.
    """

    def __init__(
        self,
        cipher: CipherProtocol,
        serde: SerializerProtocol | None = None,
        *,
        allow_plaintext: bool = True,
    ) -> None:
        if serde is None:
            from threadloom.checkpoint.serde.msgpack import default_serializer

            serde = default_serializer()
        self.cipher = cipher
        self.serde = serde
        self.allow_plaintext = allow_plaintext

    @classmethod
    def from_aes_gcm(
        cls,
        key: bytes | str | None = None,
        *,
        env_var: str = "THREADLOOM_AES_KEY",
        serde: SerializerProtocol | None = None,
        allow_plaintext: bool = True,
    ) -> EncryptedSerializer:
        """An AES-GCM encrypting serializer.

        ``key`` is 16, 24 or 32 raw bytes (or hex/base64 text). Without it the key is read
        from the environment variable ``env_var`` as hex or base64; a missing or malformed
        variable raises :class:`EncryptionKeyError` naming it.
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
        elif isinstance(key, str):
            raw = parse_key(key, source="key")
        else:
            raw = key
        return cls(AesGcmCipher(raw), serde, allow_plaintext=allow_plaintext)

    @classmethod
    def from_pycryptodome_aes(
        cls,
        serde: SerializerProtocol | None = None,
        *,
        key: bytes | str | None = None,
        env_var: str = "LANGGRAPH_AES_KEY",
        allow_plaintext: bool = True,
    ) -> EncryptedSerializer:
        """LangGraph's constructor name: AES-GCM through ``pycryptodome``.

        Takes ``key`` like :meth:`from_aes_gcm` (raw bytes, or hex/base64 text), read from
        ``env_var`` when not given; the stored format is the same as ``from_aes_gcm``'s.
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
        elif isinstance(key, str):
            raw = parse_key(key, source="key")
        else:
            raw = key
        return cls(PycryptodomeAesGcmCipher(raw), serde, allow_plaintext=allow_plaintext)

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize with the inner serializer, then encrypt; tag ``"<tag>+<cipher>"``."""
        tag, data = self.serde.dumps_typed(obj)
        tag_bytes = tag.encode()
        if len(tag_bytes) > 255 or "+" in tag:
            raise ValueError(f"Inner serializer produced an unusable type tag {tag!r}.")
        ciphername, ciphertext = self.cipher.encrypt(bytes([len(tag_bytes)]) + tag_bytes + data)
        return f"{tag}+{ciphername}", ciphertext

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decrypt (tags with ``+``) or pass plaintext through, then deserialize."""
        try:
            tag, payload = data
        except (TypeError, ValueError):
            raise DecryptionError("loads_typed() expects a (type_tag, bytes) pair.") from None
        if not isinstance(tag, str):
            raise DecryptionError(f"Checkpoint type tag must be a string, got {tag!r}.")
        if "+" not in tag:
            if not self.allow_plaintext:
                raise DecryptionError(
                    f"Refusing unencrypted checkpoint value (tag {tag!r}): this serializer "
                    "was built with allow_plaintext=False."
                )
            return self.serde.loads_typed((tag, payload))
        inner, _, ciphername = tag.partition("+")
        plaintext = self.cipher.decrypt(ciphername, payload)
        size = plaintext[0] if plaintext else -1
        if size < 0 or plaintext[1 : 1 + size] != inner.encode():
            raise DecryptionError(
                f"Encrypted checkpoint value does not match its type tag {tag!r}: the tag "
                "was altered."
            )
        return self.serde.loads_typed((inner, bytes(plaintext[1 + size :])))
