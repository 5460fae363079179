"""Message serializers for the Redis layers: msgpack (default) or JSON, optionally encrypted.

Both formats carry what Channels messages hold in practice beyond plain JSON types: ``bytes``,
``datetime``/``date``/``time``/``timedelta``, ``Decimal``, ``UUID`` and (msgpack only) ``int``
dict keys. A value neither format can carry raises :class:`~channel_layers.base.InvalidMessage`
naming the value's type and where it sits in the message (``message['user']['joined']``), where
channels_redis raised a bare ``TypeError`` from deep inside msgpack (channels_redis#287, #254).

Encryption uses Fernet with every key of ``symmetric_encryption_keys`` (MultiFernet: the first key
encrypts, any key decrypts, so keys can be rotated). Keys given as ``str`` or ``bytes`` are
stretched with SHA-256 into Fernet keys exactly as channels_redis does, so existing settings keep
working and both can read each other's messages.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import msgpack  # type: ignore[import-untyped]

from channel_layers.base import ChannelLayerError, InvalidMessage, find_unsupported
from channel_layers.memory import copy_message, is_flat

__all__ = ["FORMATS", "MessageDecodeError", "MessageSerializer", "fernet_from_key"]


class MessageDecodeError(ChannelLayerError):
    """A stored message could not be decrypted or decoded (wrong key, or another format)."""


# msgpack extension type codes. Stable: messages written by one version are read by the next.
_EXT_DATETIME = 1
_EXT_DATE = 2
_EXT_TIME = 3
_EXT_TIMEDELTA = 4
_EXT_DECIMAL = 5
_EXT_UUID = 6


def _msgpack_default(value: object) -> msgpack.ExtType:
    # datetime before date: a datetime is also a date.
    if isinstance(value, datetime.datetime):
        return msgpack.ExtType(_EXT_DATETIME, value.isoformat().encode())
    if isinstance(value, datetime.date):
        return msgpack.ExtType(_EXT_DATE, value.isoformat().encode())
    if isinstance(value, datetime.time):
        return msgpack.ExtType(_EXT_TIME, value.isoformat().encode())
    if isinstance(value, datetime.timedelta):
        parts = (value.days, value.seconds, value.microseconds)
        return msgpack.ExtType(_EXT_TIMEDELTA, msgpack.packb(parts))
    if isinstance(value, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(value).encode())
    if isinstance(value, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, value.bytes)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _msgpack_ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_DATETIME:
        return datetime.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return datetime.date.fromisoformat(data.decode())
    if code == _EXT_TIME:
        return datetime.time.fromisoformat(data.decode())
    if code == _EXT_TIMEDELTA:
        days, seconds, microseconds = msgpack.unpackb(data)
        return datetime.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    if code == _EXT_DECIMAL:
        return decimal.Decimal(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    return msgpack.ExtType(code, data)


def _msgpack_dumps(message: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(message, default=_msgpack_default, use_bin_type=True)
    return packed


def _msgpack_loads(data: bytes) -> Any:
    # strict_map_key=False: int dict keys are legal in Channels messages (channels_redis#254).
    return msgpack.unpackb(data, ext_hook=_msgpack_ext_hook, raw=False, strict_map_key=False)


_JSON_TAG = "__crossway__"


def _json_default(value: object) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {_JSON_TAG: "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, datetime.timedelta):
        return {_JSON_TAG: "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if isinstance(value, datetime.date | datetime.time):
        code = next(code for kind, code in _JSON_KINDS.items() if isinstance(value, kind))
        return {_JSON_TAG: code, "v": value.isoformat()}
    for kind, code in _JSON_KINDS.items():
        if isinstance(value, kind):
            return {_JSON_TAG: code, "v": str(value)}
    raise TypeError(f"cannot serialize {type(value).__name__}")


# Order matters: datetime is a subclass of date.
_JSON_KINDS: dict[type, str] = {
    datetime.datetime: "datetime",
    datetime.date: "date",
    datetime.time: "time",
    decimal.Decimal: "decimal",
    uuid.UUID: "uuid",
}
_SERIALIZABLE: tuple[type, ...] = (
    str,
    bytes,
    int,
    float,
    bool,
    type(None),
    *_JSON_KINDS,
    datetime.timedelta,
)
_JSON_DECODERS: dict[str, Callable[[Any], object]] = {
    "bytes": lambda v: base64.b64decode(v),
    "timedelta": lambda v: datetime.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
}


def _json_object_hook(obj: dict[str, Any]) -> object:
    tag = obj.get(_JSON_TAG)
    if tag is not None and len(obj) == 2 and tag in _JSON_DECODERS:
        return _JSON_DECODERS[tag](obj["v"])
    return obj


def _json_dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, default=_json_default, separators=(",", ":")).encode()


def _json_loads(data: bytes) -> Any:
    return json.loads(data, object_hook=_json_object_hook)


#: The formats ``serializer_format`` may name: (dumps, loads).
FORMATS: dict[str, tuple[Callable[[dict[str, Any]], bytes], Callable[[bytes], Any]]] = {
    "msgpack": (_msgpack_dumps, _msgpack_loads),
    "json": (_json_dumps, _json_loads),
}

_SUPPORTED = (
    "dict, list, tuple, str, bytes, int, float, bool, None, datetime, date, time, timedelta, "
    "Decimal and UUID"
)


def find_unserializable(value: object, path: str = "message") -> tuple[str, str] | None:
    """The (path, type name) of the first value no format carries, or None when all are fine."""
    return find_unsupported(value, path, (str, int), _SERIALIZABLE)


def fernet_from_key(key: str | bytes) -> Any:
    """A Fernet for ``key``, stretched with SHA-256 as channels_redis does (same wire format)."""
    from cryptography.fernet import Fernet

    raw = key.encode() if isinstance(key, str) else bytes(key)
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))


class MessageSerializer:
    """Turns messages into bytes and back: ``serializer_format`` plus optional encryption."""

    def __init__(
        self,
        serializer_format: str = "msgpack",
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
    ) -> None:
        if serializer_format not in FORMATS:
            raise ValueError(
                f"serializer_format {serializer_format!r} is unknown; use one of {sorted(FORMATS)}"
            )
        self.format = serializer_format
        self._dumps, self._loads = FORMATS[serializer_format]
        self._crypter = self._make_crypter(symmetric_encryption_keys)
        # The last payload decoded by deserialize_shared(), its message (never handed out:
        # callers get copies) and whether that message is flat (a shallow copy suffices).
        self._last: tuple[bytes | None, dict[str, Any], bool] = (None, {}, True)

    @staticmethod
    def _make_crypter(keys: Iterable[str | bytes] | None) -> Any:
        if not keys:
            return None
        if isinstance(keys, str | bytes):
            raise ValueError(
                "symmetric_encryption_keys must be a list of keys (newest first), not one key: "
                "write [key] instead of key"
            )
        try:
            from cryptography.fernet import MultiFernet
        except ImportError as exc:  # pragma: no cover - cryptography is a test dependency
            raise ValueError(
                "symmetric_encryption_keys needs the 'cryptography' package: pip install "
                "cryptography"
            ) from exc
        return MultiFernet([fernet_from_key(key) for key in keys])

    def serialize(self, message: dict[str, Any]) -> bytes:
        """Encode (and encrypt) ``message``; raise InvalidMessage naming what cannot be encoded."""
        try:
            data = self._dumps(message)
        except (TypeError, ValueError, OverflowError) as exc:
            found = find_unserializable(message)
            where = f"{found[0]} has type {found[1]}" if found else str(exc)
            raise InvalidMessage(
                f"cannot serialize the message with {self.format}: {where}; send only "
                f"{_SUPPORTED} (convert other values, e.g. to str, before sending)"
            ) from exc
        if self._crypter is not None:
            data = self._crypter.encrypt(data)
        return data

    def deserialize_shared(self, data: bytes) -> dict[str, Any]:
        """Like deserialize, but decrypts and decodes once when the same bytes object comes
        again in a row, as a group message does for each of its members in one process; every
        call returns a private copy."""
        last_data, message, flat = self._last
        if data is not last_data:
            message = self.deserialize(data)
            flat = is_flat(message)
            self._last = (data, message, flat)
        # copy_message() inlined: this runs once per delivery of every message.
        return message.copy() if flat else copy_message(message, flat)

    def deserialize(self, data: bytes) -> dict[str, Any]:
        """Decrypt and decode one stored message; raise MessageDecodeError when that fails."""
        try:
            if self._crypter is not None:
                data = self._crypter.decrypt(data)
            message = self._loads(data)
        except Exception as exc:
            raise MessageDecodeError(
                f"could not decode a message ({type(exc).__name__}): do all processes use the same "
                f"serializer_format ({self.format!r}) and symmetric_encryption_keys?"
            ) from exc
        if not isinstance(message, dict):
            raise MessageDecodeError(f"a stored message decoded to {type(message).__name__}")
        return message
