"""The one place we read wsproto's internals (``protocols/wsproto_adapter.py``): if a wsproto
release moves them, these tests fail loudly instead of the fast path silently switching off."""

from __future__ import annotations

import struct
from importlib.metadata import version

from asgi_server.protocols.websocket import CappedDeflate, WebSocketCore
from asgi_server.protocols.wsproto_adapter import FrameParser

MASK = b"\x01\x02\x03\x04"


def masked(first: int, payload: bytes) -> bytes:
    """A client frame: ``first`` is FIN/RSV/opcode, the payload is masked (RFC 6455 §5.3)."""
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        return bytes((first, 0x80 | len(payload))) + MASK + body
    return struct.pack("!BBH", first, 0x80 | 126, len(payload)) + MASK + body


def parser() -> FrameParser:
    return FrameParser(CappedDeflate(1 << 20, negotiated=False))


def test_the_internals_are_where_we_read_them() -> None:
    """Checked against wsproto 1.3.2: a new version must be checked (and added) by hand."""
    assert version("wsproto") in {"1.3.2"}, "check wsproto_adapter.py against this wsproto"
    assert parser().fast_path_available


def test_between_frames_follows_wsproto_state() -> None:
    frames = parser()
    assert frames.between_frames()
    frame = masked(0x81, b"hello")
    frames.receive_bytes(frame[:1])  # half a header: buffered bytes
    assert not frames.between_frames()
    frames.receive_bytes(frame[1:])
    assert [f.payload for f in frames.received_frames()] == ["hello"]
    assert frames.between_frames()
    big = masked(0x82, b"x" * 300)
    frames.receive_bytes(big[:10])  # a header read, its payload still arriving
    list(frames.received_frames())
    assert not frames.between_frames()
    frames.receive_bytes(big[10:])
    list(frames.received_frames())
    assert frames.between_frames()
    frames.receive_bytes(masked(0x01, b"first"))  # a fragmented message in progress
    list(frames.received_frames())
    assert not frames.between_frames()
    frames.receive_bytes(masked(0x80, b"last"))
    list(frames.received_frames())
    assert frames.between_frames()


def test_the_core_takes_the_fast_path_only_between_frames() -> None:
    """A fragmented message's continuation goes through wsproto, whole frames around it do not
    change meaning: the result is the same as wsproto's alone."""
    core = WebSocketCore(1 << 20)
    data = masked(0x81, b"a") + masked(0x01, b"b") + masked(0x80, b"c") + masked(0x82, b"d")
    events = core.receive_data(data)
    assert [event.data for event in events] == ["a", "bc", b"d"]  # type: ignore[union-attr]
