"""The sans-IO HTTP/1.1 core: request bytes in, events out; response parts in, bytes out.

One core, two parsers (``h11`` and ``httptools``, see ``_parsers.py``). The core does what the
parsers leave to a server: it measures the head, counts headers, refuses ambiguous framing,
enforces the body limit, decides keep-alive, and serializes responses itself (one ``bytes`` for
the head and the first body chunk). It never touches a socket, a clock or a task.

Usage by a transport::

    core = HTTP11Core(Limits.from_config(config, "h11"))
    core.receive_data(data)
    while (event := core.next_event()) not in (NEED_DATA, PAUSED):
        ...  # Request, Body, EndOfRequest or RequestError
    transport.write(core.start_response(200, headers, body, more_body=False, default_headers))
    if core.response_complete and core.keep_alive:
        core.start_next_cycle()
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Final

from asgi_server.config import Config
from asgi_server.protocols._parsers import BODY, END, HEAD, RawEvent, make_parser
from asgi_server.protocols._response import ResponseWriter

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Body",
    "EndOfRequest",
    "HTTP11Core",
    "Limits",
    "Request",
    "RequestError",
]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = _Sentinel("NEED_DATA")  # feed more bytes
PAUSED: Final = _Sentinel("PAUSED")  # the request is complete; answer it, then start_next_cycle()


@dataclass(slots=True)
class Request:
    """A request head that passed every check. Header names are lowercased.

    Treat it as immutable like the other events; it is not frozen because one is built per
    request: a frozen dataclass's ``__init__`` costs 4.5 times as much, a NamedTuple's 1.6
    times (and reading its fields twice), which is 1% of a keep-alive request.
    """

    method: bytes
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    expect_continue: bool
    upgrade: bytes | None  # the lowercased Upgrade header when Connection lists "upgrade"
    # X-Forwarded-For or -Proto is present: noted in the core's pass over the headers, so that
    # the transport's proxy handling need not scan the headers of every request again.
    forwarded: bool = False


@dataclass(frozen=True, slots=True)
class Body:
    """A piece of the request body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfRequest:
    """The request body is complete."""


@dataclass(frozen=True, slots=True)
class RequestError:
    """The request is malformed or over a limit: send ``error_response(status_code)``, close."""

    status_code: int
    detail: str


Event = Request | Body | EndOfRequest | RequestError
END_OF_REQUEST = EndOfRequest()


_DEFAULTS = Config()  # config.py is the one place a default is written


@dataclass(frozen=True, slots=True)
class Limits:
    """The request limits the core enforces, with Config's defaults."""

    parser: str = "h11"  # a parser name, resolved ("auto" is the server's to resolve)
    limit_request_line: int = _DEFAULTS.limit_request_line
    limit_request_head: int = _DEFAULTS.limit_request_head
    limit_request_headers: int = _DEFAULTS.limit_request_headers
    limit_request_body: int | None = _DEFAULTS.limit_request_body

    @classmethod
    def from_config(cls, config: Config, parser: str) -> Limits:
        """Take the limits from a ``Config``; ``parser`` is the resolved parser name."""
        return cls(
            parser,
            config.limit_request_line,
            config.limit_request_head,
            config.limit_request_headers,
            config.limit_request_body,
        )


# Bytes that never belong in a header value: CTLs except HTAB (RFC 9110 §5.5), DEL, and 0x85
# (NEL), which Python's str.splitlines() treats as a line break once decoded as latin-1 and
# so could split a logged or re-emitted header. A UTF-8 value containing 0x85 is refused too.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f\x85]").search
_DIGITS = re.compile(rb"[0-9]+").fullmatch
# Targets other than a path that llhttp takes (h11 takes any): "*" and scheme://... forms.
_OTHER_TARGET_FORM = re.compile(rb"\*|[A-Za-z][A-Za-z0-9+.-]*://").match
# The request headers the core itself reads, and (last two) the ones it notes for proxies.
_FRAMING_HEADERS = frozenset(
    (b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade")
) | {b"x-forwarded-for", b"x-forwarded-proto"}


class HTTP11Core(ResponseWriter):
    """One HTTP/1.1 connection, server side: parses requests one at a time (pipelined ones are
    held until ``start_next_cycle``) and serializes the responses (see ``ResponseWriter``)."""

    __slots__ = (
        "_body_received",
        "_check_values",
        "_failed",
        "_parser",
        "_paused",
        "_raw",
        "limits",
        "paused_bytes",
        "request",
    )

    def __init__(self, limits: Limits) -> None:
        super().__init__()
        self.limits = limits
        self._parser = make_parser(limits.parser, limits.limit_request_head)
        self._raw: deque[RawEvent] = self._parser.events
        # llhttp refuses every control byte in a value but 0x85; h11 lets most of them through.
        self._check_values = limits.parser != "httptools"
        self._paused = False
        self._failed = False
        self._body_received = 0
        self.paused_bytes = (
            0  # bytes received while PAUSED: the transport stops reading past a bound
        )
        self.request: Request | None = None

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the peer."""
        if self._paused:
            self.paused_bytes += len(data)
        self._parser.feed(data)

    def next_event(self) -> Event | _Sentinel:
        """The next event of the current request, ``NEED_DATA`` or ``PAUSED``."""
        if self._paused:
            return PAUSED
        if not self._raw:
            return NEED_DATA
        raw = self._raw.popleft()
        kind = raw[0]
        if kind == BODY:
            return self._body(raw[1])
        if kind == HEAD:
            return self._head(raw[1], raw[2], raw[3], raw[4])
        if kind == END:
            self._paused = True
            return END_OF_REQUEST
        return self._fail(raw[1], raw[2])

    @property
    def events_pending(self) -> bool:
        """Whether parsed events wait (a pipelined request, after ``start_next_cycle``)."""
        return bool(self._raw)

    def start_next_cycle(self) -> bool:
        """The response is complete and the connection stays open: move to the next request.

        Returns ``events_pending`` (whether a pipelined request waits), saving the caller a call.
        """
        self._paused = False
        self._body_received = 0
        self.request = None
        self.reset_response()
        self._parser.next_cycle()
        if self._raw:  # pipelined requests wait: their bytes still count, until all are answered
            return True
        self.paused_bytes = 0
        return False

    def trailing_data(self) -> bytes:
        """Bytes received after an upgrade request, for the protocol that takes over."""
        return self._parser.trailing_data()

    def close(self) -> None:
        """The connection is gone or upgraded: release the parser (feeding stops here)."""
        self._parser.close()

    def _fail(self, status_code: int, detail: str) -> RequestError:
        self._failed = self._paused = True
        self._raw.clear()
        return RequestError(status_code, detail)

    def _body(self, data: bytes) -> Body | RequestError:
        limit = self.limits.limit_request_body
        if limit is not None:
            self._body_received += len(data)
            if self._body_received > limit:
                return self._fail(413, "Request body too large")
        return Body(data)

    def _head(
        self, method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]
    ) -> Request | RequestError:
        """Check a parsed head against the limits and the framing rules."""
        # One pass over the headers for every check: slightly over 40 lines, on the hot path.
        limits = self.limits
        if len(target) > limits.limit_request_line:
            return self._fail(414, "Request target too long")
        if target[:1] != b"/" and not _OTHER_TARGET_FORM(target) and method != b"CONNECT":
            # RFC 9112 §3.2: origin-form, absolute-form or "*"; authority-form only for CONNECT.
            return self._fail(400, "Invalid request target; send a path such as /index.html")
        if len(headers) > limits.limit_request_headers:
            return self._fail(431, "Too many request headers")
        size = len(method) + len(target) + 13  # "M T HTTP/1.1\r\n" and the final CRLF
        content_lengths: list[bytes] = []
        has_host = chunked = forwarded = False
        connection = b""
        expect = upgrade = None
        strict = self._check_values
        # Both parsers already refuse header names that are not tokens (RFC 9110 §5.6.2).
        for name, value in headers:
            size += len(name) + len(value) + 4
            # An int operand makes `in` a plain memchr: 10x cheaper than a bytes operand.
            if 0x85 in value or (strict and _BAD_VALUE(value) is not None):
                return self._fail(400, "Invalid character in a request header")
            if name not in _FRAMING_HEADERS:  # most headers: one set lookup, not six compares
                continue
            if name == b"host":
                if has_host:  # RFC 9112 §3.2: more than one Host line gets a 400
                    return self._fail(400, "Duplicate Host header")
                has_host = True
            elif name == b"content-length":
                content_lengths.append(value)
            elif name == b"transfer-encoding":
                # RFC 9112 §6.1: chunked is the only coding we decode; any other (or a list)
                # would leave the body's framing to guesswork, so it is refused, as h11 does.
                if value.strip(b" \t").lower() != b"chunked":
                    return self._fail(400, "Unsupported Transfer-Encoding; send chunked only")
                chunked = True
            elif name == b"connection":
                connection += b"," + value.lower()
            elif name == b"expect":
                expect = value.lower()
            elif name == b"upgrade":
                upgrade = value.lower()
            else:  # x-forwarded-for, x-forwarded-proto
                forwarded = True
        if size > limits.limit_request_head:
            return self._fail(431, "Request head too large")
        if version != "1.1":
            if version != "1.0":  # HTTP/0.9, an HTTP/2 preface, HTTP/3.0: not ours to serve
                return self._fail(400, "Unsupported HTTP version; use HTTP/1.1")
        elif not has_host:
            # RFC 9112 §3.2: an HTTP/1.1 request without Host gets a 400.
            return self._fail(400, "Missing Host header")
        if content_lengths:
            error = self._check_framing(content_lengths, chunked)
            if error is not None:
                return error
        has_body = chunked or (content_lengths and content_lengths[0].strip(b"0"))
        if has_body and (
            method == b"CONNECT" or (upgrade is not None and b"upgrade" in connection)
        ):
            # llhttp hands all after the head of an upgrade (or CONNECT) to the new protocol,
            # h11 reads the body first: where the body ends would depend on the parser (and
            # a body could be parsed as a second request), so such a request is refused.
            # RFC 9110 §9.3.6: a CONNECT request has no content anyway.
            return self._fail(400, "Upgrade or CONNECT with a body; send the body without")
        if chunked and version == "1.0":  # RFC 9112 §6.1: then close after this request
            connection = b"close"
        request = self._accept(method, target, version, headers, connection, expect, upgrade)
        request.forwarded = forwarded
        return request

    def _check_framing(self, content_lengths: list[bytes], chunked: bool) -> RequestError | None:
        if chunked:
            # RFC 9112 §6.1: both headers is a smuggling vector; refuse and close.
            return self._fail(400, "Both Content-Length and Transfer-Encoding")
        if len(content_lengths) > 1:
            # RFC 9112 §6.3: duplicates (even equal ones) are refused, so no hop disagrees.
            return self._fail(400, "Duplicate Content-Length")
        value = content_lengths[0]
        if _DIGITS(value) is None:  # no sign, no hex, no spaces (RFC 9110 §8.6)
            return self._fail(400, "Invalid Content-Length")
        if len(value) > 19 and int(value) >= 1 << 64:  # llhttp's bound, for both parsers
            return self._fail(400, "Content-Length too large")
        limit = self.limits.limit_request_body
        if limit is not None and int(value) > limit:
            return self._fail(413, "Request body too large")
        return None

    def _accept(
        self,
        method: bytes,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        connection: bytes,
        expect: bytes | None,
        upgrade: bytes | None,
    ) -> Request:
        # `connection` is ",value" per Connection line. One line of one token (the usual
        # "close", "keep-alive" or "upgrade") skips building a set.
        if not connection:
            tokens: Collection[bytes] = ()
        elif connection.count(b",") == 1:
            tokens = (connection[1:].strip(),)
        else:
            tokens = {token.strip() for token in connection.split(b",")}
        # RFC 9112 §9.3: HTTP/1.1 is persistent by default, HTTP/1.0 only when asked.
        keep_alive = b"close" not in tokens if version == "1.1" else b"keep-alive" in tokens
        request = Request(
            method,
            target,
            version,
            headers,
            keep_alive,
            expect == b"100-continue" and version == "1.1",
            upgrade if b"upgrade" in tokens else None,
        )
        self.request = request
        self.begin_response(method == b"HEAD", version, keep_alive)
        return request

    def error_response(self, status_code: int, default_headers: Iterable[bytes] = ()) -> bytes:
        """A complete response for a refused request, marked ``connection: close``."""
        phrase = HTTPStatus(status_code).phrase.encode()
        return b"".join(
            [
                b"HTTP/1.1 %d %s\r\n" % (status_code, phrase),
                *default_headers,
                b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n",
                b"content-length: %d\r\n\r\n" % len(phrase),
                phrase,
            ]
        )
