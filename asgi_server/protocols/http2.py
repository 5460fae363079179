"""The sans-IO HTTP/2 core on ``h2``: bytes in, per-stream events out; responses in, bytes out.

h2 does the framing, HPACK and the stream state machine. This core adds what a server needs on
top, and never touches a socket, a clock or a task:

- requests checked against the same limits as HTTP/1.1 (head size, header count, target length,
  body size), answered with a 4xx on their stream when they cross one;
- flow control both ways: the response body waits in the core until the peer's windows allow it
  (``pending_bytes``; ``StreamWritable`` when it has gone), and a stream's receive window opens
  only as its app reads (``body_consumed``), so a slow reader stalls its own stream only;
- the known floods: max concurrent streams (REFUSED_STREAM beyond, counting streams whose app is
  still running after a reset: CVE-2023-44487), resets of unanswered streams (GOAWAY beyond), and
  the frame-level limits of ``FrameReader``;
- graceful shutdown: GOAWAY with the last stream id; streams in flight finish.

Usage by a driver::

    core = HTTP2Core(H2Limits.from_config(config))
    write(core.data_to_send())                      # the server's SETTINGS
    for event in core.receive_data(data): ...       # Request, Body, EndOfRequest, StreamReset...
    core.respond(stream_id, 200, headers, body=b"hi")
    write(core.data_to_send())
    core.app_finished(stream_id)                    # once the stream's app task has returned
"""

from __future__ import annotations

import contextlib

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.exceptions import ProtocolError, StreamClosedError

from asgi_server.protocols.http2_frames import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    FrameError,
    FrameReader,
    GoAway,
    goaway_frame,
)
from asgi_server.protocols.http2_hpack import StatelessEncoder
from asgi_server.protocols.http2_send import ResponseSender
from asgi_server.protocols.http2_settings import MAX_WINDOW, H2Limits, server_settings
from asgi_server.protocols.http2_streams import (
    Body,
    ConnectionFailed,
    EndOfRequest,
    Event,
    GoAwayReceived,
    Request,
    RequestRefused,
    ResponseError,
    Stream,
    StreamGone,
    StreamReset,
    StreamWritable,
    check_request,
    error_body,
)

__all__ = [
    "Body",
    "ConnectionFailed",
    "EndOfRequest",
    "Event",
    "GoAwayReceived",
    "H2Limits",
    "HTTP2Core",
    "Request",
    "RequestRefused",
    "ResponseError",
    "StreamGone",
    "StreamReset",
    "StreamWritable",
]


class HTTP2Core(ResponseSender):
    """One server-side HTTP/2 connection: see the module docstring."""

    def __init__(self, limits: H2Limits) -> None:
        self.limits = limits
        # Outbound headers are checked by response_headers() already (names, values, no
        # connection-specific fields): h2 need not check them again, per response.
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,  # check_request() does it, in one pass
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = conn = H2Connection(config)
        conn.encoder = StatelessEncoder()  # type: ignore[assignment]  # h2 calls two members
        conn.local_settings = server_settings(limits)
        # HPACK bombs (a small block that decodes huge) stop at the header list size, and the
        # dynamic table the peer makes us keep at our table size.
        conn.decoder.max_header_list_size = limits.max_header_list_size
        conn.decoder.max_allowed_table_size = limits.header_table_size
        self._reader = FrameReader(
            conn.max_inbound_frame_size, limits.max_header_list_size, limits.max_control_frames
        )
        self._out = bytearray()
        conn.initiate_connection()
        # The connection window covers every stream's window, so that streams whose apps read
        # slowly never stall the others (RFC 9113 §6.9.1: the connection window is ours to set).
        connection_window = min(MAX_WINDOW, limits.stream_window * limits.max_concurrent_streams)
        if connection_window > 65535:
            conn.increment_flow_control_window(connection_window - 65535)
        self._streams: dict[int, Stream] = {}
        self._sending: dict[int, Stream] = {}  # streams with response bytes waiting for window
        self._reset_debt = 0
        self.last_stream_id: int | None = None  # set by start_shutdown()
        self._sealed = False
        self.failed = False  # GOAWAY sent for an error: write the output, then close
        self.peer_gone_away = False

    # --- bytes in --------------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """The bytes to write to the peer now (nothing more once a GOAWAY for an error went)."""
        if self._sealed:
            self._h2.data_to_send()  # RFC 9113 §6.8: after an error's GOAWAY, nothing more
        else:
            self._out += self._h2.data_to_send()
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer; return the events they complete."""
        events: list[Event] = []
        if self.failed:
            return events
        try:
            for item in self._reader.feed(data):
                if isinstance(item, GoAway):
                    self.peer_gone_away = True
                    events.append(GoAwayReceived(item.last_stream_id, item.error_code))
                    continue
                for h2_event in self._h2.receive_data(item):
                    self._dispatch(h2_event, events)
        except FrameError as exc:
            self._fail(exc.error_code, exc.detail, events)
        except ProtocolError as exc:
            # h2 queued its GOAWAY already.
            self._fail(int(exc.error_code), str(exc) or type(exc).__name__, events, queued=True)
        return events

    def _dispatch(self, event: ev.Event, events: list[Event]) -> None:
        kind = type(event)
        if kind is ev.DataReceived:
            self._on_data(event, events)  # type: ignore[arg-type]
        elif kind is ev.RequestReceived:
            self._on_request(event, events)  # type: ignore[arg-type]
        elif kind is ev.StreamEnded:
            stream = self._streams.get(event.stream_id)  # type: ignore[attr-defined]
            if stream is not None and not stream.closed:
                stream.request_ended = True
                if not stream.app_done:
                    events.append(EndOfRequest(stream.stream_id))
                self._maybe_close(stream)
        elif kind is ev.StreamReset:
            self._on_reset(event, events)  # type: ignore[arg-type]
        elif kind is ev.WindowUpdated or kind is ev.RemoteSettingsChanged:
            self._flush(events)

    def _on_request(self, event: ev.RequestReceived, events: list[Event]) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.headers is not None
        if (self.last_stream_id is not None and stream_id > self.last_stream_id) or len(
            self._streams
        ) >= self.limits.max_concurrent_streams:
            # RFC 9113 §8.7: REFUSED_STREAM means not processed; the client may retry it. A
            # refusal adds to the reset debt: a rapid-reset client whose reset streams' apps
            # still run gets refusals, and keeps paying for them only until the GOAWAY.
            self._h2.reset_stream(stream_id, REFUSED_STREAM)
            self._add_reset_debt(events)
            return
        stream = self._streams[stream_id] = Stream(stream_id)
        if event.stream_ended:
            stream.request_ended = True
        request = check_request(stream_id, event.headers, self.limits)
        if isinstance(request, RequestRefused):
            events.append(request)
            if request.malformed:  # RFC 9113 §8.1.1: a stream error of type PROTOCOL_ERROR
                del self._streams[stream_id]
                self._reset(stream_id, PROTOCOL_ERROR)
            else:
                self._refuse(stream, request.status_code)
            return
        stream.head_request = request.method == b"HEAD"
        stream.tunnel = request.protocol is not None  # a WebSocket: --ws-max-size applies
        events.append(request)  # h2's StreamEnded follows when the request has no body

    def _on_data(self, event: ev.DataReceived, events: list[Event]) -> None:
        stream_id, length = event.stream_id or 0, event.flow_controlled_length or 0
        stream = self._streams.get(stream_id)
        data = event.data or b""
        padding = length - len(data)
        if stream is None or stream.app_done or stream.closed:
            if length:  # nobody will read it: hand the window back
                self._h2.acknowledge_received_data(length, stream_id)
            return
        if padding:
            self._h2.acknowledge_received_data(padding, stream.stream_id)
        if event.stream_ended is not None:  # h2 has closed its side already
            stream.request_ended = True
        stream.received += len(data)
        limit = self.limits.limit_request_body
        if limit is not None and stream.received > limit and not stream.tunnel:
            self._abandon(stream, events, "Request body too large", status_code=413)
            return
        if data:
            stream.unread += len(data)
            events.append(Body(stream.stream_id, data))

    def _on_reset(self, event: ev.StreamReset, events: list[Event]) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is None or stream.closed:
            return
        if event.remote_reset and not stream.response_ended:
            # CVE-2023-44487 (rapid reset): streams opened and reset at once cost us work but
            # the peer nothing. Answered streams pay the debt back, so only abuse reaches it.
            self._add_reset_debt(events)
        self._close_stream(stream, events, "The client reset the stream")

    def _add_reset_debt(self, events: list[Event]) -> None:
        self._reset_debt += 1
        if self._reset_debt > self.limits.max_reset_streams:
            self._fail(ENHANCE_YOUR_CALM, "Too many streams reset by the client", events)

    # --- the app's side --------------------------------------------------------------------------
    def body_consumed(self, stream_id: int, size: int) -> None:
        """The app read ``size`` bytes of the stream's body: let the peer send as much again."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed or size <= 0:
            return
        stream.unread -= size
        self._h2.acknowledge_received_data(size, stream_id)

    def reset_stream(self, stream_id: int, error_code: int = CANCEL) -> None:
        """End a stream now (the app failed, or its window stayed shut too long)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.closed:
            return
        self._reset(stream_id, error_code)
        self._close_stream(stream, [], "")

    def _reset(self, stream_id: int, error_code: int) -> None:
        with contextlib.suppress(StreamClosedError):  # closed both ways: nothing to stop
            self._h2.reset_stream(stream_id, error_code)

    def app_finished(self, stream_id: int) -> None:
        """The stream's app task has returned: its stream stops counting once it is closed."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        stream.app_done = True
        if stream.unread:  # the app left body bytes unread: hand their window back
            self._h2.acknowledge_received_data(stream.unread, stream_id)
            stream.unread = 0
        if stream.closed:
            del self._streams[stream_id]
        elif stream.response_ended and not stream.request_ended:
            self.reset_stream(stream_id, NO_ERROR)  # RFC 9113 §8.1: stop the unread upload

    def start_shutdown(self) -> None:
        """Graceful shutdown: GOAWAY naming the last stream we take; those in flight finish."""
        if self.last_stream_id is None and not self.failed:
            self.last_stream_id = self._h2.highest_inbound_stream_id
            self._queue_goaway(self.last_stream_id, NO_ERROR)

    @property
    def active_streams(self) -> int:
        """Streams open or with an app still running (what counts against the stream limit)."""
        return len(self._streams)

    # --- internals -------------------------------------------------------------------------------
    def _response_sent(self, stream: Stream) -> None:
        stream.response_ended = True
        self._reset_debt = max(0, self._reset_debt - 1)
        if stream.refused and not stream.request_ended:
            self._reset(stream.stream_id, NO_ERROR)  # RFC 9113 §8.1: stop the upload
            stream.request_ended = True
        self._maybe_close(stream)

    def _maybe_close(self, stream: Stream) -> None:
        if stream.response_ended and stream.request_ended:
            self._close_stream(stream, [], "")

    def _close_stream(self, stream: Stream, events: list[Event], reason: str) -> None:
        stream.closed = True
        stream.pending.clear()
        self._sending.pop(stream.stream_id, None)
        if reason and not stream.app_done:
            events.append(StreamReset(stream.stream_id, reason))
        if stream.app_done:
            self._streams.pop(stream.stream_id, None)

    def _refuse(self, stream: Stream, status_code: int) -> None:
        """Answer a request the core refused itself, with no app behind it."""
        stream.app_done = stream.refused = True
        body = error_body(status_code)
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(body)),
        ]
        self._respond(stream, status_code, headers, (), body, False, False)

    def _abandon(self, stream: Stream, events: list[Event], reason: str, status_code: int) -> None:
        """A limit crossed mid-request: answer with ``status_code`` if no response has started,
        else reset the stream; the app hears that the client is gone."""
        if not stream.app_done:
            events.append(StreamReset(stream.stream_id, reason))
        if stream.response_started:
            self.reset_stream(stream.stream_id, CANCEL)
            return
        app_done = stream.app_done
        self._refuse(stream, status_code)
        stream.app_done = app_done

    def _fail(self, code: int, detail: str, events: list[Event], queued: bool = False) -> None:
        if self.failed:
            return
        self.failed = True
        self._reader.discard()
        if queued:
            self._out += self._h2.data_to_send()  # h2's GOAWAY is last in it
        else:
            self._queue_goaway(self._h2.highest_inbound_stream_id, code)
        self._sealed = True
        for stream in list(self._streams.values()):
            if not stream.closed:
                self._close_stream(stream, events, detail)
        events.append(ConnectionFailed(code, detail))

    def _queue_goaway(self, last_stream_id: int, code: int) -> None:
        # Written by us, not h2: h2 refuses to send anything after its own GOAWAY, and graceful
        # shutdown must let the streams in flight finish.
        self._out += self._h2.data_to_send()
        self._out += goaway_frame(last_stream_id, code)
