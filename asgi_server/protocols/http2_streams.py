"""The HTTP/2 core's events, its per-stream state, and the checks on request and response heads."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

from asgi_server.protocols._response import ResponseError

if TYPE_CHECKING:
    from asgi_server.protocols.http2 import H2Limits

__all__ = ["ResponseError"]

Headers = list[tuple[bytes, bytes]]


# --- events ------------------------------------------------------------------------------------
@dataclass(slots=True)
class Request:
    """A request head that passed every check: the fields ``asgi.http.build_scope`` reads.

    ``headers`` are lowercased, without pseudo-headers, ``:authority`` first as ``host`` and
    the cookie fields joined into one (RFC 9113 §8.2.3), as the ASGI spec asks.
    """

    stream_id: int
    method: bytes
    target: bytes
    scheme: bytes
    headers: Headers
    http_version: str = "2"
    forwarded: bool = False  # X-Forwarded-For or -Proto is present
    protocol: bytes | None = None  # extended CONNECT's :protocol (RFC 8441): b"websocket"


@dataclass(frozen=True, slots=True)
class Body:
    """A piece of a stream's request body; call ``body_consumed`` once the app has read it."""

    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfRequest:
    """The stream's request body is complete."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The stream ended before its response did (the peer reset it, or a limit was crossed):
    its app hears ``http.disconnect``, and its sends raise."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class StreamWritable:
    """The stream's queued response bytes have all gone out: its app may send again."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The core answered a request itself, with ``status_code`` (over a limit), or reset its
    stream with PROTOCOL_ERROR when ``malformed`` (RFC 9113 §8.1.1). For the log."""

    stream_id: int
    status_code: int
    detail: str
    malformed: bool = False


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """The peer opens no more streams (RFC 9113 §6.8): close once those in flight are done."""

    last_stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """The connection ended for an error; GOAWAY(error_code) is queued: write it, then close."""

    error_code: int
    detail: str


Event = (
    Request
    | Body
    | EndOfRequest
    | StreamReset
    | StreamWritable
    | RequestRefused
    | GoAwayReceived
    | ConnectionFailed
)


class StreamGone(Exception):
    """The app sent on a stream that has ended (reset, refused or failed): like a client gone."""


# --- per-stream state --------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class Stream:
    """What the core keeps per stream, from its request head until it is closed and its app is
    done (then nothing is kept; h2 keeps a bounded record of closed stream ids)."""

    stream_id: int
    head_request: bool = False
    request_ended: bool = False
    received: int = 0  # request body bytes, for the body limit
    unread: int = 0  # body bytes handed out but not yet consumed (their window is still shut)
    response_started: bool = False
    status_code: int = 0
    no_body: bool = False
    length_left: int | None = None  # the response's Content-Length, counting down
    expect_trailers: bool = False
    trailers: Headers | None = None
    pending: bytearray = field(default_factory=bytearray)  # body bytes waiting for window
    body_done: bool = False
    sent_end: bool = False
    blocked: bool = False
    response_ended: bool = False
    refused: bool = False  # answered by the core itself
    closed: bool = False
    app_done: bool = False
    tunnel: bool = False  # extended CONNECT: DATA carries WebSocket frames, no body limit


# --- request heads -----------------------------------------------------------------------------
# RFC 9113 §8.2.1: a name has no CTL, SP, uppercase, DEL, non-ASCII byte or colon (a
# pseudo-header's leading one aside); a value no NUL, CR or LF and no SP or HTAB at either end.
# As for HTTP/1.1 (RFC 9110 §5.5), values with the other CTLs, DEL or NEL are refused too.
_BAD_NAME = re.compile(rb"[^\x21-\x39\x3b-\x40\x5b-\x7e]").search
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f\x85]|\A[ \t]|[ \t]\Z").search
_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority", b":protocol"))
_FORWARDED = frozenset((b"x-forwarded-for", b"x-forwarded-proto"))


def _malformed(stream_id: int, detail: str) -> RequestRefused:
    return RequestRefused(stream_id, 400, detail, malformed=True)


def check_request(
    stream_id: int, raw: Iterable[tuple[bytes, bytes]], limits: H2Limits
) -> Request | RequestRefused:
    """Check a decoded header list (RFC 9113 §8.2, §8.3.1) and the limits, in one pass.

    We check the fields ourselves rather than through h2's validation, which runs every field
    through seven generators and looks at every byte in Python: a third of a small request.
    """
    pseudo: dict[bytes, bytes] = {}
    headers: Headers = []
    cookies: list[bytes] = []
    host: bytes | None = None
    size = 0
    forwarded = False
    for name, value in raw:
        if name[:1] == b":":
            if headers or cookies or host is not None or name in pseudo or name not in _PSEUDO:
                return _malformed(stream_id, f"Pseudo-header {name!r} repeated, late or unknown")
            pseudo[name] = value
            continue
        if not name or _BAD_NAME(name) is not None or _BAD_VALUE(value) is not None:
            return _malformed(stream_id, f"Invalid request header {name!r}")
        if name in CONNECTION_SPECIFIC or (name == b"te" and value.lower() != b"trailers"):
            return _malformed(stream_id, f"Connection-specific header {name!r}")  # §8.2.2
        size += len(name) + len(value) + 4  # measured as its HTTP/1.1 line would be
        if name == b"cookie":
            cookies.append(value)
        elif name == b"host":
            if host is not None:
                return _malformed(stream_id, "Two Host headers")
            host = value
        else:
            headers.append((name, value))
            forwarded = forwarded or name in _FORWARDED
    error = _check_pseudo(stream_id, pseudo, host)
    if error is not None:
        return error
    method, target = pseudo[b":method"], pseudo[b":path"]
    if len(headers) + len(cookies) + (host is not None) > limits.limit_request_headers:
        return RequestRefused(stream_id, 431, "Too many request headers")
    if size + len(method) + len(target) > limits.limit_request_head:
        return RequestRefused(stream_id, 431, "Request head too large")
    if len(target) > limits.limit_request_line:
        return RequestRefused(stream_id, 414, "Request target too long")
    if target[:1] != b"/" and not (target == b"*" and method == b"OPTIONS"):
        return RequestRefused(stream_id, 400, "Invalid :path; send a path such as /index.html")
    error = _check_content_length(stream_id, headers, limits)
    if error is not None:
        return error
    if cookies:  # RFC 9113 §8.2.3: one field for HTTP/1.1-minded apps
        headers.append((b"cookie", b"; ".join(cookies)))
    authority = pseudo.get(b":authority", host)
    if authority is not None:  # ASGI: :authority as the host header, first
        headers.insert(0, (b"host", authority))
    protocol = pseudo.get(b":protocol")
    return Request(stream_id, method, target, pseudo[b":scheme"], headers, "2", forwarded, protocol)


def _check_pseudo(
    stream_id: int, pseudo: dict[bytes, bytes], host: bytes | None
) -> RequestRefused | None:
    """RFC 9113 §8.3.1: :method, :scheme and a non-empty :path, and an authority; CONNECT only
    as RFC 8441's extended CONNECT for WebSocket, :protocol on nothing else."""
    method = pseudo.get(b":method")
    protocol = pseudo.get(b":protocol")
    if method == b"CONNECT":
        if protocol is None:  # RFC 9113 §8.5: a TCP tunnel, which we do not offer
            return RequestRefused(stream_id, 501, "CONNECT is not supported")
        if protocol != b"websocket":
            return RequestRefused(stream_id, 501, "Extended CONNECT serves websocket only")
        if pseudo.get(b":authority") is None:  # RFC 8441 §4
            return _malformed(stream_id, "An extended CONNECT needs :authority")
    elif protocol is not None:
        return _malformed(stream_id, ":protocol is for extended CONNECT only")
    if not method or not pseudo.get(b":scheme") or not pseudo.get(b":path"):
        return _malformed(stream_id, "A request needs :method, :scheme and :path")
    authority = pseudo.get(b":authority")
    if authority is None and host is None:
        return _malformed(stream_id, "A request needs :authority or Host")
    if authority is not None and host is not None and host != authority:
        return _malformed(stream_id, "Host differs from :authority")
    return None


def _check_content_length(
    stream_id: int, headers: Headers, limits: H2Limits
) -> RequestRefused | None:
    limit = limits.limit_request_body
    if limit is None:
        return None
    for name, value in headers:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return RequestRefused(stream_id, 413, "Request body too large")
    return None


def error_body(status_code: int) -> bytes:
    """The body of a response the core sends itself: the status's phrase."""
    return HTTPStatus(status_code).phrase.encode()


# --- response heads ----------------------------------------------------------------------------
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_BAD_RESPONSE_VALUE = re.compile(rb"[\x00\r\n]").search
# RFC 9113 §8.2.2: connection-specific fields are not sent in HTTP/2; an app written for
# HTTP/1.1 may still set them, so they are dropped rather than refused.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


_SPACE = (b" ", b"\t")


def check_field(name: bytes, value: bytes) -> bytes:
    """Check a response header or trailer; return its lowercased name (HTTP/2 wants it)."""
    if _TOKEN(name) is None:
        raise ResponseError(f"Invalid response header name {name!r}; a name must be a token.")
    if _BAD_RESPONSE_VALUE(value) is not None:
        raise ResponseError(
            f"Invalid response header {name!r}: {value!r}; values must not contain CR, LF or NUL."
        )
    return name.lower()


def response_headers(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    default_headers: Iterable[tuple[bytes, bytes]],
    stream: Stream,
) -> Headers:
    """The HEADERS of a response: ``:status``, the app's fields checked, the server's defaults
    where the app set none. Records a Content-Length on ``stream`` to hold the body to it."""
    if not 100 <= status <= 599:
        raise ResponseError(f"Invalid status code {status}; use an integer from 100 to 599.")
    out: Headers = [(b":status", b"%d" % status)]
    names = set()
    for name, value in headers:
        lowered = check_field(name, value)
        if lowered in CONNECTION_SPECIFIC:
            continue
        if value[:1] in _SPACE or value[-1:] in _SPACE:  # RFC 9113 §8.2.1: none at either end
            value = value.strip(b" \t")
        if lowered == b"content-length":
            if not value.isdigit() or stream.length_left is not None:
                raise ResponseError(f"Invalid Content-Length {value!r} in the response.")
            if not stream.no_body:
                stream.length_left = int(value)
        names.add(lowered)
        out.append((lowered, value))
    for name, value in default_headers:
        if name not in names:
            out.append((name, value))
    return out
