"""The WAMP subprotocols and their serializers: autobahn's, shared by every connection.

One object serializer per subprotocol for the whole process: autobahn caches a message's bytes per
serializer object, so an EVENT sent to N subscribers on the same subprotocol is encoded once, not N
times. Decoding returns each message with its raw list, because autobahn 26's parsers drop options
the router still honours (``disclose_me`` from autobahn.js).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import txaio

# autobahn's serializers read txaio's clock: select the asyncio flavour first.
txaio.use_asyncio()  # type: ignore[no-untyped-call]

from autobahn.wamp import message as _message  # noqa: E402
from autobahn.wamp.exception import ProtocolError  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
    Serializer,
)

__all__ = ["SUBPROTOCOLS", "Codec", "Message", "ProtocolError", "choose_subprotocol", "messages"]

#: A WAMP message object (``autobahn.wamp.message``): autobahn's classes are only partly typed,
#: so the router handles them as ``Any`` under this name.
Message: TypeAlias = Any
#: The module of message classes, typed loosely for the same reason.
messages: Any = _message

_MESSAGE_TYPES: dict[int, Any] = Serializer.MESSAGE_TYPE_MAP


@dataclass(frozen=True)
class Codec:
    """One WAMP subprotocol: how its frames decode into messages and messages encode into frames."""

    subprotocol: str
    object_serializer: Any
    binary: bool
    #: A faster decoder for frames that need none of autobahn's special cases (see _codecs).
    fast_loads: Callable[[bytes], Any] | None = None

    def decode(self, payload: bytes) -> list[tuple[Message, list[Any]]]:
        """Messages (each with its raw list) in one frame; raises ``ProtocolError``."""
        try:
            if self.fast_loads is not None and _BINARY_MARK not in payload:
                raw_messages = [self.fast_loads(payload)]
            else:
                raw_messages = self.object_serializer.unserialize(payload)
        except Exception as exc:  # any decoder error is the peer's malformed frame
            raise ProtocolError(f"invalid serialization: {type(exc).__name__}: {exc}") from exc
        decoded = []
        for raw in raw_messages:
            if not isinstance(raw, list) or not raw or type(raw[0]) is not int:
                raise ProtocolError(
                    f"a WAMP message is a list starting with its type, not {raw!r:.80}"
                )
            message_class = _MESSAGE_TYPES.get(raw[0])
            if message_class is None:
                raise ProtocolError(f"unknown WAMP message type {raw[0]}")
            try:
                message = message_class.parse(raw)
            except ProtocolError:
                raise
            except Exception as exc:  # e.g. InvalidUriError: still the peer's malformed message
                raise ProtocolError(f"{type(exc).__name__}: {exc}") from exc
            decoded.append((message, raw))
        return decoded

    def encode(self, message: Message) -> bytes:
        """The frame payload for ``message`` (cached on the message per serializer)."""
        data: bytes = message.serialize(self.object_serializer)
        return data


# WAMP-over-JSON carries binary values as strings starting with NUL, which JSON must escape.
_BINARY_MARK = b"\\u0000"


def _codecs() -> dict[str, Codec]:
    # autobahn's JSON decoder runs Python's pure-Python scanner (it hooks string parsing to turn
    # "\u0000..." strings into bytes): ~6x slower than json.loads on a small CALL. Frames with no
    # "\u0000" escape cannot hold such a string, so they go through json.loads and give the
    # same lists; the rest, and every msgpack and CBOR frame, through autobahn's serializers.
    # The ".batched" variants are autobahn's serializers in batched mode (a length prefix per
    # message, or a separator after each JSON message): a frame may carry several messages, and
    # each message we send goes in a frame of its own, framed the batched way.
    codecs: dict[str, Codec] = {}
    for name, serializer_class in (
        ("json", JsonSerializer),
        ("msgpack", MsgPackSerializer),
        ("cbor", CBORSerializer),
    ):
        for batched in (False, True):
            object_serializer = serializer_class(batched=batched)._serializer
            subprotocol = f"wamp.2.{name}.batched" if batched else f"wamp.2.{name}"
            fast_loads = json.loads if name == "json" and not batched else None
            codecs[subprotocol] = Codec(
                subprotocol, object_serializer, object_serializer.BINARY, fast_loads
            )
    return codecs


#: Every subprotocol the router speaks, by its WebSocket name.
SUBPROTOCOLS: dict[str, Codec] = _codecs()


def choose_subprotocol(offered: list[str]) -> Codec | None:
    """The first WAMP subprotocol in the client's list that we speak, or None."""
    for name in offered:
        codec = SUBPROTOCOLS.get(name)
        if codec is not None:
            return codec
    return None
