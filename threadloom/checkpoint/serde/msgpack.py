"""The default checkpoint serializer: compact msgpack with an explicit type allowlist.

Why not pickle
--------------
Checkpoints outlive the process that wrote them and usually sit in a shared store (a
database, a file, an object store). Unpickling runs whatever code the bytes ask for, so
anyone able to write to the store could run code in every worker that reads it. This
serializer only ever rebuilds

* msgpack's native values (``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``,
  ``list``, ``dict``),
* a fixed set of standard-library value types (tuples, sets, datetimes, UUIDs, ...),
* classes on an allowlist: the built-in one (langchain_core messages and ``Document``,
  threadloom's ``Send``/``Interrupt``/``Command``/..., builtin exceptions) plus the classes
  registered with :func:`register_type` or ``MsgpackSerializer(allowed_types=...)``,
* and, unless the serializer is strict (the savers' default serializer is not, like
  LangGraph's), pydantic models, dataclasses, NamedTuples and enums of modules the reading
  process has *already imported* (or classes it stored itself), rebuilt through their
  codecs; see ``MsgpackSerializer(strict=...)``.

A stored object names its class by a key (``"module:qualname"``, or a small integer for
the built-in allowlist). On load the key is only *looked up* in the registry; an unknown
key is an :class:`UnknownTypeError`. No module named by stored bytes is ever imported and
no callable named by stored bytes is ever called. Pickle is used in exactly one case: the
caller built the serializer with ``pickle_fallback=True`` (see :class:`MsgpackSerializer`).

This module is the wire format and the serializer; which classes are allowed is
``serde.registry`` (the names it exports are exported here too, where LangGraph code finds
them), and how one class is taken apart and rebuilt is ``serde.codecs``.

Why msgpack
-----------
Binary and compact: small ints take one byte, strings carry a length prefix instead of
quotes and escapes, ``bytes`` are stored raw. Values msgpack has no native type for are
msgpack *extension* records (``ExtType(code, payload)``) whose payload is itself msgpack.
Registered objects store only their fields, and fields still at a simple default (``None``,
``""``, ``[]``, ``{}``, ...) are left out, so a ``HumanMessage("hi")`` costs about 14 bytes.

Wire format (``"msgpack"`` tag)
-------------------------------
========  ===========================================================================
ext code  payload
========  ===========================================================================
1         int outside 64 bits: big-endian two's complement bytes
2/3/4     tuple / set / frozenset: packed list of items
5         bytearray: raw bytes (read only; see below)
6         datetime: ``[y, mo, d, h, mi, s, us]`` + ``[tzinfo]`` + ``[fold]`` if needed
7/8/9     date ``[y, m, d]`` / time ``[h, m, s, us, tz?, fold?]`` / timedelta ``[d, s, us]``
10        datetime.timezone: ``[offset_us]`` or ``[offset_us, name]``
11        zoneinfo.ZoneInfo: key (str)
12        UUID: 16 raw bytes
13        Decimal: ASCII text
14        pathlib path: ``[flavour, str]``
15        deque: ``[items, maxlen]``
16        complex: ``[real, imag]``
17        OrderedDict: packed map
32        allowlisted object: ``[type key, *state]`` (see ``codecs.Codec``)
========  ===========================================================================

``bytearray`` and ``memoryview`` values are packed by msgpack's C packer as ``bin`` before
any hook can see them, so they are read back as ``bytes``.

Two encoders, one format
------------------------
A value is packed by ``ormsgpack`` (a Rust msgpack library, about twice as fast as
msgpack's C packer on plain data: a 10,000-item list of small dicts in ~0.5 ms instead of
~1 ms) with every type it would store its own way passed to the serializer's hook
(``_FAST_OPTIONS``), which makes the same extension records as above. For everything it
packs itself (``None``, ``bool``, ``int`` within 64 bits, ``float``, ``str``, ``bytes``,
``bytearray``, ``memoryview``, ``list``, ``dict`` with ``str`` keys) its bytes are those of
msgpack's packer (both take the shortest form; ``tests/test_serde_fast_encoder.py``
checks it byte for byte), so which encoder wrote a value never shows, and the decoder is
the same. Any value it refuses - a ``dict`` with a key that is not a ``str``, nesting
deeper than it allows, a value the hook cannot store - is packed again, whole, by
msgpack's packer, which then stores it as before or raises the error it always raised.
One difference: an ``ormsgpack.Ext`` inside a value is written as the raw extension record
it stands for (as a ``msgpack.ExtType`` always was), where msgpack's packer refused it as an
unregistered type.

Two decoders, one result
------------------------
A payload is unpacked by ``ormsgpack`` too (a checkpoint row in ~0.63 us instead of
~0.9 us with msgpack's unpacker; extension records go to the same hook, whose nested
payloads msgpack's unpacker reads), with msgpack's unpacker deciding every case where the
two could differ: ``ormsgpack`` refuses a map key that is not a ``str`` (an ``int``, a
tuple's extension record, ...), nesting past 1,022 levels, and every error (the hook's
included: its ``CorruptCheckpointError`` or ``UnknownTypeError`` would come back as
``ormsgpack``'s own ``ValueError``), and such a payload is decoded again by msgpack's
unpacker, which gives its value or raises its error. And where msgpack's unpacker refuses
bytes after the value (damage that shortens a length, bytes appended), ``ormsgpack``
stops at the value's end: it is handed the payload framed as the first item of a
two-item array whose second is a marker, so that a payload not decoded to its last byte
leaves something else in the marker's place and goes to msgpack's unpacker as well
(``tests/test_serde_fast_decoder.py`` checks both give the same values and errors, on
every payload of the encoder's tests cut short, lengthened or with a byte changed). The
one payload read otherwise is a value followed by the marker itself (18 bytes no writer
puts there, and no damage that shortens a length can leave in a value's place): it
decodes to the value, where msgpack's unpacker refuses the bytes after it.

Nesting depth
-------------
Every extension record is packed and unpacked by a nested msgpack call, and each nested
call costs tens of kilobytes of C stack: a few hundred levels exhaust a thread's stack and
kill the process outright (no Python exception can catch that). So extension records may
nest at most :data:`MAX_NESTING_DEPTH` levels deep (plain lists and dicts do not count:
msgpack nests those without recursion). Writing a deeper value raises
:class:`~threadloom.checkpoint.serde.base.NestingTooDeepError`; reading deeper bytes (only
forged or damaged data can be) raises
:class:`~threadloom.checkpoint.serde.base.CorruptCheckpointError`.
"""


from __future__ import annotations

import datetime as dt
import decimal
import functools
import pathlib
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgpack
import ormsgpack

from threadloom.checkpoint.base import SerializerProtocol
from threadloom.checkpoint.serde import registry as _registry
from threadloom.checkpoint.serde.base import (
    CorruptCheckpointError,
    NestingTooDeepError,
    PickleNotAllowedError,
    SerdeError,
    UnknownTypeError,
    UnregisteredTypeError,
)
from threadloom.checkpoint.serde.codecs import Codec, as_builtin, codec_for
from threadloom.checkpoint.serde.registry import (
    BUILTINS,
    DEFAULT_REGISTRY,
    TypeRegistry,
    auto_kind,
    register_type,
    remember_written,
    resolve_unregistered,
    strict_by_default,
    type_key,
    unregistered_error,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "MAX_NESTING_DEPTH",
    "MsgpackSerializer",
    "TypeRegistry",
    "default_serializer",
    "register_type",
    "strict_by_default",
    "type_key",
]

# -- extension codes (part of the stored format: never renumber) -------------------------

EXT_BIGINT: Final = 1
EXT_TUPLE: Final = 2
EXT_SET: Final = 3
EXT_FROZENSET: Final = 4
EXT_BYTEARRAY: Final = 5
EXT_DATETIME: Final = 6
EXT_DATE: Final = 7
EXT_TIME: Final = 8
EXT_TIMEDELTA: Final = 9
EXT_TIMEZONE: Final = 10
EXT_ZONEINFO: Final = 11
EXT_UUID: Final = 12
EXT_DECIMAL: Final = 13
EXT_PATH: Final = 14
EXT_DEQUE: Final = 15
EXT_COMPLEX: Final = 16
EXT_ORDEREDDICT: Final = 17
EXT_OBJECT: Final = 32

_FAST_OPTIONS: Final = (
    ormsgpack.OPT_PASSTHROUGH_BIG_INT
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_UUID
)
"""What ``ormsgpack`` must pass to the hook rather than pack its own way (big ints,
dataclasses, datetimes, enums, subclasses of builtins, tuples, UUIDs): everything it packs
itself is then packed as msgpack's packer packs it (see "Two encoders, one format")."""

_fast_unpackb: Final = ormsgpack.unpackb
_FRAME_END: Final = bytes.fromhex("ec2cfda1bfc4f0088fd852d8e05ace52")
_FRAME_TAIL: Final = b"\xc4\x10" + _FRAME_END  # the marker, packed as a 16-byte ``bin``
_FRAMED: Final = b"\x92%b" + _FRAME_TAIL.replace(b"%", b"%%")
"""How ``ormsgpack`` is given a payload: as the first item of a two-item array whose second
is the ``bin`` value ``_FRAME_END`` (16 arbitrary bytes) - it ignores bytes after the value
it decodes, so the marker, found where it belongs, shows that the payload was decoded to
its last byte (see "Two decoders, one result")."""

MAX_NESTING_DEPTH: Final = 64
"""How deep extension records (tuples, sets, datetimes, registered objects, ...) may nest
inside one another, on write and on read (see the module docstring)."""


class _Depth(threading.local):
    """How many nested msgpack calls this thread is inside (per serializer)."""

    value = 0

_PATH_FLAVOURS: Final[tuple[type[pathlib.PurePath], ...]] = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)
_PATH_INDEX: Final = {cls: i for i, cls in enumerate(_PATH_FLAVOURS)}



def default_serializer() -> MsgpackSerializer:
    """The serializer savers, caches and ``EncryptedSerializer`` use when given none:
    ``MsgpackSerializer(strict=False)`` (LangGraph's default behaviour), or a strict one
    if :func:`strict_by_default` says so."""
    return MsgpackSerializer(strict=strict_by_default())


# -- the serializer -----------------------------------------------------------------------


def _int_to_bytes(n: int) -> bytes:
    return n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True)


def _expect_list(value: Any, low: int, high: int, what: str) -> list[Any]:
    if type(value) is not list or not low <= len(value) <= high:
        raise CorruptCheckpointError(f"malformed {what} record in checkpoint data")
    return value


def _tz_or_none(value: Any) -> dt.tzinfo | None:
    if value is not None and not isinstance(value, dt.tzinfo):
        raise CorruptCheckpointError("malformed tzinfo in checkpoint data")
    return value


class MsgpackSerializer(SerializerProtocol):
    """Serialize checkpoint values to compact msgpack, rebuilding only allowlisted types.

    ``dumps_typed(obj)`` returns ``(tag, data)``: ``("null", b"")`` for ``None``,
    ``("bytes", obj)`` for ``bytes`` and ``("msgpack", ...)`` for everything else (and
    ``("pickle", ...)`` only with ``pickle_fallback=True``). See the module docstring for
    the supported types and the format.

    Args:
        allowed_types: classes this serializer may store in addition to the built-in
            allowlist and the process-wide registry (:func:`register_type`). More can be
            added later with :meth:`register`.
        pickle_fallback: when a value contains an unregistered type anywhere, pickle the
            whole value (tag ``"pickle"``) instead of raising, and load ``"pickle"``
            values. **Unsafe** unless every writer of the checkpoint store is trusted:
            unpickling runs code chosen by the bytes. Serializers without it refuse
            ``"pickle"`` data and never call into ``pickle``.
        strict: ``True`` (the default of this class): store and rebuild only the allowlist
            above. ``False`` (the savers' default, see :func:`default_serializer`, and
            LangGraph's): also store unregistered pydantic models, dataclasses,
            NamedTuples and enums by their ``"module:qualname"``, and on reading rebuild
            such a class if this process stored it itself or its module is *already
            imported* (looked up in ``sys.modules``; stored bytes never cause an import,
            and the class is rebuilt through its codec, never pickle), logging a warning
            once per class read that way. Any other name is an :class:`UnknownTypeError`.

    How allowlisted classes are stored (only exact classes match, not subclasses):

    * pydantic v2 models: their field values (each encoded by this same serializer, so
      nested registered types survive; fields still at a simple default are left out),
      extra fields and ``model_fields_set``. They are rebuilt like ``model_construct``,
      i.e. **without validation**: the values were validated when the object was made,
      and re-validating would be slow and could change them (coercing or defaulting
      validators). Private attributes are not stored. Message ``tool_calls``, ``id``,
      ``additional_kwargs``, ``response_metadata``, ``usage_metadata`` all round-trip.
    * dataclasses: the fields, rebuilt by calling the class with the ``init`` fields and
      then setting the others (or, if ``__init__`` does not take the fields, setting all).
    * NamedTuples: the items, rebuilt with ``cls(*items)``. Enums: the value, ``cls(value)``.
    * exceptions: ``args`` and ``__dict__``; plain classes: their ``__getstate__`` state.

    A value whose class is an *unregistered* plain subclass of a builtin value type
    (``str``, ``int``, ``float``, ``bytes``, ``dict``, ``list``, ``tuple``, ``set``,
    ``frozenset``; e.g. langchain_core's ``AIMessage.text``, a ``str`` subclass) is stored
    as that builtin and read back as it; register the class to keep it. Enums and
    NamedTuples are not plain subclasses: a strict serializer refuses them unregistered.

    For pydantic models and dataclasses, unknown stored fields are ignored (kept as extras
    by models that allow extras) and missing ones take their defaults, so classes can gain
    and lose fields between writing and reading.
    """

    def __init__(
        self,
        *,
        allowed_types: Iterable[type] = (),
        pickle_fallback: bool = False,
        strict: bool = True,
    ) -> None:
        self.pickle_fallback = pickle_fallback
        self.strict = strict
        self.repacked = 0
        """Values the fast encoder refused, packed again by msgpack's packer (an operation
        counter: each cost a second pass over what the first one had packed; see "Two
        encoders, one format" in the module docstring)."""
        self.redecoded = 0
        """Payloads the fast decoder did not decode whole, decoded again by msgpack's
        unpacker (an operation counter; see "Two decoders, one result")."""
        self.registry = TypeRegistry(allowed_types)
        self._packb: Callable[[Any], bytes] = functools.partial(
            # A small starting buffer (it grows as needed): the default allocates 256 KiB
            # per call, which dominates peak memory when values nest.
            msgpack.packb, default=self._default, use_bin_type=True, strict_types=True,
            buf_size=1024,
        )
        self._msgpack_unpackb: Callable[[bytes | bytearray | memoryview], Any] = functools.partial(
            msgpack.unpackb,
            ext_hook=self._ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )
        self._depth = _Depth()
        self._native_encoders = self._make_native_encoders()
        self._ext_decoders = self._make_ext_decoders()
        self._encoders: dict[type, Callable[[Any], Any]] = {}
        # classes encoded as objects (EXT_OBJECT), straight to ormsgpack's record
        self._fast_encoders: dict[type, Callable[[Any], ormsgpack.Ext]] = {}
        self._decoders: dict[int | str, Codec] = {}
        self._generation = -1
        self._sync()

    def register(self, *types: type) -> None:
        """Allow instances of ``types`` in this serializer only (see :func:`register_type`)."""
        self.registry.add(*types)

    # -- public protocol ---------------------------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Encode ``obj`` as ``(tag, data)``.

        Raises :class:`UnregisteredTypeError` (a ``TypeError``) naming any value whose type
        is not allowed, and ``ValueError`` for reference cycles.
        """
        if obj is None:
            return "null", b""
        if type(obj) is bytes:
            return "bytes", obj
        if self._generation != _registry.generation:
            self._sync()
        try:
            return "msgpack", ormsgpack.packb(
                obj, default=self._fast_default, option=_FAST_OPTIONS
            )
        except Exception:  # refused (see the module docstring): msgpack's packer decides
            self.repacked += 1
        try:
            return "msgpack", self._packb(obj)
        except UnregisteredTypeError:
            if not self.pickle_fallback:
                raise
        except NestingTooDeepError:
            raise
        except RecursionError:
            raise ValueError(
                "Cannot store the value in a checkpoint: it is nested too deeply or contains "
                "a reference cycle."
            ) from None
        except ValueError as exc:
            if "recursion limit" in str(exc):
                raise ValueError(
                    "Cannot store the value in a checkpoint: it is nested too deeply or "
                    "contains a reference cycle."
                ) from None
            raise
        import pickle  # only reachable with pickle_fallback=True

        return "pickle", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decode a ``(tag, data)`` pair made by :meth:`dumps_typed`.

        Every failure is a ``ValueError``: :class:`CorruptCheckpointError` for undecodable
        bytes, :class:`UnknownTypeError` for a class not on the allowlist,
        :class:`PickleNotAllowedError` for pickle data without ``pickle_fallback=True``.
        """
        try:
            tag, payload = data
        except (TypeError, ValueError):
            raise CorruptCheckpointError(
                "loads_typed() expects a (type_tag, bytes) pair."
            ) from None
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise CorruptCheckpointError(
                f"checkpoint data must be bytes, got {type(payload).__name__}."
            )
        if tag == "msgpack":
            if self._generation != _registry.generation:
                self._sync()
            try:
                return self._unpackb(payload)
            except SerdeError:
                raise
            except Exception as exc:
                raise CorruptCheckpointError(
                    f"Checkpoint data (tag 'msgpack') is corrupt or was not written by "
                    f"this serializer: {type(exc).__name__}: {exc}"
                ) from exc
        if tag == "null":
            return None
        if tag == "bytes":
            return bytes(payload)
        if tag == "pickle":
            if not self.pickle_fallback:
                raise PickleNotAllowedError(
                    "Refusing to load checkpoint data tagged 'pickle': unpickling runs code "
                    "chosen by whoever wrote the bytes. If this checkpoint store is fully "
                    "trusted, read it with MsgpackSerializer(pickle_fallback=True)."
                )
            import pickle

            try:
                return pickle.loads(payload)
            except Exception as exc:
                raise CorruptCheckpointError(
                    f"Checkpoint data (tag 'pickle') could not be unpickled: {exc}"
                ) from exc
        hint = ""
        if isinstance(tag, str) and "+" in tag:
            hint = " It looks encrypted: read it through an EncryptedSerializer."
        raise CorruptCheckpointError(
            f"Unknown checkpoint type tag {tag!r}: this serializer reads 'null', 'bytes', "
            f"'msgpack' (and 'pickle' with pickle_fallback=True).{hint}"
        )

    def payload_loader(self) -> Callable[[bytes], Any] | None:
        """What ``loads_typed(("msgpack", payload))`` does to a ``bytes`` payload, without
        its per-call checks, for a read that decodes many rows at once (a listing); None
        when a subclass decodes otherwise. Its errors are raw: the caller decodes a row
        that fails through ``loads_typed`` again, for the error that names it. Take a new
        one per batch of rows (it is synchronised with the type registries when taken).
        """
        if type(self).loads_typed is not MsgpackSerializer.loads_typed:
            return None
        if self._generation != _registry.generation:
            self._sync()
        return self._unpackb

    def payloads_loader(self) -> Callable[[list[bytes]], list[Any] | None] | None:
        """``payload_loader`` for a batch: a function decoding a list of ``bytes``
        payloads in one ``ormsgpack`` call (~0.3 us a row less than one call each), or
        returning None where a payload needs msgpack's unpacker or any error was met -
        the caller then decodes each payload on its own, for its value or the error that
        names it. None when a subclass decodes otherwise.

        The payloads are framed as the items of one array ended by the marker (see "Two
        decoders, one result"): a payload not decoded to its last byte leaves something
        else in the marker's place. What that cannot see - damage to one payload undone
        by damage to another - leaves items that are not the payloads' values in their
        places, so the caller must still check each item against its row (a listing
        compares each checkpoint's id with its row's) and decode each on its own when
        any does not match."""
        if self.payload_loader() is None:
            return None
        return self._unpack_many

    def _unpack_many(self, payloads: list[bytes]) -> list[Any] | None:
        count = len(payloads) + 1
        framed = b"".join((b"\xdd", count.to_bytes(4, "big"), *payloads, _FRAME_TAIL))
        try:
            values = _fast_unpackb(framed, ext_hook=self._ext_hook)
        except Exception:
            return None
        if type(values) is not list or len(values) != count:
            return None
        end = values.pop()
        if type(end) is not bytes or end != _FRAME_END:
            return None
        return values

    def _unpackb(self, payload: bytes | bytearray | memoryview) -> Any:
        """A payload's value: decoded by ``ormsgpack`` when it decodes it whole, else by
        msgpack's unpacker, which then decodes it as it always did or raises the error it
        always raised (see "Two decoders, one result" in the module docstring)."""
        try:
            value, end = _fast_unpackb(_FRAMED % payload, ext_hook=self._ext_hook)
        except Exception:
            pass  # refused, or an error the hook raised: msgpack's unpacker decides
        else:
            if type(end) is bytes and end == _FRAME_END:
                return value
        self.redecoded += 1
        return self._msgpack_unpackb(payload)

    # -- nesting ------------------------------------------------------------------------

    def _pack_nested(self, obj: Any) -> bytes:
        """Pack the payload of an extension record, one level deeper."""
        depth = self._depth
        level = depth.value
        if level >= MAX_NESTING_DEPTH:
            raise NestingTooDeepError(
                f"Cannot store the value in a checkpoint: tuples, sets, datetimes or objects "
                f"in it nest more than {MAX_NESTING_DEPTH} levels deep, or it contains a "
                "reference cycle (a deeper value could not be read back safely). Flatten it, "
                "or use lists and dicts for deep trees."
            )
        depth.value = level + 1
        try:
            return self._packb(obj)
        finally:
            depth.value = level

    def _unpack_nested(self, data: bytes) -> Any:
        """Unpack the payload of an extension record, one level deeper."""
        depth = self._depth
        level = depth.value
        if level >= MAX_NESTING_DEPTH:
            raise CorruptCheckpointError(
                f"Checkpoint data nests extension records more than {MAX_NESTING_DEPTH} "
                "levels deep; no value this serializer writes does, so it is forged or "
                "damaged."
            )
        depth.value = level + 1
        try:
            return msgpack.unpackb(
                data, ext_hook=self._ext_hook, raw=False, strict_map_key=False
            )
        finally:
            depth.value = level

    # -- encoding ----------------------------------------------------------------------

    def _sync(self) -> None:
        self._encoders = dict(self._native_encoders)
        self._fast_encoders = {}
        self._decoders = {}
        self._generation = _registry.generation

    def _fast_default(self, obj: Any) -> Any:
        """``_default`` for ``ormsgpack``: the same value, an extension record as its kind
        of record (a ``msgpack.ExtType`` in the value is one already, as msgpack's packer
        stores it). An object of a class already encoded once (a message, say) goes
        straight to its record."""
        fast = self._fast_encoders.get(obj.__class__)
        if fast is not None:
            return fast(obj)
        out = obj if type(obj) is msgpack.ExtType else self._default(obj)
        if type(out) is msgpack.ExtType:
            return ormsgpack.Ext(out.code, out.data)
        return out

    def _default(self, obj: Any) -> Any:
        encoder = self._encoders.get(obj.__class__)
        if encoder is None:
            encoder = self._encoder_for(obj.__class__)
        return encoder(obj)

    def _encoder_for(self, cls: type) -> Callable[[Any], Any]:
        if cls not in self.registry and cls not in DEFAULT_REGISTRY:
            BUILTINS.ensure()
            if cls not in BUILTINS.wire:
                found = as_builtin(cls)
                if found is None:
                    if self.strict or auto_kind(cls) is None:
                        raise unregistered_error(cls, strict=self.strict)
                    remember_written(cls)
                    return self._object_encoder(cls)
                base, to_base = found
                native = self._native_encoders.get(base)  # tuple, set, frozenset
                encode = to_base if native is None else lambda o: native(to_base(o))
                self._encoders[cls] = encode
                return encode
        return self._object_encoder(cls)

    def _object_encoder(self, cls: type) -> Callable[[Any], Any]:
        encode = codec_for(cls).encode
        pack = self._pack_nested
        ext = msgpack.ExtType

        def encoder(obj: Any) -> msgpack.ExtType:
            return ext(EXT_OBJECT, pack(encode(obj)))

        def fast_encoder(obj: Any) -> ormsgpack.Ext:
            return fast_ext(EXT_OBJECT, pack(encode(obj)))

        fast_ext = ormsgpack.Ext
        self._encoders[cls] = encoder
        self._fast_encoders[cls] = fast_encoder
        return encoder

    def _make_native_encoders(self) -> dict[type, Callable[[Any], msgpack.ExtType]]:
        pack = self._pack_nested
        ext = msgpack.ExtType

        def enc_datetime(o: dt.datetime) -> msgpack.ExtType:
            parts: list[Any] = [o.year, o.month, o.day, o.hour, o.minute, o.second, o.microsecond]
            if o.tzinfo is not None or o.fold:
                parts.append(o.tzinfo)
            if o.fold:
                parts.append(o.fold)
            return ext(EXT_DATETIME, pack(parts))

        def enc_time(o: dt.time) -> msgpack.ExtType:
            parts: list[Any] = [o.hour, o.minute, o.second, o.microsecond]
            if o.tzinfo is not None or o.fold:
                parts.append(o.tzinfo)
            if o.fold:
                parts.append(o.fold)
            return ext(EXT_TIME, pack(parts))

        def enc_timezone(o: dt.timezone) -> msgpack.ExtType:
            args = o.__getinitargs__()  # type: ignore[attr-defined]
            offset = args[0] // dt.timedelta(microseconds=1)
            return ext(EXT_TIMEZONE, pack([offset, *args[1:]]))

        def enc_zoneinfo(o: ZoneInfo) -> msgpack.ExtType:
            if o.key is None:
                raise UnregisteredTypeError(
                    "Cannot store a ZoneInfo built from a file (it has no key); use "
                    "ZoneInfo('Area/City')."
                )
            return ext(EXT_ZONEINFO, o.key.encode())

        def enc_path(o: pathlib.PurePath) -> msgpack.ExtType:
            return ext(EXT_PATH, pack([_PATH_INDEX[type(o)], str(o)]))

        encoders: dict[type, Callable[[Any], msgpack.ExtType]] = {
            int: lambda o: ext(EXT_BIGINT, _int_to_bytes(o)),
            tuple: lambda o: ext(EXT_TUPLE, pack(list(o))),
            set: lambda o: ext(EXT_SET, pack(list(o))),
            frozenset: lambda o: ext(EXT_FROZENSET, pack(list(o))),
            dt.datetime: enc_datetime,
            dt.date: lambda o: ext(EXT_DATE, pack([o.year, o.month, o.day])),
            dt.time: enc_time,
            dt.timedelta: lambda o: ext(EXT_TIMEDELTA, pack([o.days, o.seconds, o.microseconds])),
            dt.timezone: enc_timezone,
            ZoneInfo: enc_zoneinfo,
            uuid.UUID: lambda o: ext(EXT_UUID, o.bytes),
            decimal.Decimal: lambda o: ext(EXT_DECIMAL, str(o).encode()),
            deque: lambda o: ext(EXT_DEQUE, pack([list(o), o.maxlen])),
            complex: lambda o: ext(EXT_COMPLEX, pack([o.real, o.imag])),
            OrderedDict: lambda o: ext(EXT_ORDEREDDICT, pack(dict(o))),
        }
        for cls in _PATH_FLAVOURS:
            encoders[cls] = enc_path
        return encoders

    # -- decoding ----------------------------------------------------------------------

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == EXT_OBJECT:  # the hot path: one per stored message
            return self._decode_object(data)
        decoder = self._ext_decoders.get(code)
        if decoder is None:
            raise CorruptCheckpointError(
                f"Checkpoint data contains unknown msgpack extension type {code}; it is "
                "corrupt or was written by an incompatible serializer."
            )
        return decoder(data)

    def _make_ext_decoders(self) -> dict[int, Callable[[bytes], Any]]:
        unpack = self._unpack_nested

        def items(data: bytes, what: str) -> list[Any]:
            value = unpack(data)
            if type(value) is not list:
                raise CorruptCheckpointError(f"malformed {what} record in checkpoint data")
            return value

        def dec_bigint(data: bytes) -> int:
            if not data:
                raise CorruptCheckpointError("empty integer record in checkpoint data")
            return int.from_bytes(data, "big", signed=True)

        def dec_datetime(data: bytes) -> dt.datetime:
            v = _expect_list(unpack(data), 7, 9, "datetime")
            tz = _tz_or_none(v[7]) if len(v) > 7 else None
            year, month, day, hour, minute, second, micro = v[:7]
            fold = v[8] if len(v) > 8 else 0
            return dt.datetime(year, month, day, hour, minute, second, micro, tz, fold=fold)

        def dec_time(data: bytes) -> dt.time:
            v = _expect_list(unpack(data), 4, 6, "time")
            tz = _tz_or_none(v[4]) if len(v) > 4 else None
            hour, minute, second, micro = v[:4]
            return dt.time(hour, minute, second, micro, tz, fold=v[5] if len(v) > 5 else 0)

        def dec_timezone(data: bytes) -> dt.timezone:
            v = _expect_list(unpack(data), 1, 2, "timezone")
            offset = dt.timedelta(microseconds=v[0])
            return dt.timezone(offset, *v[1:])

        def dec_path(data: bytes) -> pathlib.PurePath:
            v = _expect_list(unpack(data), 2, 2, "path")
            kind, text = v
            if type(kind) is not int or not 0 <= kind < len(_PATH_FLAVOURS):
                raise CorruptCheckpointError("malformed path record in checkpoint data")
            try:
                return _PATH_FLAVOURS[kind](text)
            except NotImplementedError:  # e.g. a WindowsPath read on Linux
                return _PATH_FLAVOURS[kind % 2](text)

        def dec_deque(data: bytes) -> deque[Any]:
            v = _expect_list(unpack(data), 2, 2, "deque")
            return deque(v[0], v[1])

        def dec_complex(data: bytes) -> complex:
            v = _expect_list(unpack(data), 2, 2, "complex")
            return complex(v[0], v[1])

        def dec_ordereddict(data: bytes) -> OrderedDict[Any, Any]:
            value = unpack(data)
            if type(value) is not dict:
                raise CorruptCheckpointError("malformed OrderedDict record in checkpoint data")
            return OrderedDict(value)

        return {
            EXT_BIGINT: dec_bigint,
            EXT_TUPLE: lambda d: tuple(items(d, "tuple")),
            EXT_SET: lambda d: set(items(d, "set")),
            EXT_FROZENSET: lambda d: frozenset(items(d, "frozenset")),
            EXT_BYTEARRAY: bytearray,
            EXT_DATETIME: dec_datetime,
            EXT_DATE: lambda d: dt.date(*_expect_list(unpack(d), 3, 3, "date")),
            EXT_TIME: dec_time,
            EXT_TIMEDELTA: lambda d: dt.timedelta(*_expect_list(unpack(d), 3, 3, "timedelta")),
            EXT_TIMEZONE: dec_timezone,
            EXT_ZONEINFO: lambda d: ZoneInfo(d.decode()),
            EXT_UUID: lambda d: uuid.UUID(bytes=d),
            EXT_DECIMAL: lambda d: decimal.Decimal(d.decode("ascii")),
            EXT_PATH: dec_path,
            EXT_DEQUE: dec_deque,
            EXT_COMPLEX: dec_complex,
            EXT_ORDEREDDICT: dec_ordereddict,
        }

    def _decode_object(self, data: bytes) -> Any:
        record = self._unpack_nested(data)
        if type(record) is not list or not record:
            raise CorruptCheckpointError("malformed object record in checkpoint data")
        key = record[0]
        if type(key) is not int and type(key) is not str:
            raise CorruptCheckpointError("malformed type key in checkpoint data")
        codec = self._decoders.get(key)
        if codec is None:
            codec = self._decoder_for(key)
        try:
            return codec.decode(record)
        except SerdeError:
            raise
        except Exception as exc:
            raise CorruptCheckpointError(
                f"Could not rebuild a {codec.name} from checkpoint data: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _decoder_for(self, key: int | str) -> Codec:
        cls: type | None = None
        if type(key) is str:
            cls = self.registry.get(key) or DEFAULT_REGISTRY.get(key)
        if cls is None:
            BUILTINS.ensure()
            cls = BUILTINS.by_key.get(key)
        if cls is None and type(key) is str and not self.strict:
            cls = resolve_unregistered(key)
        if cls is None:
            if type(key) is int:
                raise UnknownTypeError(
                    f"Checkpoint data names built-in type #{key}, which this version of "
                    "threadloom does not know; it was written by a newer version or is "
                    "corrupt."
                )
            found = (
                "not a pydantic model, dataclass, NamedTuple or enum of an imported module"
                if not self.strict
                else "not registered with this strict serializer"
            )
            raise UnknownTypeError(
                f"Checkpoint data names type {key!r}, which is {found} (stored bytes never "
                "cause imports). If it is your class, import its module before reading, "
                "or register it in the reading process with "
                "`from threadloom.checkpoint.serde import register_type; "
                "register_type(YourClass)`, or pass "
                "`MsgpackSerializer(allowed_types=[YourClass])` / "
                "`JsonPlusSerializer(allowed_msgpack_modules=[(module, name)])`."
            )
        codec = codec_for(cls)
        self._decoders[key] = codec
        return codec

