"""The sans-IO WebSocket core: handshake checks, frames in, events and frames out.

wsproto parses frames and validates them (RFC 6455 §5), but it inflates permessage-deflate data
with no limit and leaves handshake checks, the message size cap, ping state and close codes to
the server. This module adds those. It never touches a socket, a clock or a task: the transport
feeds bytes to :meth:`WebSocketCore.receive_data` and writes whatever the core returns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import (
    CloseReason,
    FrameDecoder,
    FrameProtocol,
    Opcode,
    ParseFailed,
    RsvBits,
)

from asgi_server.protocols.wsproto_adapter import FrameParser

Headers = list[tuple[bytes, bytes]]

# RFC 6455 §1.3: the GUID appended to Sec-WebSocket-Key before hashing.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_PARAMETERS = frozenset(
    {
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    }
)
# Compressing a tiny message costs more CPU than the bytes it saves; RFC 7692 §6 lets an endpoint
# send any message uncompressed (RSV1 clear), so small ones go out as they are.
_COMPRESS_MIN_BYTES = 128


# --- handshake (RFC 6455 §4.2) ---------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    """A valid opening handshake: what the app sees and what the 101 response needs."""

    key: bytes
    subprotocols: list[str]
    extension_offers: list[str]


@dataclass(frozen=True)
class HandshakeRejection:
    """An invalid opening handshake: answer with this HTTP response and never call the app."""

    status: int
    headers: Headers
    body: bytes


def _header_tokens(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """All comma-separated values of a header field, repeated fields joined (RFC 9110 §5.3)."""
    values: list[str] = []
    for key, value in headers:
        if key.lower() == name:
            values.extend(v.strip() for v in value.decode("latin-1").split(","))
    return [v for v in values if v]


def _reject(status: int, reason: str, headers: Headers | None = None) -> HandshakeRejection:
    return HandshakeRejection(status, headers or [], reason.encode())


def check_handshake(
    method: str, headers: Sequence[tuple[bytes, bytes]]
) -> Handshake | HandshakeRejection:
    """Validate an upgrade request per RFC 6455 §4.2.1; return the handshake or a 4xx to send."""
    if method != "GET":
        return _reject(400, "A WebSocket handshake must use GET.")
    if "websocket" not in (t.lower() for t in _header_tokens(headers, b"upgrade")):
        return _reject(400, "Missing 'Upgrade: websocket'.")
    if "upgrade" not in (t.lower() for t in _header_tokens(headers, b"connection")):
        return _reject(400, "Missing 'Connection: Upgrade'.")
    versions = _header_tokens(headers, b"sec-websocket-version")
    if not versions:
        return _reject(400, "Missing Sec-WebSocket-Version; send 13.")
    if versions != ["13"]:
        # RFC 6455 §4.4: name the versions we speak in a 426 response.
        return _reject(426, "Use Sec-WebSocket-Version 13.", [(b"sec-websocket-version", b"13")])
    keys = [value for name, value in headers if name.lower() == b"sec-websocket-key"]
    try:
        # RFC 6455 §4.1: the key is 16 random bytes, base64-encoded.
        valid_key = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except binascii.Error:
        valid_key = False
    if not valid_key:
        return _reject(400, "Sec-WebSocket-Key must be 16 random bytes in base64.")
    return Handshake(
        key=keys[0].strip(),
        subprotocols=_header_tokens(headers, b"sec-websocket-protocol"),
        extension_offers=_header_tokens(headers, b"sec-websocket-extensions"),
    )


def negotiate_deflate(offers: Iterable[str], max_size: int) -> CappedDeflate | None:
    """Accept the first permessage-deflate offer we can honour (RFC 7692 §5.1), or None."""
    for offer in offers:
        name, *params = (p.strip() for p in offer.split(";"))
        if name != PerMessageDeflate.name:
            continue
        names = [p.split("=", 1)[0].strip() for p in params]
        # RFC 7692 §5.1: decline an offer with unknown or repeated parameters.
        if not set(names) <= _DEFLATE_PARAMETERS or len(set(names)) != len(names):
            continue
        extension = CappedDeflate(max_size)
        try:
            accepted = extension.accept(offer)
        except ValueError:  # a window-bits value that is not a number
            continue
        if isinstance(accepted, str):
            extension.negotiated_params = accepted
            return extension
    return None


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value for a client's key (RFC 6455 §4.2.2 step 5.4)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def accept(
    handshake: Handshake,
    subprotocol: str | None,
    headers: Headers,
    max_size: int,
    per_message_deflate: bool,
) -> tuple[bytes, WebSocketCore]:
    """Accept a valid handshake: the 101 response (RFC 6455 §4.2.2) and the connection's core.

    ``headers`` are the app's extra response headers; permessage-deflate is negotiated from the
    client's offers when ``per_message_deflate`` is on.
    """
    deflate = (
        negotiate_deflate(handshake.extension_offers, max_size) if per_message_deflate else None
    )
    response = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", accept_key(handshake.key)),
    ]
    if subprotocol is not None:
        response.append((b"sec-websocket-protocol", subprotocol.encode()))
    if deflate is not None:
        params = deflate.negotiated_params
        offer = PerMessageDeflate.name + ("; " + params if params else "")
        response.append((b"sec-websocket-extensions", offer.encode()))
    response.extend(headers)
    return http_response(101, response, length=False), WebSocketCore(max_size, deflate)


def denial_head(status: int, headers: Headers) -> bytes:
    """The head of an app's HTTP answer to an upgrade (ASGI's websocket.http.response): its body
    is delimited by closing the connection, so it says ``connection: close``."""
    if not any(name == b"connection" for name, _ in headers):
        headers = [*headers, (b"connection", b"close")]
    return http_response(status, headers, length=False)


def http_response(
    status: int, headers: Headers, body: bytes = b"", *, length: bool = True
) -> bytes:
    """Serialize a small HTTP/1.1 response head (and body) for a handshake answer."""
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    lines.extend(name + b": " + value for name, value in headers)
    if length:
        lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_REASONS = {
    101: b"Switching Protocols",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    426: b"Upgrade Required",
    500: b"Internal Server Error",
}


# --- permessage-deflate with a cap counted while inflating -----------------------------------


class CappedDeflate(PerMessageDeflate):
    """permessage-deflate (RFC 7692) whose inflater stops at the message size cap.

    It also counts uncompressed messages, so one extension enforces ``max_size`` for every data
    message, across continuation frames, without ever holding more than the cap.
    """

    def __init__(self, max_size: int, negotiated: bool = True) -> None:
        super().__init__()
        self.max_size = max_size
        self.negotiated = negotiated
        self.negotiated_params = ""
        self._message_bytes = 0
        self._frame_is_data = False
        self.oversize = 0  # a lower bound of a refused message's size, for the log

    def enabled(self) -> bool:
        # Always on: even without compression this extension is what counts message bytes.
        return True

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, length: int
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            self._frame_is_data = False
            # RFC 7692 §6: RSV1 on a control frame is a protocol error.
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(False, False, False)
        self._frame_is_data = True
        if opcode is not Opcode.CONTINUATION:
            if rsv.rsv1 and not self.negotiated:
                return RsvBits(False, False, False)  # wsproto then fails with 1002
            self._inbound_compressed = rsv.rsv1
            self._message_bytes = 0
            if rsv.rsv1 and self._decompressor is None:
                self._decompressor = zlib.decompressobj(-self.client_max_window_bits)
        elif rsv.rsv1:
            return CloseReason.PROTOCOL_ERROR  # RFC 7692 §6.1: only the first frame has RSV1
        if not self._inbound_compressed and self._message_bytes + length > self.max_size:
            self.oversize = self._message_bytes + length
            return CloseReason.MESSAGE_TOO_BIG  # known from the header: refuse before reading
        return RsvBits(self.negotiated, False, False)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._frame_is_data:
            return data
        if self._inbound_compressed:
            return self._inflate(data)
        self._message_bytes += len(data)
        return data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        allowance = self.max_size - self._message_bytes
        try:
            # One byte past the allowance proves the message is too big without inflating more.
            out = self._decompressor.decompress(data, allowance + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._message_bytes += len(out)
        if self._message_bytes > self.max_size:
            self.oversize = self._message_bytes
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or not self._frame_is_data or not self._inbound_compressed:
            return None
        # RFC 7692 §7.2.2: append the empty stored block the sender stripped, then finish.
        tail = self._inflate(b"\x00\x00\xff\xff")
        if not isinstance(tail, CloseReason) and self.client_no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        return tail

    def compress(self, data: bytes) -> bytes:
        """Compress one whole outbound message (RFC 7692 §7.2.1)."""
        _rsv, out = self.frame_outbound(
            _SERVER_SIDE, Opcode.BINARY, RsvBits(False, False, False), data, True
        )
        return out


class _ServerSide:
    client = False


_SERVER_SIDE: FrameProtocol = _ServerSide()  # type: ignore[assignment]


# --- the connection core -----------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A whole data message from the peer: str for text, bytes for binary."""

    data: str | bytes


@dataclass(frozen=True)
class PongReceived:
    """The peer answered a ping (RFC 6455 §5.5.3)."""

    payload: bytes


@dataclass(frozen=True)
class CloseReceived:
    """The peer closed (we have queued our reply); the transport closes TCP once it is flushed."""

    code: int
    reason: str


@dataclass(frozen=True)
class ProtocolFailed:
    """The peer broke the protocol; we queued a close frame with ``code`` (RFC 6455 §7.1.7)."""

    code: int
    reason: str


Event = Message | PongReceived | CloseReceived | ProtocolFailed
State = Literal["open", "close_sent", "closed"]


def frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """Serialize one unmasked, final server frame (RFC 6455 §5.2)."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    if length < 126:
        return bytes((first, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


# The head of each unmasked, final text frame of 0-125 bytes (RFC 6455 §5.2: the length fits the
# second byte). Those are below _COMPRESS_MIN_BYTES, so they are never compressed.
_SMALL_TEXT_HEADS = tuple(bytes((0x80 | Opcode.TEXT, length)) for length in range(126))
assert _COMPRESS_MIN_BYTES >= 126

# First bytes the fast path decodes: FIN set, RSV clear, and text, binary, ping or pong.
_FAST_OPCODES = frozenset({0x81, 0x82, 0x89, 0x8A})


def _unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a payload with its 4-byte masking key (RFC 6455 §5.3), as one big integer."""
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class WebSocketCore:
    """One server-side WebSocket connection after the handshake: bytes in, events and bytes out."""

    # An idle connection keeps its core for hours: no per-instance dict, and wsproto's parser
    # (~1.2 KiB with its extension, decoders and buffers) only once a frame needs it.
    __slots__ = (
        "_extension",
        "_fragments",
        "_frames",
        "_output",
        "deflate",
        "max_size",
        "ping_payload",
        "state",
    )

    def __init__(self, max_size: int, deflate: CappedDeflate | None = None) -> None:
        self.max_size = max_size
        self.deflate = deflate
        self._extension = deflate
        self._frames: FrameParser | None = None  # built for the first frame the fast path leaves
        self._fragments: list[str | bytes] = []
        self._output = b""
        self.state: State = "open"
        self.ping_payload: bytes | None = None  # the ping we await a pong for

    def take_output(self) -> bytes:
        """The bytes queued by receive_data (pongs, close replies) for the transport to write."""
        out, self._output = self._output, b""
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete."""
        if self.state == "closed":
            return []
        events: list[Event] = []
        frames = self._frames
        if not self._fragments and (frames is None or frames.between_frames()):
            data = self._fast_path(data, events)
        if data:
            if frames is None:
                frames = self._frames = self._frame_parser()
            frames.receive_bytes(data)
            self._drain_frames(frames, events)
        return events

    def _frame_parser(self) -> FrameParser:
        """wsproto's parser, behind the extension that counts (and inflates) message bytes."""
        if self._extension is None:
            self._extension = CappedDeflate(self.max_size, negotiated=False)
        return FrameParser(self._extension)

    def _fast_path(self, data: bytes, events: list[Event]) -> bytes:
        """Decode whole, unfragmented, uncompressed data frames up to 64 KiB, and pings and
        pongs, without wsproto.

        wsproto spends ~11 us on a 64-byte frame; most chat-sized traffic is exactly this shape.
        Anything else (or any doubt) is left to wsproto, which sees the same bytes.
        """
        while len(data) >= 6:
            first, second = data[0], data[1]
            length = second & 0x7F
            # FIN set, RSV clear; text, binary, ping or pong; masked (RFC 6455 §5.1).
            if first not in _FAST_OPCODES or second < 0x80:
                break
            start = 6
            if length == 126 and first < 0x88:  # RFC 6455 §5.2: a 16-bit length follows
                if len(data) < 8:
                    break
                length = (data[2] << 8) | data[3]
                if length < 126:
                    break  # not the minimal encoding: wsproto fails it with 1002
                start = 8
            elif length > 125:
                break
            end = start + length
            if len(data) < end or length > self.max_size:
                break
            mask = data[start - 4 : start]
            payload = _unmask(data[start:end], mask) if length else b""
            if first == 0x81:
                try:
                    events.append(Message(payload.decode("utf-8")))
                except UnicodeDecodeError:
                    break  # let wsproto fail it with 1007
            elif first == 0x82:
                events.append(Message(payload))
            else:
                self._control(first & 0x0F, payload, events)
            data = data[end:]
        return data

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> None:
        """A ping (owed a pong, RFC 6455 §5.5.2) or a pong (§5.5.3), from either path."""
        if opcode == Opcode.PING:
            if self.state == "open":
                self._output += frame(Opcode.PONG, payload)
        else:
            if payload == self.ping_payload:
                self.ping_payload = None
            events.append(PongReceived(payload))

    def _drain_frames(self, frames: FrameParser, events: list[Event]) -> None:
        try:
            for received in frames.received_frames():
                opcode, payload = received.opcode, received.payload
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    assert isinstance(payload, str | bytes)
                    self._fragments.append(payload)
                    if received.message_finished:
                        events.append(Message(self._join()))
                elif opcode is Opcode.PING or opcode is Opcode.PONG:
                    assert isinstance(payload, bytes)
                    self._control(opcode, payload, events)
                elif opcode is Opcode.CLOSE:
                    assert isinstance(payload, tuple)
                    events.append(self._peer_closed(*payload))
                    return
        except ParseFailed as exc:
            reason = str(exc)
            oversize = self._extension.oversize if self._extension is not None else 0
            if exc.code == CloseReason.MESSAGE_TOO_BIG and oversize:
                reason = (
                    f"a message of at least {oversize} bytes exceeds the limit"
                    f" of {self.max_size} bytes"
                )
            events.append(self._fail(int(exc.code), reason))

    def _join(self) -> str | bytes:
        fragments, self._fragments = self._fragments, []
        if len(fragments) == 1:
            return fragments[0]
        if isinstance(fragments[0], str):
            return "".join(fragments)  # type: ignore[arg-type]
        return b"".join(fragments)  # type: ignore[arg-type]

    def _peer_closed(self, code: int, reason: str) -> CloseReceived:
        if self.state == "open":
            # RFC 6455 §5.5.1: echo the status code in our close reply.
            reply = None if code == CloseReason.NO_STATUS_RCVD else code
            self._output += self._close_frame(reply, "")
        self.state = "closed"
        return CloseReceived(int(code), reason)

    def _fail(self, code: int, reason: str) -> ProtocolFailed:
        if self.state == "open":
            self._output += self._close_frame(code, "")
        self.state = "closed"
        self._fragments = []
        return ProtocolFailed(code, reason)

    def send(self, data: str | bytes) -> bytes:
        """Frame one whole outbound message, compressing it when permessage-deflate is on."""
        if isinstance(data, str):
            payload = data.encode("utf-8")
            if len(payload) < 126:  # a chat-sized text: a 2-byte head, never compressed
                return _SMALL_TEXT_HEADS[len(payload)] + payload
            opcode = Opcode.TEXT
        else:
            opcode, payload = Opcode.BINARY, bytes(data)
        if self.deflate is not None and len(payload) >= _COMPRESS_MIN_BYTES:
            return frame(opcode, self.deflate.compress(payload), rsv1=True)
        return frame(opcode, payload)

    def ping(self, payload: bytes = b"") -> bytes:
        """Frame a ping and remember it, so a matching pong clears :attr:`ping_payload`."""
        self.ping_payload = payload
        return frame(Opcode.PING, payload)

    def close(self, code: int | None = 1000, reason: str = "") -> bytes:
        """Start the closing handshake (RFC 6455 §7.1.2); return b"" if we already closed."""
        if self.state != "open":
            return b""
        self.state = "close_sent"
        return self._close_frame(code, reason)

    @staticmethod
    def _close_frame(code: int | None, reason: str) -> bytes:
        if code is None:
            return frame(Opcode.CLOSE, b"")
        # RFC 6455 §5.5: a control payload holds at most 125 bytes, 2 of them the code.
        encoded = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
        return frame(Opcode.CLOSE, struct.pack("!H", code) + encoded)
