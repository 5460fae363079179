"""The sans-IO HTTP/1.1 core, once per parser, every input fed whole and one byte at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asgi_server.protocols._response import ResponseError
from asgi_server.protocols.http11 import (
    NEED_DATA,
    PAUSED,
    Body,
    EndOfRequest,
    HTTP11Core,
    Limits,
    Request,
    RequestError,
)


@pytest.fixture(params=["whole", "bytewise"])
def feeding(request: pytest.FixtureRequest) -> str:
    """Feed each input in one piece, then one byte at a time (parser bugs hide at boundaries)."""
    return str(request.param)


def drain(core: HTTP11Core) -> list[Any]:
    events = []
    while (event := core.next_event()) not in (NEED_DATA, PAUSED):
        events.append(event)
    return events


def feed(core: HTTP11Core, data: bytes, feeding: str) -> list[Any]:
    """Feed ``data`` and collect the events of the current request."""
    events: list[Any] = []
    chunks = [data] if feeding == "whole" else [data[i : i + 1] for i in range(len(data))]
    for chunk in chunks:
        core.receive_data(chunk)
        events += drain(core)
        if events and isinstance(events[-1], RequestError):
            break
    return events


def parse(parser: str, data: bytes, feeding: str, **limits: Any) -> list[Any]:
    return feed(HTTP11Core(Limits(parser, **limits)), data, feeding)


def body_of(events: list[Any]) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Body))


def test_simple_get(http_parser: str, feeding: str) -> None:
    events = parse(
        http_parser, b"GET /a%20b?x=1 HTTP/1.1\r\nHost: example\r\nX-Y: z\r\n\r\n", feeding
    )
    request = events[0]
    assert isinstance(request, Request)
    assert (request.method, request.target, request.http_version) == (b"GET", b"/a%20b?x=1", "1.1")
    assert request.headers == [(b"host", b"example"), (b"x-y", b"z")]
    assert request.keep_alive and not request.expect_continue and request.upgrade is None
    assert events[-1] == EndOfRequest()


def test_content_length_body(http_parser: str, feeding: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    events = parse(http_parser, data, feeding)
    assert body_of(events) == b"hello world"
    assert events[-1] == EndOfRequest()


def test_chunked_body_is_decoded(http_parser: str, feeding: str) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    events = parse(http_parser, data, feeding)
    assert body_of(events) == b"hello world"
    assert events[-1] == EndOfRequest()


def test_pipelined_requests_come_one_at_a_time(http_parser: str, feeding: str) -> None:
    core = HTTP11Core(Limits(http_parser))
    data = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    events = feed(core, data, feeding)
    assert [type(event) for event in events] == [Request, EndOfRequest]
    assert events[0].target == b"/1"
    assert core.next_event() is PAUSED  # the second waits until the first is answered
    core.receive_data(b"")  # nothing new: still paused
    core.start_response(200, [], b"", False)
    core.start_next_cycle()
    events = drain(core)
    assert [type(event) for event in events] == [Request, EndOfRequest]
    assert events[0].target == b"/2"


def test_each_pipelined_request_keeps_its_own_version_wherever_the_reads_split(
    http_parser: str,
) -> None:
    # Same method and target with another version, a second request in the same read, a
    # leading empty line, a line split over two reads and a header value that reads like a
    # request line: each request keeps the version its own request line gives.
    requests = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        # llhttp skips an empty line before a request line (RFC 9112 §2.2); h11 refuses it.
        b"%sGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        % (b"\r\n" if http_parser == "httptools" else b""),
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        # A header value that reads like a request line: split after "X-Quote: ", the next
        # read begins with "GET / HTTP/1.1\r\n", yet this head's version is 1.0.
        b"GET / HTTP/1.0\r\nX-Quote: GET / HTTP/1.1\r\n\r\n",
    ]
    data = b"".join(requests)
    for split in range(len(data) + 1):
        core = HTTP11Core(Limits(http_parser))
        versions = []
        for chunk in (data[:split], data[split:]):
            core.receive_data(chunk)
            while True:
                events = drain(core)
                versions += [event.http_version for event in events if isinstance(event, Request)]
                if core.next_event() is not PAUSED:
                    break
                core.start_response(200, [], b"", False)
                core.start_next_cycle()
        assert versions == ["1.1", "1.0", "1.1", "1.0", "1.1", "1.0"], split


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    ],
)
def test_keep_alive_decision(http_parser: str, feeding: str, head: bytes, keep_alive: bool) -> None:
    request = parse(http_parser, head, feeding)[0]
    assert request.keep_alive is keep_alive


def test_expect_continue_and_upgrade_are_flagged(http_parser: str, feeding: str) -> None:
    data = (
        b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    request = parse(http_parser, data, feeding)[0]
    assert request.upgrade == b"websocket"
    data = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    request = parse(http_parser, data, feeding)[0]
    assert request.expect_continue


def test_bytes_after_an_upgrade_request_are_kept(http_parser: str) -> None:
    core = HTTP11Core(Limits(http_parser))
    core.receive_data(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00"
    )
    assert isinstance(drain(core)[0], Request)
    assert core.trailing_data() == b"\x81\x00"


BIG = b"a" * 17000
MALFORMED = {
    "content-length-and-chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "duplicate-equal-content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        400,
    ),
    "signed-content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400),
    "negative-content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    "hex-content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x1\r\n\r\nx", 400),
    "nul-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    "bare-cr-in-value": (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    "control-in-name": (b"GET / HTTP/1.1\r\nHost: a\r\nX\x01Y: v\r\n\r\n", 400),
    "not-http": (b"HELLO THERE\r\n\r\n", 400),
    "http11-without-host": (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    "target-too-long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "head-too-large": (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + BIG + b"\r\n\r\n", 431),
    "head-too-large-incomplete": (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + BIG, 431),
    "too-many-headers": (
        b"GET / HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(100))
        + b"\r\n",
        431,
    ),
}
MALFORMED.update(
    {
        f"control-{byte:#04x}-in-value": (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a" + bytes([byte]) + b"b\r\n\r\n",
            400,
        )
        for byte in (0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x7F, 0x85)
    }
)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_requests_are_refused(http_parser: str, feeding: str, name: str) -> None:
    data, status = MALFORMED[name]
    events = parse(http_parser, data, feeding)
    assert isinstance(events[-1], RequestError), events
    assert events[-1].status_code == status
    assert not any(isinstance(event, Request) for event in events)


def test_body_limit_by_content_length(http_parser: str, feeding: str) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    events = parse(http_parser, data, feeding, limit_request_body=10)
    assert events == [RequestError(413, "Request body too large")]


def test_body_limit_while_chunked(http_parser: str, feeding: str) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + b"6\r\nhello \r\n5\r\nworld\r\n"
    events = parse(http_parser, data, feeding, limit_request_body=10)
    assert isinstance(events[0], Request)
    assert events[-1] == RequestError(413, "Request body too large")


def test_limits_are_configurable(http_parser: str, feeding: str) -> None:
    data = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse(http_parser, data, feeding, limit_request_line=50)[-1].status_code == 414
    assert isinstance(parse(http_parser, data, feeding, limit_request_line=200)[0], Request)
    data = b"GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n"
    assert parse(http_parser, data, feeding, limit_request_headers=2)[-1].status_code == 431


def responder(
    parser: str = "h11", head: bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
) -> HTTP11Core:
    core = HTTP11Core(Limits(parser))
    core.receive_data(head)
    drain(core)
    return core


def test_whole_response_gets_a_content_length() -> None:
    core = responder()
    data = core.start_response(200, [(b"content-type", b"text/plain")], b"hi", False)
    assert data == b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nhi"
    assert core.response_complete and core.keep_alive


def test_streamed_response_is_chunked() -> None:
    core = responder()
    head = core.start_response(200, [], b"ab", True)
    assert head == b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n"
    assert core.send_body(b"c", True) == b"1\r\nc\r\n"
    assert core.send_body(b"", False) == b"0\r\n\r\n"


def test_http10_streamed_response_closes_the_connection() -> None:
    core = responder(head=b"GET / HTTP/1.0\r\n\r\n")
    head = core.start_response(200, [], b"ab", True)
    assert head == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nab"
    assert not core.keep_alive


def test_head_and_204_have_no_body() -> None:
    core = responder(head=b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    data = core.start_response(200, [(b"content-length", b"5")], b"hello", False)
    assert data == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    core = responder()
    assert core.start_response(204, [], b"", False) == b"HTTP/1.1 204 No Content\r\n\r\n"


def test_default_headers_yield_to_the_apps() -> None:
    core = responder()
    defaults = [(b"server", b"server: crossway\r\n"), (b"date", b"date: today\r\n")]
    data = core.start_response(200, [(b"Server", b"mine")], b"", False, defaults)
    assert data.count(b"erver:") == 1 and b"Server: mine\r\n" in data and b"date: today" in data


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-evil", b"a\r\nset-cookie: b")],
        [(b"x-evil", b"a\nb")],
        [(b"x-evil", b"a\rb")],
        [(b"x-evil", b"a\x00b")],
        [(b"content-type", b"text/plain"), (b"x-evil", b"text/plain\r\nx: y")],
        [(b"x evil", b"a")],
        [(b"content-length", b"-1")],
    ],
)
def test_response_splitting_is_refused(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(ResponseError):
        responder().start_response(200, headers, b"", False)


def test_clean_values_are_remembered_and_bad_ones_never() -> None:
    """Header values are checked once and then remembered; a bad value is refused every time."""
    for _ in range(2):
        data = responder().start_response(200, [(b"x-ok", b"fine")], b"", False)
        assert b"\r\nx-ok: fine\r\n" in data
        with pytest.raises(ResponseError, match="x-bad"):
            responder().start_response(200, [(b"x-bad", b"a\r\nb: c")], b"", False)


def test_wrong_content_length_from_the_app_raises() -> None:
    core = responder()
    core.start_response(200, [(b"content-length", b"3")], b"ab", True)
    with pytest.raises(ResponseError, match="more body bytes"):
        core.send_body(b"cd", False)
    core = responder()
    core.start_response(200, [(b"content-length", b"3")], b"ab", True)
    with pytest.raises(ResponseError, match="short"):
        core.send_body(b"", False)


def test_error_response_closes() -> None:
    data = HTTP11Core(Limits()).error_response(431, [b"server: crossway\r\n"])
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\nserver: crossway\r\n")
    assert b"connection: close\r\n" in data and data.endswith(
        b"\r\n\r\nRequest Header Fields Too Large"
    )


def test_body_in_pieces_then_a_pipelined_request(http_parser: str) -> None:
    """A body that spans reads, ending in the same read as the next request begins."""
    core = HTTP11Core(Limits(http_parser))
    core.receive_data(b"POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01")
    core.receive_data(b"2345")
    core.receive_data(b"6789GET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\n")
    events = drain(core)
    assert events[0].target == b"/1" and body_of(events) == b"0123456789"
    assert events[-1] == EndOfRequest()
    core.start_response(200, [], b"", False)
    core.start_next_cycle()
    events = drain(core)
    assert [type(event) for event in events] == [Request, EndOfRequest]
    assert events[0].target == b"/2"
    core.receive_data(b"Host: a\r\n\r\n")
    core.start_response(200, [], b"", False)
    core.start_next_cycle()
    assert drain(core)[0].target == b"/3"


def test_other_upgrades_are_answered_as_plain_http(http_parser: str) -> None:
    """An h2c upgrade we do not take: answer it as HTTP/1.1 and go on with the next request."""
    core = HTTP11Core(Limits(http_parser))
    core.receive_data(
        b"GET /a HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    events = drain(core)
    assert events[0].upgrade == b"h2c" and events[-1] == EndOfRequest()
    core.start_response(200, [], b"", False)
    core.start_next_cycle()
    events = drain(core)
    assert events[0].target == b"/b" and events[-1] == EndOfRequest()


def test_limits_defaults_are_configs() -> None:
    """config.py is the one place a default is written: Limits takes its defaults from there."""
    from asgi_server.config import Config

    defaults, limits = Config(), Limits()
    for name in ("limit_request_line", "limit_request_head", "limit_request_headers"):
        assert getattr(limits, name) == getattr(defaults, name)
    assert limits.limit_request_body == defaults.limit_request_body
    source = (Path(__file__).parents[2] / "asgi_server/protocols/http11.py").read_text()
    assert "8192" not in source and "16384" not in source  # no copy of a default
