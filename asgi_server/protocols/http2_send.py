"""The response half of the HTTP/2 core: heads, bodies held to the peer's windows, trailers."""

from __future__ import annotations

from collections.abc import Iterable

from h2.connection import H2Connection
from h2.exceptions import ProtocolError

from asgi_server.protocols.http2_streams import (
    Event,
    ResponseError,
    Stream,
    StreamGone,
    StreamWritable,
    check_field,
    response_headers,
)


class ResponseSender:
    """Sends responses on an h2 connection; a body waits in ``Stream.pending`` for window.

    The core (``HTTP2Core``) owns the connection and the streams and says, through
    ``_response_sent``, what happens once a response has gone out.
    """

    _h2: H2Connection
    _streams: dict[int, Stream]
    _sending: dict[int, Stream]  # streams with response bytes (or trailers) still to send

    def _response_sent(self, stream: Stream) -> None:
        raise NotImplementedError

    def respond(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        default_headers: Iterable[tuple[bytes, bytes]] = (),
        body: bytes = b"",
        more_body: bool = False,
        trailers: bool = False,
    ) -> None:
        """Send the response head and its first body chunk. ``trailers``: the response ends
        with ``send_trailers`` rather than with the last body chunk."""
        self._respond(
            self._live(stream_id), status, headers, default_headers, body, more_body, trailers
        )

    def _respond(
        self,
        stream: Stream,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        default_headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        more_body: bool,
        trailers: bool,
    ) -> None:
        if stream.response_started:
            raise ResponseError("The response has started already; send its body.")
        if stream.head_request or status < 200 or status in (204, 304):
            stream.no_body = True  # RFC 9110 §6.4.1: no content, whatever the app sends
        head = response_headers(status, headers, default_headers, stream)
        stream.response_started = True
        stream.status_code = status
        stream.expect_trailers = trailers
        end = not more_body and not trailers and (stream.no_body or not body)
        self._check_length(stream, body, more_body)
        self._h2.send_headers(stream.stream_id, head, end_stream=end)
        if end:
            self._response_sent(stream)
        else:
            self._queue(stream, body, more_body)

    def send_body(self, stream_id: int, body: bytes, more_body: bool) -> None:
        """Queue a response body chunk; it goes out as the windows allow (``pending_bytes``)."""
        stream = self._live(stream_id)
        if not stream.response_started or stream.body_done:
            raise ResponseError("Send http.response.start first, and no body after the last.")
        self._check_length(stream, body, more_body)
        self._queue(stream, body, more_body)

    def send_trailers(self, stream_id: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Queue the trailers (after the last body chunk); they end the stream."""
        stream = self._live(stream_id)
        if not stream.expect_trailers or not stream.body_done or stream.trailers is not None:
            raise ResponseError("Trailers need trailers=True at the start and follow the body.")
        stream.trailers = [(check_field(name, value), value) for name, value in headers]
        if stream.stream_id not in self._sending:  # the body has gone out already
            self._finish_body(stream)

    def pending_bytes(self, stream_id: int) -> int:
        """Response bytes of the stream waiting for the peer's window (0 when gone)."""
        stream = self._streams.get(stream_id)
        return len(stream.pending) if stream is not None else 0

    def send_window(self, stream_id: int) -> int:
        """How many body bytes the stream may send now (connection and stream windows)."""
        try:
            return self._h2.local_flow_control_window(stream_id)
        except ProtocolError:
            return 0

    def stalled_streams(self) -> list[int]:
        """Streams with response bytes waiting and no window: the driver times them out."""
        return [sid for sid, s in self._sending.items() if s.pending and not self.send_window(sid)]

    def _live(self, stream_id: int) -> Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed or stream.refused:
            raise StreamGone(f"Stream {stream_id} is closed")
        return stream

    def _check_length(self, stream: Stream, body: bytes, more_body: bool) -> None:
        if stream.length_left is None:
            return
        stream.length_left -= len(body)
        if stream.length_left < 0 or (not more_body and stream.length_left and not stream.no_body):
            raise ResponseError("The response body does not match its Content-Length header.")

    def _queue(self, stream: Stream, body: bytes, more_body: bool) -> None:
        if body and not stream.no_body:
            stream.pending += body
        if not more_body:
            stream.body_done = True
        self._sending[stream.stream_id] = stream
        self._flush([])

    def _flush(self, events: list[Event]) -> None:
        """Send what the windows allow, stream by stream, in the order the streams queued."""
        conn = self._h2
        frame_size = conn.max_outbound_frame_size
        for stream_id, stream in list(self._sending.items()):
            pending = stream.pending
            window = self.send_window(stream_id) if pending else 0
            while pending and window > 0:
                size = min(window, frame_size, len(pending))
                chunk = bytes(pending[:size])
                del pending[:size]
                window -= size
                stream.sent_end = not pending and stream.body_done and not stream.expect_trailers
                conn.send_data(stream_id, chunk, end_stream=stream.sent_end)
            if pending:
                stream.blocked = True
                continue
            del self._sending[stream_id]
            if stream.blocked:
                stream.blocked = False
                events.append(StreamWritable(stream_id))
            if stream.body_done:
                self._finish_body(stream)

    def _finish_body(self, stream: Stream) -> None:
        """The body has gone out: end the stream (with the trailers, once the app sent them)."""
        if stream.expect_trailers:
            if stream.trailers is None:
                return  # send_trailers() comes back here
            self._h2.send_headers(stream.stream_id, stream.trailers, end_stream=True)
        elif not stream.sent_end:
            self._h2.end_stream(stream.stream_id)
        self._response_sent(stream)
