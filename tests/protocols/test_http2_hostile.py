"""The known HTTP/2 attacks against the core: raw frames built by hand (hyperframe, h2's own
framing layer, and HPACK by hand), fed whole and byte by byte. Each ends bounded: a GOAWAY, a
refused stream or a reset, never an unbounded buffer or a stream that keeps state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from asgi_server.protocols.http2 import (
    ConnectionFailed,
    EndOfRequest,
    Event,
    H2Limits,
    HTTP2Core,
    Request,
    StreamReset,
)
from asgi_server.protocols.http2_frames import PREFACE

ENHANCE_YOUR_CALM, PROTOCOL_ERROR, FRAME_SIZE_ERROR, STREAM_CLOSED = 0xB, 0x1, 0x6, 0x5
GET = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"a")]


def whole(core: HTTP2Core, data: bytes) -> list[Event]:
    return core.receive_data(data)


def bytewise(core: HTTP2Core, data: bytes) -> list[Event]:
    events: list[Event] = []
    for i in range(len(data)):
        events += core.receive_data(data[i : i + 1])
    return events


Feed = Callable[[HTTP2Core, bytes], list[Event]]
feeds = pytest.mark.parametrize("feed", [whole, bytewise], ids=["whole", "bytewise"])


def connected(**limits: Any) -> tuple[HTTP2Core, Encoder]:
    """A core past the preface and the client's SETTINGS, and the client's HPACK encoder."""
    core = HTTP2Core(H2Limits(**limits))
    assert core.receive_data(PREFACE + SettingsFrame(0).serialize()) == []
    core.data_to_send()
    return core, Encoder()


def headers(encoder: Encoder, stream_id: int, end_stream: bool = True) -> bytes:
    flags = ["END_HEADERS", "END_STREAM"] if end_stream else ["END_HEADERS"]
    return HeadersFrame(stream_id, encoder.encode(GET), flags=flags).serialize()


def parse_frames(data: bytes) -> list[Any]:
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def failure(events: list[Event]) -> ConnectionFailed:
    failures = [e for e in events if isinstance(e, ConnectionFailed)]
    assert len(failures) == 1, events
    return failures[0]


def goaway_code(core: HTTP2Core) -> int:
    (goaway,) = [f for f in parse_frames(core.data_to_send()) if type(f).__name__ == "GoAwayFrame"]
    return int(goaway.error_code)


# --- CVE-2023-44487: rapid reset ---
@feeds
def test_rapid_reset_ends_in_goaway_and_keeps_no_streams(feed: Feed) -> None:
    core, encoder = connected(max_reset_streams=20, max_concurrent_streams=10)
    data = b"".join(
        headers(encoder, sid) + RstStreamFrame(sid, error_code=8).serialize()
        for sid in range(1, 200, 2)
    )
    events = feed(core, data)
    assert failure(events).error_code == ENHANCE_YOUR_CALM
    assert goaway_code(core) == ENHANCE_YOUR_CALM
    # Apps were started for at most the stream limit, however many streams the client opened:
    # a stream whose app still runs after its reset counts until the app returns.
    requests = [e.stream_id for e in events if isinstance(e, Request)]
    assert len(requests) <= 10 and core.active_streams <= 10


@feeds
def test_reset_streams_keep_no_state_once_their_apps_return(feed: Feed) -> None:
    core, encoder = connected(max_reset_streams=20)
    sid = 1
    for _ in range(1000):
        events = feed(core, headers(encoder, sid, end_stream=False))
        assert isinstance(events[0], Request)
        events = feed(core, RstStreamFrame(sid, error_code=8).serialize())
        assert events == [StreamReset(sid, "The client reset the stream")]
        core.app_finished(sid)  # the driver cancels or awaits the app; then nothing is kept
        sid += 2
        # One answered stream per reset pays the debt back: a browser that cancels some of
        # its requests is fine. (Without it, the 21st reset would end the connection.)
        feed(core, headers(encoder, sid))
        core.respond(sid, 200, [])
        core.app_finished(sid)
        sid += 2
    assert core.active_streams == 0 and not core.failed
    assert len(core._h2.streams) <= 2  # h2 drops closed streams (keeping a bounded id record)


# --- CVE-2024-27316 and siblings: CONTINUATION flood ---
@feeds
def test_continuation_flood_is_bounded_in_bytes(feed: Feed) -> None:
    core, _ = connected(limit_request_head=4096, limit_request_headers=10)
    start = HeadersFrame(1, b"\x82", flags=[]).serialize()  # :method GET, no END_HEADERS
    flood = ContinuationFrame(1, b"\x00" * 1000).serialize() * 100
    events = feed(core, start + flood)
    assert failure(events).error_code == ENHANCE_YOUR_CALM
    # 4096 + 32 * 10 bytes of header block at most, then GOAWAY: the rest was never kept.
    assert len(core._reader._buffer) == 0
    assert core.receive_data(flood) == []  # nothing more is read or kept


@feeds
def test_continuation_flood_of_empty_frames_is_bounded_in_count(feed: Feed) -> None:
    core, _ = connected()
    start = HeadersFrame(1, b"\x82", flags=[]).serialize()
    events = feed(core, start + ContinuationFrame(1, b"").serialize() * 200)
    assert failure(events).error_code == PROTOCOL_ERROR  # h2's cap of 64 frames per block


# --- HPACK bomb ---
@feeds
def test_hpack_bomb_stops_at_the_header_list_size(feed: Feed) -> None:
    core, encoder = connected()
    # One 4 KB value enters the dynamic table; then 1000 one-byte references to it (index 62,
    # the newest entry) would decode to 4 MB from a 5 KB block.
    block = encoder.encode([*GET, (b"x-bomb", b"v" * 4000)]) + b"\xbe" * 1000
    frame = HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"])
    events = feed(core, frame.serialize())
    assert failure(events).error_code == ENHANCE_YOUR_CALM
    assert not any(isinstance(e, Request) for e in events)


# --- SETTINGS, PING and other control-frame floods ---
@pytest.mark.parametrize(
    "frame",
    [
        SettingsFrame(0),
        PingFrame(0, b"12345678"),
        PriorityFrame(1, depends_on=0, stream_weight=16),
        DataFrame(1, b""),
    ],
    ids=["settings", "ping", "priority", "empty-data"],
)
@feeds
def test_control_frame_floods_end_in_goaway(feed: Feed, frame: Frame) -> None:
    core, encoder = connected(max_control_frames=50)
    feed(core, headers(encoder, 1, end_stream=False))
    core.data_to_send()
    events = feed(core, frame.serialize() * 1000)
    assert failure(events).error_code == ENHANCE_YOUR_CALM
    # What we queued in answer (SETTINGS or PING acks) stopped at the limit too.
    assert len(core.data_to_send()) <= 51 * 17 + 100


@feeds
def test_control_frames_between_requests_are_fine(feed: Feed) -> None:
    core, encoder = connected(max_control_frames=5)
    for sid in range(1, 40, 2):
        events = feed(core, PingFrame(0, b"12345678").serialize() * 4 + headers(encoder, sid))
        assert events == [Request(sid, b"GET", b"/", b"http", [(b"host", b"a")]), EndOfRequest(sid)]
    assert not core.failed


# --- flow control held shut ---
def test_a_zero_window_held_forever_is_visible_to_the_driver() -> None:
    client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.update_settings({4: 0})  # INITIAL_WINDOW_SIZE 0: the client never lets us send
    core = HTTP2Core(H2Limits())
    client.receive_data(core.data_to_send())
    client.send_headers(1, GET, end_stream=True)
    core.receive_data(client.data_to_send())
    core.respond(1, 200, [], (), b"x" * 100, more_body=True)
    client.receive_data(core.data_to_send())
    # The driver times the stream out (timeout_h2_window) with what the core tells it.
    assert core.stalled_streams() == [1] and core.pending_bytes(1) == 100
    assert core.send_window(1) == 0
    core.reset_stream(1)
    core.app_finished(1)
    assert core.stalled_streams() == [] and core.active_streams == 0
    (reset,) = parse_frames(core.data_to_send())
    assert isinstance(reset, RstStreamFrame) and reset.error_code == 8  # CANCEL


# --- frames on closed streams, bad prefaces, oversized frames ---
@feeds
def test_data_on_a_closed_stream_is_a_stream_error(feed: Feed) -> None:
    core, encoder = connected()
    feed(core, headers(encoder, 1))
    core.respond(1, 200, [])
    core.app_finished(1)
    core.data_to_send()
    events = feed(core, DataFrame(1, b"late").serialize())
    # RFC 9113 §6.1: DATA on a stream not open is a stream error of type STREAM_CLOSED.
    assert events == [] and not core.failed
    frames = parse_frames(core.data_to_send())
    assert [(type(f).__name__, f.stream_id, f.error_code) for f in frames] == [
        ("RstStreamFrame", 1, STREAM_CLOSED)
    ]


@feeds
def test_data_on_a_reset_stream_is_reset_again_and_its_window_returned(feed: Feed) -> None:
    core, encoder = connected(max_concurrent_streams=1)
    feed(core, headers(encoder, 1, end_stream=False))
    feed(core, headers(encoder, 3, end_stream=False))  # refused: REFUSED_STREAM
    core.data_to_send()
    events = feed(core, DataFrame(3, b"x" * 1000).serialize())
    assert events == []
    frames = parse_frames(core.data_to_send())
    assert any(isinstance(f, RstStreamFrame) and f.stream_id == 3 for f in frames)
    assert not core.failed


@pytest.mark.parametrize(
    "data",
    [b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", PREFACE[:-3] + b"XYZ", b"\x16\x03\x01\x02\x00"],
    ids=["http1", "almost", "tls"],
)
@feeds
def test_bad_preface_is_refused_at_the_first_wrong_byte(feed: Feed, data: bytes) -> None:
    core = HTTP2Core(H2Limits())
    core.data_to_send()
    events = feed(core, data)
    assert failure(events).error_code == PROTOCOL_ERROR
    assert goaway_code(core) == PROTOCOL_ERROR
    assert core.receive_data(b"more") == []  # nothing after the failure


@feeds
def test_oversized_frame_is_refused_from_its_header(feed: Feed) -> None:
    core, _ = connected()
    events = feed(core, b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"x" * 100)
    assert failure(events).error_code == FRAME_SIZE_ERROR


def test_many_concurrent_streams_with_running_apps_are_refused() -> None:
    core, encoder = connected(max_concurrent_streams=3)
    data = b"".join(headers(encoder, sid) for sid in range(1, 20, 2))
    events = core.receive_data(data)
    assert [e.stream_id for e in events if isinstance(e, Request)] == [1, 3, 5]
    resets = [f for f in parse_frames(core.data_to_send()) if isinstance(f, RstStreamFrame)]
    assert {f.stream_id for f in resets} == set(range(7, 20, 2))
    assert {f.error_code for f in resets} == {7}  # REFUSED_STREAM: the client may retry


# --- malformed requests (RFC 9113 §8.1.1): a stream error, the connection carries on ---
M, P, S, A = (b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"a")


@pytest.mark.parametrize(
    "fields",
    [
        [M, P, S, A, (b"X-Upper", b"1")],
        [M, P, S, A, (b"bad name", b"1")],
        [M, P, S, A, (b"x:colon", b"1")],
        [M, P, S, A, (b"", b"1")],
        [M, P, S, A, (b"x", b" padded")],
        [M, P, S, A, (b"x", b"tab\t")],
        [M, P, S, A, (b"x", b"a\x00b")],
        [M, P, S, A, (b"x", b"a\rb")],
        [M, P, S, A, (b"x", b"a\x01b")],
        [M, P, S, (b"x", b"1"), A],  # a pseudo-header after a regular one
        [M, M, P, S, A],
        [M, P, S, A, (b":protocol", b"websocket")],
        [M, S, A],  # no :path
        [M, (b":path", b""), S, A],
        [M, P, A],  # no :scheme
        [P, S, A],  # no :method
        [M, P, S],  # no authority
        [M, P, S, A, (b"host", b"other")],
        [M, P, S, (b"host", b"a"), (b"host", b"a")],
        [M, P, S, A, (b"connection", b"keep-alive")],
        [M, P, S, A, (b"transfer-encoding", b"chunked")],
        [M, P, S, A, (b"te", b"gzip")],
    ],
)
@feeds
def test_malformed_requests_reset_their_stream(
    feed: Feed, fields: list[tuple[bytes, bytes]]
) -> None:
    core, encoder = connected()
    frame = HeadersFrame(1, encoder.encode(fields), flags=["END_HEADERS", "END_STREAM"])
    events = feed(core, frame.serialize())
    assert [(type(e).__name__, getattr(e, "malformed", None)) for e in events] == [
        ("RequestRefused", True)
    ]
    frames = parse_frames(core.data_to_send())
    assert [(type(f).__name__, f.stream_id, f.error_code) for f in frames] == [
        ("RstStreamFrame", 1, PROTOCOL_ERROR)
    ]
    assert isinstance(feed(core, headers(encoder, 3))[0], Request)  # the next stream is served
    assert core.active_streams == 1


def test_well_formed_edge_cases_are_accepted() -> None:
    core, encoder = connected()
    fields = [M, P, S, (b"host", b"a"), (b"te", b"Trailers"), (b"x", b""), (b"x", b"a\tb")]
    frame = HeadersFrame(1, encoder.encode(fields), flags=["END_HEADERS", "END_STREAM"])
    request = core.receive_data(frame.serialize())[0]
    assert isinstance(request, Request)  # Host alone stands for :authority
    assert request.headers == [(b"host", b"a"), (b"te", b"Trailers"), (b"x", b""), (b"x", b"a\tb")]
