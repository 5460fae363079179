"""wsproto's frame parser, plus the one question our fast path asks of its internals.

``WebSocketCore`` decodes small whole frames itself (``_fast_path``) and leaves the rest to
wsproto's ``FrameProtocol``. That is only safe when wsproto holds no state the fast path would
skip: no buffered bytes, no half-read frame header, no message in progress. wsproto has no
public API for that, so this adapter reads three private attributes, and only here:

- ``FrameProtocol._frame_decoder`` (a ``FrameDecoder``): ``.buffer.buffer`` (the unparsed bytes)
  and ``.header`` (the header of a frame whose payload is still arriving, else None);
- ``FrameProtocol._message_decoder.opcode`` (the opcode of a fragmented message in progress).

Checked against wsproto 1.3.2 (the version requirements/test.txt locks). If a release renames
them, ``fast_path_available`` is False, ``between_frames()`` always answers False (every frame
then goes through wsproto: correct, ~10x slower per small frame), and
``tests/protocols/test_wsproto_adapter.py`` fails loudly.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from wsproto.extensions import Extension
from wsproto.frame_protocol import Frame, FrameProtocol

__all__ = ["FrameParser"]


class FrameParser:
    """A server-side wsproto ``FrameProtocol`` that can tell when it is between frames."""

    def __init__(self, extension: Extension) -> None:
        self.protocol = FrameProtocol(client=False, extensions=[extension])
        try:
            decoder: Any = self.protocol._frame_decoder
            self._buffer: Any = decoder.buffer
            self._messages: Any = self.protocol._message_decoder
            decoder.header, self._buffer.buffer, self._messages.opcode  # noqa: B018
        except AttributeError:
            self._decoder: Any = None
            self.fast_path_available = False
        else:
            self._decoder = decoder
            self.fast_path_available = True

    def between_frames(self) -> bool:
        """True when wsproto holds no bytes, no partial frame and no fragmented message."""
        decoder = self._decoder
        return (
            decoder is not None
            and decoder.header is None
            and not self._buffer.buffer
            and self._messages.opcode is None
        )

    def receive_bytes(self, data: bytes) -> None:
        """Feed bytes to wsproto."""
        self.protocol.receive_bytes(data)

    def received_frames(self) -> Generator[Frame, None, None]:
        """The frames wsproto completed (raises ``ParseFailed`` on a protocol error)."""
        return self.protocol.received_frames()
