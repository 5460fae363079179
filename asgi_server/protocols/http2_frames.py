"""Cutting HTTP/2 bytes into frames before ``h2`` sees them, checking what h2 checks late.

h2 buffers a frame until all of it has arrived before it checks the frame's length, lets a header
block grow over 64 CONTINUATION frames of any size, and answers every PING and SETTINGS frame
without counting them. It also processes a whole read at once, so a bad frame late in a read hides
the events of the good frames before it. ``FrameReader`` sits in front of it: it checks the
preface, refuses an oversized frame from its 9-byte header, bounds a header block in bytes, counts
control frames that do no work, and hands h2 one whole frame at a time. It takes GOAWAY frames out
of the stream, because h2 stops sending (even on streams in flight) once it has seen one.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4

# Frame types (RFC 9113 §6) and flags.
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = 0x1
END_HEADERS = 0x4

# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x6, 0x7, 0x8, 0xB


class FrameError(Exception):
    """The peer broke the protocol or crossed a limit: the connection ends with GOAWAY(code)."""

    def __init__(self, error_code: int, detail: str) -> None:
        super().__init__(detail)
        self.error_code = error_code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class GoAway:
    """A GOAWAY frame from the peer (RFC 9113 §6.8): it opens no stream above ``last_stream_id``."""

    last_stream_id: int
    error_code: int


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    """Serialize a GOAWAY frame (RFC 9113 §6.8)."""
    payload = (last_stream_id & 0x7FFFFFFF).to_bytes(4, "big") + error_code.to_bytes(4, "big")
    payload += debug
    return len(payload).to_bytes(3, "big") + bytes((GOAWAY, 0)) + b"\0\0\0\0" + payload


class FrameReader:
    """Cuts the peer's bytes into whole frames (the preface first) for h2, checking limits."""

    def __init__(self, max_frame_size: int, max_header_block: int, max_control_frames: int) -> None:
        self.max_frame_size = max_frame_size
        self.max_header_block = max_header_block
        self.max_control_frames = max_control_frames
        self._buffer = bytearray()
        self._preface_left = PREFACE
        self._block_size: int | None = None  # bytes so far of an unfinished header block
        self.control_frames = 0  # frames in a row that did no work (see _count)

    def feed(self, data: bytes) -> list[bytes | GoAway]:
        """Take bytes from the peer; return the preface and whole frames, in order, as bytes
        for h2, and the peer's GOAWAY frames as ``GoAway``. Raises ``FrameError``."""
        out: list[bytes | GoAway] = []
        if self._preface_left:
            data = self._take_preface(data, out)
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if length > self.max_frame_size:  # RFC 9113 §4.2: known from the header alone
                raise FrameError(FRAME_SIZE_ERROR, f"Frame of {length} bytes is over the limit")
            if len(buffer) < 9 + length:
                break
            frame = bytes(buffer[: 9 + length])
            del buffer[: 9 + length]
            kind, flags = frame[3], frame[4]
            self._check_header_block(kind, flags, length)
            self._count(kind, flags, length)
            if kind == GOAWAY:
                out.append(self._goaway(frame))
            else:
                out.append(frame)
        return out

    def discard(self) -> None:
        """Drop buffered bytes: the connection has failed and reads no more."""
        self._buffer.clear()

    def _take_preface(self, data: bytes, out: list[bytes | GoAway]) -> bytes:
        want = self._preface_left
        got = data[: len(want)]
        if want[: len(got)] != got:
            raise FrameError(PROTOCOL_ERROR, "Invalid HTTP/2 connection preface")
        self._preface_left = want[len(got) :]
        if not self._preface_left:
            out.append(PREFACE)
        return data[len(got) :]

    def _check_header_block(self, kind: int, flags: int, length: int) -> None:
        """Bound a header block (HEADERS plus CONTINUATION frames) by its encoded size.

        CVE-2024-27316 and its siblings: a peer that never sets END_HEADERS makes a server buffer
        without end. The encoded block cannot usefully exceed the decoded header list size we
        advertise (HPACK only makes headers smaller, up to a few bytes per field).
        """
        if kind in (HEADERS, PUSH_PROMISE):
            self._block_size = length
        elif kind == CONTINUATION and self._block_size is not None:
            self._block_size += length
        elif self._block_size is not None:
            raise FrameError(
                PROTOCOL_ERROR, "Only CONTINUATION may follow an unfinished header block"
            )
        else:
            return  # a naked CONTINUATION: h2 refuses it
        if self._block_size > self.max_header_block:
            raise FrameError(ENHANCE_YOUR_CALM, "Header block too large (CONTINUATION flood)")
        if flags & END_HEADERS:
            self._block_size = None

    def _count(self, kind: int, flags: int, length: int) -> None:
        """Count frames that cost us work but carry no request: PING, SETTINGS, PRIORITY, empty
        DATA and unknown types (the floods of CVE-2019-9512, -9515, -9518). A request or a piece
        of body ends the run; a run over the limit ends the connection."""
        if kind == HEADERS or (kind == DATA and (length or flags & END_STREAM)):
            self.control_frames = 0
        elif kind in (PING, SETTINGS, PRIORITY, DATA) or kind > CONTINUATION:
            self.control_frames += 1
            if self.control_frames > self.max_control_frames:
                raise FrameError(ENHANCE_YOUR_CALM, "Too many control frames without a request")

    @staticmethod
    def _goaway(frame: bytes) -> GoAway:
        if int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF:
            raise FrameError(PROTOCOL_ERROR, "GOAWAY on a stream")  # RFC 9113 §6.8
        if len(frame) < 17:
            raise FrameError(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        last = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
        return GoAway(last, int.from_bytes(frame[13:17], "big"))
