"""The sans-IO WebSocket core, fed whole and one byte at a time (no sockets, no clocks)."""

from __future__ import annotations

import os
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from asgi_server.protocols import websocket as ws

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
GOOD_HEADERS = [
    (b"host", b"example.com"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
]


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, masked: bool = True
) -> bytes:
    """A client frame as a browser would send it: masked with a random key (RFC 6455 §5.3)."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    mask = (key * (length // 4 + 1))[:length]
    return head + key + (int.from_bytes(payload) ^ int.from_bytes(mask)).to_bytes(length)


def whole(core: ws.WebSocketCore, data: bytes) -> list[ws.Event]:
    return core.receive_data(data)


def bytewise(core: ws.WebSocketCore, data: bytes) -> list[ws.Event]:
    events: list[ws.Event] = []
    for i in range(len(data)):
        events.extend(core.receive_data(data[i : i + 1]))
    return events


Feed = Callable[[ws.WebSocketCore, bytes], list[ws.Event]]
feeds = pytest.mark.parametrize("feed", [whole, bytewise], ids=["whole", "bytewise"])


def parse_server_frame(data: bytes) -> tuple[int, bytes]:
    """Opcode and payload of one unmasked server frame."""
    assert data[1] & 0x80 == 0, "server frames must not be masked"
    length, offset = data[1] & 0x7F, 2
    if length == 126:
        (length,), offset = struct.unpack("!H", data[2:4]), 4
    elif length == 127:
        (length,), offset = struct.unpack("!Q", data[2:10]), 10
    assert len(data) == offset + length
    return data[0] & 0x0F, data[offset:]


# --- handshake ---------------------------------------------------------------------------------


def test_accept_key_matches_rfc_example() -> None:
    # RFC 6455 §1.3 gives this key and its accept value.
    assert ws.accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_valid_handshake_lists_subprotocols_and_extensions() -> None:
    headers = [
        *GOOD_HEADERS,
        (b"sec-websocket-protocol", b"chat, superchat"),
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    ]
    result = ws.check_handshake("GET", headers)
    assert isinstance(result, ws.Handshake)
    assert result.key == KEY
    assert result.subprotocols == ["chat", "superchat"]
    assert result.extension_offers == ["permessage-deflate; client_max_window_bits"]


@pytest.mark.parametrize(
    ("method", "replace", "status"),
    [
        ("POST", {}, 400),
        ("GET", {b"sec-websocket-key": None}, 400),
        ("GET", {b"sec-websocket-key": b"not base64!"}, 400),
        ("GET", {b"sec-websocket-key": b"c2hvcnQ="}, 400),  # 5 bytes, not 16
        ("GET", {b"sec-websocket-version": None}, 400),
        ("GET", {b"sec-websocket-version": b"8"}, 426),
        ("GET", {b"upgrade": b"h2c"}, 400),
        ("GET", {b"connection": b"keep-alive"}, 400),
    ],
)
def test_invalid_handshakes_are_rejected(
    method: str, replace: dict[bytes, bytes | None], status: int
) -> None:
    headers = [
        (name, replace[name]) if name in replace else (name, value) for name, value in GOOD_HEADERS
    ]
    result = ws.check_handshake(method, [(n, v) for n, v in headers if v is not None])
    assert isinstance(result, ws.HandshakeRejection)
    assert result.status == status
    if status == 426:
        assert (b"sec-websocket-version", b"13") in result.headers


def test_deflate_negotiation_declines_unknown_parameters() -> None:
    assert ws.negotiate_deflate(["permessage-deflate; foo=1"], 1024) is None
    assert ws.negotiate_deflate(["x-webkit-deflate-frame"], 1024) is None
    chosen = ws.negotiate_deflate(
        ["permessage-deflate; foo", "permessage-deflate; client_max_window_bits"], 1024
    )
    assert chosen is not None
    assert chosen.negotiated_params == "client_max_window_bits=15"


# --- messages ----------------------------------------------------------------------------------


@feeds
def test_text_binary_and_empty_messages(feed: Feed) -> None:
    core = ws.WebSocketCore(max_size=1 << 20)
    data = (
        client_frame(0x1, "héllo".encode())
        + client_frame(0x2, b"\x00\xff" * 100)  # 200 bytes: a 16-bit length
        + client_frame(0x1, b"")
        + client_frame(0x2, b"")
    )
    assert feed(core, data) == [
        ws.Message("héllo"),
        ws.Message(b"\x00\xff" * 100),
        ws.Message(""),
        ws.Message(b""),
    ]


@feeds
def test_pings_pongs_and_16_bit_lengths_between_messages(feed: Feed) -> None:
    """Whole, these take the fast path (no wsproto parser is built); byte by byte, wsproto's:
    both give the same events and pongs."""
    core = ws.WebSocketCore(max_size=1 << 20)
    core.ping(b"ab")
    data = (
        client_frame(0x9, b"hi")
        + client_frame(0x1, b"x" * 126)
        + client_frame(0xA, b"ab")
        + client_frame(0x2, b"y" * 65535)
        + client_frame(0x9, b"")
    )
    events = feed(core, data)
    assert events == [ws.Message("x" * 126), ws.PongReceived(b"ab"), ws.Message(b"y" * 65535)]
    assert core.ping_payload is None
    pongs = core.take_output()
    assert parse_server_frame(pongs[:4]) == (0xA, b"hi")
    assert parse_server_frame(pongs[4:]) == (0xA, b"")
    if feed is whole:  # an idle connection that only chats never pays for wsproto's parser
        assert core._frames is None


@feeds
def test_a_16_bit_length_that_fits_in_7_bits_is_a_protocol_error(feed: Feed) -> None:
    """RFC 6455 §5.2: the minimal number of bytes must encode the length."""
    frame = struct.pack("!BBH", 0x81, 0x80 | 126, 5) + b"\x00" * 4 + b"hello"
    events = feed(ws.WebSocketCore(max_size=1024), frame)
    assert len(events) == 1 and isinstance(events[0], ws.ProtocolFailed)
    assert events[0].code == 1002


@feeds
def test_fragmented_message_with_interleaved_ping(feed: Feed) -> None:
    core = ws.WebSocketCore(max_size=1 << 20)
    data = (
        client_frame(0x1, b"frag", fin=False)
        + client_frame(0x9, b"hi")
        + client_frame(0x0, b"ment", fin=False)
        + client_frame(0x0, b"ed")
    )
    assert feed(core, data) == [ws.Message("fragmented")]
    assert parse_server_frame(core.take_output()) == (0xA, b"hi")


@feeds
def test_close_with_code_and_reason_is_echoed(feed: Feed) -> None:
    core = ws.WebSocketCore(max_size=1024)
    events = feed(core, client_frame(0x8, struct.pack("!H", 4001) + b"bye now"))
    assert events == [ws.CloseReceived(4001, "bye now")]
    assert parse_server_frame(core.take_output()) == (0x8, struct.pack("!H", 4001))
    assert core.state == "closed"


def test_server_close_then_peer_reply() -> None:
    core = ws.WebSocketCore(max_size=1024)
    assert parse_server_frame(core.close(1000, "done")) == (0x8, b"\x03\xe8done")
    assert core.close(1000) == b""  # only one close frame per connection
    assert core.receive_data(client_frame(0x8, b"\x03\xe8")) == [ws.CloseReceived(1000, "")]
    assert core.take_output() == b""


def test_pong_clears_the_outstanding_ping() -> None:
    core = ws.WebSocketCore(max_size=1024)
    assert parse_server_frame(core.ping(b"1234")) == (0x9, b"1234")
    assert core.ping_payload == b"1234"
    assert core.receive_data(client_frame(0xA, b"1234")) == [ws.PongReceived(b"1234")]
    assert core.ping_payload is None


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_small_text_frames_have_a_two_byte_head_and_stay_uncompressed(deflate: bool) -> None:
    core = deflate_core(1 << 20) if deflate else ws.WebSocketCore(max_size=1 << 20)
    for text in ["", "a", "a" * 125, "\u20ac" * 41]:  # 0, 1, 125 and 123 UTF-8 bytes
        payload = text.encode()
        assert core.send(text) == bytes((0x81, len(payload))) + payload
    # 126 bytes: a 16-bit length (RFC 6455 §5.2), still under the compression threshold.
    for text in ["a" * 126, "\u20ac" * 42]:
        framed = core.send(text)
        assert framed[:2] == b"\x81\x7e"
        assert parse_server_frame(framed) == (0x1, text.encode())


def test_large_outbound_frames_use_extended_lengths() -> None:
    core = ws.WebSocketCore(max_size=1024)
    assert parse_server_frame(core.send(b"x" * 300)) == (0x2, b"x" * 300)
    assert parse_server_frame(core.send("y" * 70000)) == (0x1, b"y" * 70000)


# --- protocol errors (RFC 6455 §7.4.1) ----------------------------------------------------------


@feeds
@pytest.mark.parametrize(
    ("data", "code"),
    [
        (client_frame(0x1, b"hi", masked=False), 1002),  # §5.1: clients must mask
        (client_frame(0x3, b"hi"), 1002),  # reserved opcode
        (client_frame(0xB, b""), 1002),  # reserved control opcode
        (client_frame(0x9, b"x" * 126), 1002),  # §5.5: control payload <= 125
        (client_frame(0x9, b"x", fin=False), 1002),  # §5.5: control frames not fragmented
        (client_frame(0x1, b"x", rsv1=True), 1002),  # RSV1 without an extension
        (client_frame(0x0, b"x"), 1002),  # continuation with nothing to continue
        (client_frame(0x1, b"\xff\xfe"), 1007),  # §8.1: invalid UTF-8
        (client_frame(0x1, b"ab\xc3", fin=False) + client_frame(0x0, b"\x28"), 1007),
        (client_frame(0x8, b"\x03"), 1002),  # one-byte close payload
        (client_frame(0x8, struct.pack("!H", 1005)), 1002),  # local-only code
    ],
    # Named ids: the frames carry random masks, and pytest-xdist's workers must collect the
    # same test names.
    ids=[
        "unmasked",
        "reserved-opcode",
        "reserved-control-opcode",
        "long-ping",
        "fragmented-ping",
        "rsv1",
        "orphan-continuation",
        "invalid-utf8",
        "invalid-utf8-across-frames",
        "one-byte-close",
        "close-1005",
    ],
)
def test_protocol_errors_close_with_the_right_code(feed: Feed, data: bytes, code: int) -> None:
    core = ws.WebSocketCore(max_size=1024)
    events = feed(core, data)
    assert len(events) == 1
    assert isinstance(events[0], ws.ProtocolFailed)
    assert events[0].code == code
    assert parse_server_frame(core.take_output()) == (0x8, struct.pack("!H", code))
    assert core.receive_data(client_frame(0x1, b"more")) == []  # nothing after failing


# --- the size cap ---------------------------------------------------------------------------------


@feeds
def test_message_over_the_cap_closes_with_1009(feed: Feed) -> None:
    core = ws.WebSocketCore(max_size=100)
    events = feed(core, client_frame(0x1, b"a" * 100) + client_frame(0x2, b"b" * 101))
    assert events[0] == ws.Message("a" * 100)
    assert isinstance(events[1], ws.ProtocolFailed) and events[1].code == 1009


@feeds
def test_a_16_bit_message_over_the_cap_closes_with_1009(feed: Feed) -> None:
    """The fast path takes 16-bit lengths too, and leaves one over the cap to wsproto's 1009."""
    core = ws.WebSocketCore(max_size=200)
    events = feed(core, client_frame(0x1, b"a" * 200) + client_frame(0x2, b"b" * 201))
    assert events[0] == ws.Message("a" * 200)
    assert isinstance(events[1], ws.ProtocolFailed) and events[1].code == 1009


@feeds
def test_cap_is_counted_across_continuation_frames(feed: Feed) -> None:
    core = ws.WebSocketCore(max_size=100)
    data = b"".join(client_frame(0x0 if i else 0x2, b"x" * 30, fin=False) for i in range(3))
    assert feed(core, data) == []  # 90 bytes: still fine
    events = feed(core, client_frame(0x0, b"x" * 11))
    assert isinstance(events[0], ws.ProtocolFailed) and events[0].code == 1009


# --- permessage-deflate (RFC 7692) --------------------------------------------------------------


def deflate_core(max_size: int, offer: str = "permessage-deflate") -> ws.WebSocketCore:
    deflate = ws.negotiate_deflate([offer], max_size)
    assert deflate is not None
    return ws.WebSocketCore(max_size, deflate)


def compress(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    compressor = compressor or zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]  # RFC 7692 §7.2.1: strip the empty stored block's tail


@feeds
def test_compressed_messages_inflate_with_shared_context(feed: Feed) -> None:
    core = deflate_core(1 << 20)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    first = compress(b"hello hello hello", compressor)
    second = compress(b"hello hello hello", compressor)  # refers back to the first message
    part = compress(b"fragmented ", compressor)
    data = (
        client_frame(0x1, first, rsv1=True)
        + client_frame(0x2, second, rsv1=True)
        + client_frame(0x1, part[:3], rsv1=True, fin=False)
        + client_frame(0x9, b"ping")
        + client_frame(0x0, part[3:])
    )
    assert feed(core, data) == [
        ws.Message("hello hello hello"),
        ws.Message(b"hello hello hello"),
        ws.Message("fragmented "),
    ]


def test_outbound_compression_round_trips() -> None:
    core = deflate_core(1 << 20)
    framed = core.send("z" * 1000)
    assert framed[0] == 0xC1  # FIN, RSV1, text
    opcode, payload = parse_server_frame(framed)
    assert opcode == 0x1
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(payload + b"\x00\x00\xff\xff") == b"z" * 1000
    assert core.send("tiny")[0] == 0x81  # small messages go out uncompressed


@pytest.mark.parametrize("feed", [whole], ids=["whole"])
def test_compression_bomb_closes_with_1009_without_inflating_it(feed: Feed) -> None:
    bomb = compress(b"\x00" * (64 << 20))  # 64 MiB of zeros deflate to ~64 KiB
    core = deflate_core(1 << 20)
    frames = client_frame(0x2, bomb, rsv1=True)
    tracemalloc.start()
    try:
        events = feed(core, frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(events[0], ws.ProtocolFailed) and events[0].code == 1009
    # The cap is 1 MiB; the input itself is ~64 KiB. Nothing near 64 MiB was ever held.
    assert peak < 4 << 20


def test_compression_bomb_split_over_continuation_frames() -> None:
    bomb = compress(b"\x00" * (8 << 20))
    core = deflate_core(1 << 20)
    step = len(bomb) // 8
    pieces = [bomb[i : i + step] for i in range(0, len(bomb), step)]
    data = client_frame(0x2, pieces[0], rsv1=True, fin=False) + b"".join(
        client_frame(0x0, piece, fin=piece is pieces[-1]) for piece in pieces[1:]
    )
    events = bytewise(core, data[:200]) + core.receive_data(data[200:])
    assert isinstance(events[-1], ws.ProtocolFailed) and events[-1].code == 1009


def test_garbage_deflate_data_closes_with_1007() -> None:
    core = deflate_core(1024)
    events = core.receive_data(client_frame(0x2, b"\xff\xff\xff\xff", rsv1=True))
    assert isinstance(events[0], ws.ProtocolFailed) and events[0].code == 1007
