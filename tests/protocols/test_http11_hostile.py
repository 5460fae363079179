"""Hostile request bytes through the HTTP/1.1 core, once per parser, whole and split.

Three kinds of checks: a table of attacks with the answer both parsers must give; the known
differences between h11 and llhttp (listed in docs/reference/limits.md), pinned so that a change is
noticed; and a differential test with hypothesis that generates valid and mutated requests, feeds
them whole and split at random points, and asserts that the core never raises, that both parsers
frame the same requests when both accept (no request smuggling), and that every refusal is a 4xx
sent with ``connection: close``.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

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

PARSERS = ("h11", "httptools")


def run(parser: str, chunks: list[bytes], **limits: Any) -> list[Any]:
    """Play one connection: feed ``chunks``, answer every complete request at once, and return
    what the server saw: ``("request", method, target, body)`` per request (``complete`` or
    not), then ``("error", status)`` if the core refused the bytes."""
    core = HTTP11Core(Limits(parser, **limits))
    seen: list[Any] = []
    for chunk in chunks:
        core.receive_data(chunk)
        while (event := core.next_event()) is not NEED_DATA:
            if event is PAUSED:
                request = core.request
                if request is None or request.upgrade or not request.keep_alive:
                    return seen  # refused, upgraded or closing: nothing more is parsed
                core.start_next_cycle()
            elif isinstance(event, Request):
                seen.append(["request", event.method, event.target, b"", False])
            elif isinstance(event, Body):
                seen[-1][3] += event.data
            elif isinstance(event, EndOfRequest):
                seen[-1][4] = True
            elif isinstance(event, RequestError):
                assert 400 <= event.status_code < 500, event
                closing = core.error_response(event.status_code)
                assert closing.startswith(b"HTTP/1.1 4") and b"\r\nconnection: close\r\n" in closing
                return [*seen, ("error", event.status_code)]
    return seen


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (modulo its length + 1; a repeated or edge offset
    makes an empty read, which once made h11 see an end of file)."""
    points = sorted(cut % (len(data) + 1) for cut in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def outcomes(data: bytes, **limits: Any) -> dict[str, list[Any]]:
    """What each parser makes of ``data``, asserting that whole, byte-wise and a few random
    splits agree (a parser bug usually hides at a buffer boundary)."""
    results = {}
    for parser in PARSERS:
        whole = run(parser, [data], **limits)
        bytewise = run(parser, [data[i : i + 1] for i in range(len(data))], **limits)
        assert bytewise == whole, (parser, data)
        results[parser] = whole
    return results


def accepted(result: list[Any]) -> bool:
    return not result or result[-1][0] != "error"


def assert_same_framing(results: dict[str, list[Any]]) -> None:
    """No smuggling: the n-th request that both parsers framed completely is the same request
    (method, target, body) for both, whatever else they disagree on."""
    for a, b in zip(results["h11"], results["httptools"], strict=False):
        if a[0] == b[0] == "request" and a[4] and b[4]:
            assert a[1:4] == b[1:4], results


H = b"Host: a\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
REFUSED_BY_BOTH = {
    # Framing that two hops could read differently (RFC 9112 §6.1, §6.3): refuse, never guess.
    "cl-and-te": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked"
    b"\r\n\r\n0\r\n\r\n",
    "cl-list": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl-duplicate-by-case": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\ncontent-length: 3"
    b"\r\n\r\nabc",
    "cl-trailing-space": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3 \r\n\r\nabc",
    "cl-negative": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc",
    "cl-overflowing-64-bits": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 18446744073709551616"
    b"\r\n\r\nabc",
    "cl-huge": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: " + b"9" * 40 + b"\r\n\r\n",
    "cl-space-before-colon": b"POST / HTTP/1.1\r\n" + H + b"Content-Length : 3\r\n\r\nabc",
    "te-tab-before-colon": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding\t: chunked\r\n\r\n",
    "te-gzip-then-chunked": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked"
    b"\r\n\r\n0\r\n\r\n",
    "te-identity": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\nabc",
    "te-twice": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: "
    b"chunked\r\n\r\n0\r\n\r\n",
    # obs-fold hides a header inside another one for a hop that does not unfold (RFC 9112 §5.2).
    "obs-fold": b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n",
    "obs-fold-hiding-te": b"POST / HTTP/1.1\r\n" + H + b"X: y\r\n Transfer-Encoding: chunked\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "obs-fold-hiding-cl": b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nX:\r\n\tContent-"
    b"Length: 4\r\n\r\nabcd",
    # Line endings (RFC 9112 §2.2): bare LF is refused by both parsers alike, bare CR always.
    "bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare-lf-in-head": b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\rHost: a\r\n\r\n",
    "chunk-size-overflow": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffffffff1\r\nabc\r\n0\r\n\r\n",
    "chunk-bad-terminator": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabcXX0\r\n\r\n",
    "chunk-size-negative": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"-3\r\nabc\r\n0\r\n\r\n",
    "chunk-size-0x": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"0x3\r\nabc\r\n0\r\n\r\n",
    # Versions we do not speak: HTTP/0.9, the HTTP/2 preface, HTTP/2.0 and /3.0 as text.
    "http-0.9": b"GET /\r\n\r\n",
    "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http-2.0": b"GET / HTTP/2.0\r\n" + H + b"\r\n",
    "http-1.2": b"GET / HTTP/1.2\r\n" + H + b"\r\n",
    "http-3.0": b"GET / HTTP/3.0\r\n" + H + b"\r\n",
    "lowercase-http": b"GET / http/1.1\r\n" + H + b"\r\n",
    # RFC 9112 §3.2: a second Host line gets a 400 like a missing one.
    "duplicate-host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    # llhttp gives the new protocol everything after the head, h11 reads the body first: the
    # body of an upgrade request could be parsed as a second request (smuggling).
    "upgrade-with-body": b"POST / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: h2c\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
    "upgrade-with-chunked-body": b"POST / HTTP/1.1\r\n" + H + b"Connection: upgrade\r\nUpgrade: "
    b"websocket\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "nul-in-target": b"GET /\x00 HTTP/1.1\r\n" + H + b"\r\n",
    "nul-in-method": b"G\x00T / HTTP/1.1\r\n" + H + b"\r\n",
    "nul-in-name": b"GET / HTTP/1.1\r\n" + H + b"X\x00: v\r\n\r\n",
    "non-ascii-target": b"GET /\xc3\xa9\xff HTTP/1.1\r\n" + H + b"\r\n",
    "non-ascii-name": b"GET / HTTP/1.1\r\n" + H + b"X\xc3\xa9: v\r\n\r\n",
    "nel-in-target": b"GET /\x85 HTTP/1.1\r\n" + H + b"\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\n" + H + b"\r\n",
    "empty-target": b"GET  HTTP/1.1\r\n" + H + b"\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\n" + H + b"XYZ\r\n\r\n",
    "empty-header-name": b"GET / HTTP/1.1\r\n" + H + b": v\r\n\r\n",
    "leading-space-header": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
}


@pytest.mark.parametrize("name", sorted(REFUSED_BY_BOTH))
def test_hostile_heads_are_refused_by_both_parsers(name: str) -> None:
    data = REFUSED_BY_BOTH[name]
    for parser, result in outcomes(data).items():
        assert result and result[-1][0] == "error", (parser, result)
        # A refused request never reaches the app complete, and nothing after it is parsed.
        assert not any(item[0] == "request" and item[4] for item in result[:-1][1:]), result


ACCEPTED_BY_BOTH = {
    # Each input, and the requests (method, target, body) both parsers must frame from it.
    "absolute-form": (b"GET http://a/b?c HTTP/1.1\r\n" + H + b"\r\n", [(b"GET", b"http://a/b?c")]),
    "asterisk-form": (b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", [(b"OPTIONS", b"*")]),
    "connect": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", [(b"CONNECT", b"a:443")]),
    "chunk-extensions": (
        b"POST / HTTP/1.1\r\n" + H + b'Transfer-Encoding: chunked\r\n\r\n3;x="y\\"z"\r\nabc'
        b"\r\n0;last\r\n\r\n",
        [(b"POST", b"/", b"abc")],
    ),
    "trailers-are-dropped": (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        b"X-Trailer: 1\r\n\r\nGET /next HTTP/1.1\r\n" + H + b"\r\n",
        [(b"POST", b"/", b"abc"), (b"GET", b"/next")],
    ),
    "body-that-looks-like-a-request": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n%s" % (len(SMUGGLED), SMUGGLED),
        [(b"POST", b"/", SMUGGLED)],
    ),
    "pipelined-after-http10-keep-alive": (
        b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
        [(b"GET", b"/1"), (b"GET", b"/2")],
    ),
    "nul-and-non-ascii-in-body": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\n\x00\xff\n",
        [(b"POST", b"/", b"\x00\xff\n")],
    ),
    "leading-zeros-in-content-length": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0003\r\n\r\nabc",
        [(b"POST", b"/", b"abc")],
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED_BY_BOTH))
def test_unusual_but_valid_requests_are_framed_alike(name: str) -> None:
    data, expected = ACCEPTED_BY_BOTH[name]
    for parser, result in outcomes(data).items():
        framed = [(item[1], item[2], *([item[3]] if item[3] else [])) for item in result]
        assert framed == expected, (parser, result)
        assert all(item[4] for item in result), (parser, result)


def test_http10_with_transfer_encoding_closes_after_the_request() -> None:
    # RFC 9112 §6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is suspect.
    data = (
        b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    for parser in PARSERS:
        core = HTTP11Core(Limits(parser))
        core.receive_data(data)
        request = core.next_event()
        assert isinstance(request, Request) and not request.keep_alive, parser


def test_trailers_never_join_the_request_headers() -> None:
    data = (
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\n\r\n"
    )
    for parser in PARSERS:
        core = HTTP11Core(Limits(parser))
        core.receive_data(data)
        request = core.next_event()
        assert isinstance(request, Request)
        assert core.next_event() == EndOfRequest()
        assert request.headers == [(b"host", b"a"), (b"transfer-encoding", b"chunked")], parser


def test_empty_reads_are_not_an_end_of_file() -> None:
    # h11 takes b"" as the peer's EOF and raised RuntimeError on the next bytes (found by atheris).
    for parser in PARSERS:
        data = [b"", b"GET / HTTP/1.1\r\n", b"", b"Host: a\r\n\r\n", b""]
        assert run(parser, data) == [["request", b"GET", b"/", b"", True]], parser


def test_pipelined_backlog_counts_until_it_is_answered() -> None:
    # paused_bytes is what the transport's read pause looks at: it was reset at every
    # response, so a client pipelining faster than we answer was read without bound.
    get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for parser in PARSERS:
        core = HTTP11Core(Limits(parser))
        core.receive_data(get)
        assert isinstance(core.next_event(), Request) and core.next_event() == EndOfRequest()
        core.receive_data(get * 3)  # arrives while the first request is answered
        assert core.paused_bytes == 3 * len(get)
        for _ in range(3):
            assert core.start_next_cycle(), parser
            assert core.paused_bytes == 3 * len(get), parser  # still waiting: still counted
            assert isinstance(core.next_event(), Request) and core.next_event() == EndOfRequest()
        assert not core.start_next_cycle() and core.paused_bytes == 0, parser


CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
# The differences that remain (docs/reference/limits.md): none of them frames a body differently.
KNOWN_DIFFERENCES = {
    "unknown-method": b"FOO / HTTP/1.1\r\n" + H + b"\r\n",  # llhttp knows a fixed list
    "lowercase-method": b"get / HTTP/1.1\r\n" + H + b"\r\n",  # methods are case-sensitive
    "pri-method": b"PRI / HTTP/1.1\r\n" + H + b"\r\n",  # llhttp: PRI only as the HTTP/2 preface
    "double-space-in-request-line": b"GET  / HTTP/1.1\r\n" + H + b"\r\n",  # llhttp is lenient
    "empty-line-before-request": b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",  # RFC 9112 §2.2 MAY
    "space-after-chunk-size": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"3 \r\nabc\r\n0\r\n\r\n",  # h11 takes it as BWS before a (missing) extension
    "bare-cr-in-chunk-extension": CHUNKED + b"3;a\rb\r\nabc\r\n0\r\n\r\n",  # h11 is lenient
    "empty-chunk-extension": CHUNKED + b"3;\r\nabc\r\n0\r\n\r\n",  # h11 is lenient
    "bare-lf-in-trailers": CHUNKED + b"0\r\nX: a\n\r\n",  # h11 is lenient (trailers dropped)
    "chunk-size-past-20-digits": CHUNKED + b"0" * 24 + b"3\r\nabc\r\n0\r\n\r\n",  # h11: 20
    "content-length-past-20-digits": b"POST / HTTP/1.1\r\n"
    + H
    + b"Content-Length: "
    + b"0" * 24
    + b"3\r\n\r\nabc",  # leading zeros: llhttp takes them, h11 stops at 20 digits
    "content-length-trailer": b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
    b"0\r\nContent-Length: 5\r\n\r\n",  # llhttp refuses framing fields in trailers
}


@pytest.mark.parametrize("name", sorted(KNOWN_DIFFERENCES))
def test_known_differences_stay_as_documented(name: str) -> None:
    results = outcomes(KNOWN_DIFFERENCES[name])
    assert accepted(results["h11"]) != accepted(results["httptools"]), results
    assert_same_framing(results)


# --- hypothesis: generated requests, valid and mutated ---------------------------------------
METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"CONNECT", b"PRI", b"FOO"]
TARGETS = [b"/", b"/a?b=c", b"*", b"http://a/b", b"a:443", b"/%00", b"/\xc3\xa9", b"/a#f"]
VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b""]
HEADERS = [
    b"Host: a\r\n",
    b"Host: b\r\n",
    b"X: a\tb\r\n",
    b"X: \xc3\xa9\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Connection: upgrade\r\nUpgrade: websocket\r\n",
    b"Expect: 100-continue\r\n",
    b"X: a\r\n b\r\n",  # obs-fold
    b"X : a\r\n",
    b"X\t: a\r\n",
    b"X: a\nY: b\r\n",
    b"Transfer-Encoding: gzip\r\n",
]
CONTENT_LENGTHS = [b"0", b"3", b"5", b"-1", b"+3", b"0x3", b"3, 3", b"99999999999999999999999"]
INTERESTING_BYTES = b"\x00\r\n \t:;\x85\xff\x7f0aF,"


@st.composite
def body_and_framing(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Framing headers and the bytes after the head: none, Content-Length or chunked."""
    kind = draw(st.sampled_from(["none", "length", "chunked", "both"]))
    payload = draw(st.binary(max_size=12))
    if kind == "none":
        return [], b""
    if kind == "length":
        value = draw(st.sampled_from([*CONTENT_LENGTHS, str(len(payload)).encode()]))
        headers = [b"Content-Length: " + value + b"\r\n"]
        if draw(st.booleans()):
            headers.append(draw(st.sampled_from([headers[0], b"content-length: 1\r\n"])))
        return headers, payload
    sizes = draw(
        st.sampled_from([b"%x", b"%X", b"%x;ext=1", b"%x ", b"0%x", b"fffffffffffffffff%x"])
    )
    chunks = b"".join(
        sizes.replace(b"%x", b"%x" % len(part)).replace(b"%X", b"%X" % len(part))
        + b"\r\n"
        + part
        + draw(st.sampled_from([b"\r\n", b"\n", b"XX", b""]))
        for part in [payload[:5], payload[5:]]
        if part
    )
    last = draw(st.sampled_from([b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n", b"0\n\n", b"0;x\r\n\r\n"]))
    headers = [b"Transfer-Encoding: chunked\r\n"]
    if kind == "both":
        headers.append(b"Content-Length: %d\r\n" % len(chunks + last))
    return headers, chunks + last


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One request (sometimes malformed), maybe followed by a pipelined one or garbage."""
    line = b" ".join(
        [draw(st.sampled_from(METHODS)), draw(st.sampled_from(TARGETS))]
        + [version for version in [draw(st.sampled_from(VERSIONS))] if version]
    )
    framing, body = draw(body_and_framing())
    headers = draw(st.lists(st.sampled_from(HEADERS), max_size=3)) + framing
    headers = draw(st.permutations(headers))
    data = line + b"\r\n" + b"".join(headers) + b"\r\n" + body
    tail = draw(st.sampled_from([b"", b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n", b"GARBAGE\r\n\r\n"]))
    data += tail
    for _ in range(draw(st.integers(0, 2))):  # mutate: insert, replace or delete a byte
        at = draw(st.integers(0, len(data)))
        byte = bytes([draw(st.sampled_from(INTERESTING_BYTES))])
        how = draw(st.sampled_from(["insert", "replace", "delete"]))
        data = data[:at] + (b"" if how == "delete" else byte) + data[at + (how != "insert") :]
    return data


def first_request_state(result: list[Any]) -> str:
    """'complete', 'refused' (an error before the first request was complete) or 'pending'."""
    if result and result[0][0] == "request" and result[0][4]:
        return "complete"
    return "refused" if result and result[-1][0] == "error" else "pending"


def is_known_difference(data: bytes) -> bool:
    """Whether ``data`` touches one of KNOWN_DIFFERENCES (then only framing must agree)."""
    method = data.split(b" ", 1)[0]
    known_methods = {b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE", b"CONNECT"}
    return (
        method not in known_methods
        or b"  " in data.split(b"\r\n", 1)[0]
        or data.startswith((b"\r", b"\n"))
        or re.search(rb"\n[0-9a-fA-F]+[ \t]", data) is not None  # space after a chunk size
    )


@settings(
    max_examples=int(os.environ.get("CROSSWAY_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize="CROSSWAY_FUZZ_EXAMPLES" not in os.environ,  # deterministic in CI
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=requests(), cuts=st.lists(st.integers(0, 10_000), max_size=4))
@example(data=REFUSED_BY_BOTH["obs-fold-hiding-te"], cuts=[40])
@example(data=ACCEPTED_BY_BOTH["body-that-looks-like-a-request"][0], cuts=[60])
def test_parsers_agree_on_generated_requests(data: bytes, cuts: list[int]) -> None:
    results = {}
    for parser in PARSERS:
        whole = run(parser, [data])  # never raises; every refusal is a 4xx that closes
        assert run(parser, split(data, cuts)) == whole, (parser, data, cuts)
        results[parser] = whole
    assert_same_framing(results)
    if not is_known_difference(data):
        # No parser completes a first request that the other refuses. (h11 may still wait
        # where llhttp refuses early, e.g. a bare LF after a chunk: the timeouts end that.)
        states = {first_request_state(result) for result in results.values()}
        assert states != {"complete", "refused"}, (data, results)
