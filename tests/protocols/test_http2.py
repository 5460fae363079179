"""The HTTP/2 core, driven by a real h2 client connection; every input fed whole and bytewise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h2.events as ev
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes, Settings
from hpack import Decoder
from hyperframe.frame import DataFrame, Frame, HeadersFrame, RstStreamFrame

from asgi_server.protocols.http2 import (
    Body,
    EndOfRequest,
    Event,
    GoAwayReceived,
    H2Limits,
    HTTP2Core,
    Request,
    RequestRefused,
    ResponseError,
    StreamGone,
    StreamReset,
    StreamWritable,
)
from asgi_server.protocols.http2_hpack import StatelessEncoder

GET = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"a")]
POST = [(b":method", b"POST"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"a")]
Feed = Callable[[HTTP2Core, bytes], list[Event]]


def whole(core: HTTP2Core, data: bytes) -> list[Event]:
    return core.receive_data(data)


def bytewise(core: HTTP2Core, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += core.receive_data(data[i : i + 1])
    return events


feeds = pytest.mark.parametrize("feed", [whole, bytewise], ids=["whole", "bytewise"])


def parse_frames(data: bytes) -> list[Any]:
    """The frames in ``data`` (the server's output), parsed by hyperframe."""
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


class Peer:
    """A client connection (h2's own) wired to a core: what one sends, the other receives."""

    def __init__(self, feed: Feed, **limits: Any) -> None:
        self.feed = feed
        self.core = HTTP2Core(H2Limits(**limits))
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.client.initiate_connection()
        self.events: list[Event] = []
        self.client_events: list[ev.Event] = []
        self.exchange()

    def exchange(self) -> list[Event]:
        """Deliver each side's output to the other; return the core's new events."""
        events = self.feed(self.core, self.client.data_to_send())
        self.events += events
        self.client_events += self.client.receive_data(self.core.data_to_send())
        self.feed(self.core, self.client.data_to_send())  # the client's acks
        self.client_events += self.client.receive_data(self.core.data_to_send())
        return events

    def request(
        self,
        stream_id: int,
        method: bytes = b"GET",
        path: bytes = b"/",
        body: bytes | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> list[Event]:
        head = [
            (b":method", method),
            (b":path", path),
            (b":scheme", b"https"),
            (b":authority", b"example.com"),
            *(headers or []),
        ]
        self.client.send_headers(stream_id, head, end_stream=body is None)
        if body is not None:
            self.client.send_data(stream_id, body, end_stream=True)
        return self.exchange()

    def received(self, stream_id: int) -> tuple[list[tuple[bytes, bytes]], bytes, bool]:
        """What the client got on a stream: response headers, body, whether it ended."""
        headers: list[tuple[bytes, bytes]] = []
        body = b""
        ended = False
        for event in self.client_events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, ev.ResponseReceived | ev.TrailersReceived):
                headers += list(event.headers or [])
            elif isinstance(event, ev.DataReceived):
                body += event.data or b""
            elif isinstance(event, ev.StreamEnded):
                ended = True
        return headers, body, ended

    def resets(self) -> dict[int, int]:
        return {
            e.stream_id or 0: int(e.error_code or 0)
            for e in self.client_events
            if isinstance(e, ev.StreamReset)
        }


@feeds
def test_get_request_and_response(feed: Feed) -> None:
    peer = Peer(feed)
    events = peer.request(1, path=b"/a?b=c", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2")])
    request, end = events
    assert isinstance(request, Request) and end == EndOfRequest(1)
    assert (request.method, request.target, request.http_version) == (b"GET", b"/a?b=c", "2")
    # ASGI: :authority becomes host, first; cookies joined (RFC 9113 §8.2.3).
    assert request.headers == [(b"host", b"example.com"), (b"cookie", b"a=1; b=2")]
    peer.core.respond(1, 200, [(b"Content-Type", b"text/plain")], [(b"server", b"crossway")], b"hi")
    peer.core.app_finished(1)
    peer.exchange()
    headers, body, ended = peer.received(1)
    assert headers == [
        (b":status", b"200"),
        (b"content-type", b"text/plain"),
        (b"server", b"crossway"),
    ]
    assert (body, ended) == (b"hi", True)
    assert peer.core.active_streams == 0


@feeds
def test_request_body_window_opens_as_the_app_reads(feed: Feed) -> None:
    peer = Peer(feed, stream_window=1000)
    events = peer.request(1, b"POST", body=b"x" * 1000)
    assert b"".join(e.data for e in events if isinstance(e, Body)) == b"x" * 1000
    assert events[-1] == EndOfRequest(1)
    peer.client.send_headers(3, POST)
    peer.exchange()
    assert peer.client.local_flow_control_window(3) == 1000
    peer.client.send_data(3, b"y" * 1000)
    peer.exchange()
    assert peer.client.local_flow_control_window(3) == 0  # stream 3's app has not read yet
    peer.core.body_consumed(3, 1000)
    peer.exchange()
    assert peer.client.local_flow_control_window(3) == 1000  # now it has


@feeds
def test_slow_reader_stalls_only_its_own_stream(feed: Feed) -> None:
    peer = Peer(feed, stream_window=1000, max_concurrent_streams=4)
    for stream_id in (1, 3):
        peer.client.send_headers(stream_id, POST)
    for _ in range(5):
        peer.client.send_data(3, b"z" * 1000)
        peer.exchange()
        peer.core.body_consumed(3, 1000)  # stream 3 reads; stream 1 never does
        peer.exchange()
        if peer.client.local_flow_control_window(1):
            peer.client.send_data(1, b"s" * 1000)
    assert peer.client.local_flow_control_window(1) == 0
    assert peer.client.local_flow_control_window(3) == 1000
    received = b"".join(e.data for e in peer.events if isinstance(e, Body) and e.stream_id == 3)
    assert len(received) == 5000


@feeds
def test_response_waits_for_the_peers_window(feed: Feed) -> None:
    peer = Peer(feed)
    peer.client.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 10})
    peer.exchange()
    peer.request(1)
    peer.core.respond(1, 200, [], (), b"a" * 25, more_body=True)
    peer.exchange()
    assert peer.received(1)[1] == b"a" * 10
    assert peer.core.pending_bytes(1) == 15 and peer.core.stalled_streams() == [1]
    peer.client.increment_flow_control_window(100, stream_id=1)
    events = peer.exchange()
    assert events == [StreamWritable(1)]
    assert peer.core.pending_bytes(1) == 0 and peer.core.stalled_streams() == []
    peer.core.send_body(1, b"b", more_body=False)
    peer.exchange()
    assert peer.received(1)[1:] == (b"a" * 25 + b"b", True)


@feeds
def test_trailers_end_the_stream(feed: Feed) -> None:
    peer = Peer(feed)
    peer.request(1)
    peer.core.respond(1, 200, [(b"trailer", b"x-checksum")], (), b"body", trailers=True)
    peer.exchange()
    assert peer.received(1)[2] is False
    peer.core.send_trailers(1, [(b"X-Checksum", b"abc")])
    peer.exchange()
    headers, body, ended = peer.received(1)
    assert (b"x-checksum", b"abc") in headers and body == b"body" and ended


@feeds
def test_head_and_204_send_no_body(feed: Feed) -> None:
    peer = Peer(feed)
    peer.request(1, b"HEAD")
    peer.core.respond(1, 200, [(b"content-length", b"5")], (), b"hello")
    peer.request(3)
    peer.core.respond(3, 204, [], (), b"ignored")
    peer.exchange()
    assert peer.received(1)[1:] == (b"", True) and peer.received(3)[1:] == (b"", True)


def test_app_mistakes_raise() -> None:
    peer = Peer(whole)
    peer.request(1)
    with pytest.raises(ResponseError):
        peer.core.respond(1, 200, [(b"bad name", b"x")])
    with pytest.raises(ResponseError):
        peer.core.respond(1, 200, [(b"x", b"a\r\nb")])
    peer.core.respond(1, 200, [(b"content-length", b"3")], (), b"ab", more_body=True)
    with pytest.raises(ResponseError):
        peer.core.send_body(1, b"cd", more_body=False)
    with pytest.raises(StreamGone):
        peer.core.send_body(7, b"", more_body=False)


@feeds
def test_connection_specific_response_headers_are_dropped(feed: Feed) -> None:
    peer = Peer(feed)
    peer.request(1)
    peer.core.respond(1, 200, [(b"connection", b"close"), (b"transfer-encoding", b"chunked")])
    peer.exchange()
    assert peer.received(1)[0] == [(b":status", b"200")]


@pytest.mark.parametrize(
    ("limits", "sent", "status"),
    [
        (
            {"limit_request_headers": 2},
            {"headers": [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]},
            431,
        ),
        ({"limit_request_head": 100}, {"headers": [(b"a", b"x" * 100)]}, 431),
        ({"limit_request_line": 10}, {"path": b"/" + b"p" * 10}, 414),
        ({"limit_request_body": 10}, {"method": b"POST", "body": b"x" * 11}, 413),
        (
            {"limit_request_body": 10},
            {"method": b"POST", "headers": [(b"content-length", b"11")]},
            413,
        ),
        ({}, {"path": b"nopath"}, 400),
    ],
)
@feeds
def test_limits_answer_on_the_stream(
    feed: Feed, limits: dict[str, Any], sent: dict[str, Any], status: int
) -> None:
    peer = Peer(feed, **limits)
    events = peer.request(1, **sent)
    refused = [e for e in events if isinstance(e, RequestRefused)]
    reset = [e for e in events if isinstance(e, StreamReset)]
    assert [e.status_code for e in refused] or reset, events
    headers, _, ended = peer.received(1)
    assert headers[0] == (b":status", str(status).encode()) and ended
    # The connection carries on: the next stream is served.
    assert isinstance(peer.request(3)[0], Request)


@feeds
def test_concurrent_streams_beyond_the_limit_are_refused(feed: Feed) -> None:
    peer = Peer(feed, max_concurrent_streams=2)
    # A client may open streams before our SETTINGS arrive (RFC 9113 §6.5.2's initial value is
    # unlimited): this one behaves as if they had not.
    peer.client.remote_settings = Settings(client=False)
    for stream_id in (1, 3, 5):
        peer.client.send_headers(stream_id, GET, end_stream=True)
    events = peer.exchange()
    assert [e.stream_id for e in events if isinstance(e, Request)] == [1, 3]
    assert peer.resets() == {5: 7}  # REFUSED_STREAM
    peer.core.respond(1, 200, [])
    peer.core.app_finished(1)
    assert peer.core.active_streams == 1
    assert isinstance(peer.request(7)[0], Request)


@feeds
def test_graceful_shutdown_lets_streams_in_flight_finish(feed: Feed) -> None:
    peer = Peer(feed)
    peer.request(1, b"POST", headers=[], body=None)
    peer.client.send_headers(3, POST)
    peer.exchange()
    peer.core.start_shutdown()
    peer.exchange()
    goaway = [e for e in peer.client_events if isinstance(e, ev.ConnectionTerminated)]
    assert goaway and goaway[0].last_stream_id == 3 and goaway[0].error_code == 0
    # Stream 3 still uploads and gets its answer after the GOAWAY (by hand: h2's client stops
    # sending once it has seen one).
    late = DataFrame(3, b"late")
    late.flags.add("END_STREAM")
    events = feed(peer.core, late.serialize())
    assert Body(3, b"late") in events and EndOfRequest(3) in events
    peer.core.respond(3, 200, [], (), b"done")
    sent = parse_frames(peer.core.data_to_send())
    assert [(type(f).__name__, f.stream_id) for f in sent] == [
        ("HeadersFrame", 3),
        ("DataFrame", 3),
    ]
    assert sent[1].data == b"done" and "END_STREAM" in sent[1].flags
    # A stream opened after the GOAWAY is refused (its headers still decoded: HPACK state).
    headers = HeadersFrame(5, peer.client.encoder.encode(GET), flags=["END_HEADERS", "END_STREAM"])
    assert feed(peer.core, headers.serialize()) == []
    (reset,) = parse_frames(peer.core.data_to_send())
    assert isinstance(reset, RstStreamFrame) and (reset.stream_id, reset.error_code) == (5, 7)


@feeds
def test_peer_goaway_is_reported_and_responses_still_go_out(feed: Feed) -> None:
    peer = Peer(feed)
    peer.request(1)
    peer.client.close_connection()
    events = peer.exchange()
    assert GoAwayReceived(0, 0) in events  # the last stream *we* opened: none
    peer.core.respond(1, 200, [], (), b"ok")
    assert b"ok" in peer.core.data_to_send()


@pytest.mark.parametrize("size", [0, 1, 14, 15, 126, 127, 128, 300, 16383, 16384, 20000])
def test_stateless_hpack_encoding_decodes(size: int) -> None:
    encoder = StatelessEncoder()
    decoder = Decoder()
    fields = [
        (b":status", b"200"),
        (b":status", b"418"),
        (b"content-type", b"x" * size),  # a static name (index 31)
        (b"x-custom", b"y" * size),  # a name of our own
        (b"n" * size or b"n", b"v"),
    ]
    for _ in range(2):  # the second time from the cache
        assert decoder.decode(encoder.encode(fields), raw=True) == fields
    assert len(decoder.header_table.dynamic_entries) == 0  # nothing was indexed
    encoder.header_table_size = 0  # the peer changes its setting: we announce size 0 again
    block = encoder.encode(fields[:1])
    assert block == b"\x20\x88" and decoder.decode(block, raw=True) == fields[:1]


@feeds
def test_responses_decode_after_the_peer_shrinks_its_table(feed: Feed) -> None:
    peer = Peer(feed)
    peer.client.update_settings({SettingCodes.HEADER_TABLE_SIZE: 0})
    peer.exchange()
    for stream_id in (1, 3):
        peer.request(stream_id)
        peer.core.respond(stream_id, 200, [(b"x-a", b"1")], [(b"server", b"crossway")], b"ok")
        peer.exchange()
        assert peer.received(stream_id) == (
            [(b":status", b"200"), (b"x-a", b"1"), (b"server", b"crossway")],
            b"ok",
            True,
        )
