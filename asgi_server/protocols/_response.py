"""Response serialization for the HTTP/1.1 core: framing, keep-alive, and the app's mistakes.

We write the response head ourselves (a join of byte strings) rather than through a parser
library: it is the hot path, and the rules are few. The app's headers are checked so that a
value cannot split the response (RFC 9112 §2.2), and a body that contradicts its own
Content-Length raises ``ResponseError`` before a corrupt byte is produced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus

_BAD_VALUE = re.compile(rb"[\x00\r\n]").search
# Response header names seen before, already checked, mapped to their lowercase form.
_NAME_CACHE: dict[bytes, bytes] = {}
# Response header values seen before and found clean. Most responses repeat their values
# (content types, cache policies), and a set lookup costs a quarter of a regex search.
_CLEAN_VALUES: set[bytes] = set()
_CACHE_SIZE = 1024  # bounded: values made per response (dates, ids) stop being cached
# Response headers whose value the writer itself reads.
_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection"))
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_STATUS_LINES: dict[int, bytes] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
    for status in HTTPStatus
}

# Framing modes of the response body.
_LENGTH, _CHUNKED, _UNTIL_CLOSE, _NO_BODY = range(4)

DefaultHeaders = Iterable[tuple[bytes, bytes]]  # (lowercased name, full "name: value\r\n" line)


class ResponseError(Exception):
    """The application broke an HTTP rule (bad header, wrong body length): the response cannot
    be completed, so the transport logs this and closes the connection."""


def status_line(status: int) -> bytes:
    """The status line for ``status`` (any integer 100-599)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 599:
            raise ResponseError(f"Invalid status code {status}; use an integer from 100 to 599.")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def _check_name(name: bytes) -> bytes:
    """Check a header name (RFC 9110 §5.1: a token) and return it lowercased."""
    if _TOKEN(name) is None:
        raise ResponseError(
            f"Invalid response header name {name!r}; a header name must be a token (letters,"
            " digits and !#$%&'*+-.^_`|~)."
        )
    lowered = name.lower()
    if len(_NAME_CACHE) < 512:  # bounded: apps that invent names per response get no cache
        _NAME_CACHE[name] = lowered
    return lowered


def _check_value(name: bytes, value: bytes) -> None:
    """Refuse a header value that would split the response (RFC 9112 §2.2: CR, LF, NUL)."""
    if _BAD_VALUE(value) is not None:
        raise ResponseError(
            f"Invalid response header {name!r}: {value!r}; values must not contain CR,"
            " LF or NUL (that would split the response)."
        )
    if len(_CLEAN_VALUES) < _CACHE_SIZE and type(value) is bytes:
        _CLEAN_VALUES.add(value)


class ResponseWriter:
    """The response half of an HTTP/1.1 connection: head, body framing, completion."""

    # Slots: one writer (with its core) is built per connection, and a dict per instance is
    # a visible share of a connection that carries a single request.
    __slots__ = (
        "_head_request",
        "_http_version",
        "_mode",
        "_remaining",
        "bytes_sent",
        "keep_alive",
        "response_complete",
        "response_started",
        "status_code",
    )

    def __init__(self) -> None:
        self._head_request = False
        self._http_version = "1.1"
        self.keep_alive = True
        self.reset_response()

    def reset_response(self) -> None:
        """Forget the previous response (a new request cycle begins)."""
        self.response_started = False
        self.response_complete = False
        self.status_code = 0
        self.bytes_sent = 0
        self._mode = _LENGTH
        self._remaining = 0

    def begin_response(self, head_request: bool, http_version: str, keep_alive: bool) -> None:
        """Record what the response must honour: HEAD, the peer's version, keep-alive."""
        self._head_request = head_request
        self._http_version = http_version
        self.keep_alive = keep_alive

    def continue_response(self) -> bytes:
        """The interim ``100 Continue`` (RFC 9110 §10.1.1), or nothing once a response began."""
        return b"" if self.response_started else b"HTTP/1.1 100 Continue\r\n\r\n"

    def start_response(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        body: bytes,
        more_body: bool,
        default_headers: DefaultHeaders = (),
    ) -> bytes:
        """Serialize the head plus the first body chunk (possibly the whole response)."""
        # Longer than our usual 40 lines on purpose: this runs once per response, and splitting
        # it into helpers measurably costs throughput (each call is a visible share of it).
        head = [_STATUS_LINES.get(status) or status_line(status)]
        content_length: int | None = None
        names: set[bytes] = set()
        clean = _CLEAN_VALUES
        for name, value in headers:
            lowered = _NAME_CACHE.get(name) or _check_name(name)
            if value not in clean:
                _check_value(name, value)
            if lowered in _FRAMING:
                if lowered == b"content-length":
                    if not value.isdigit() or content_length is not None:  # ASCII digits only
                        raise ResponseError(f"Invalid Content-Length {value!r} in the response.")
                    content_length = int(value)
                elif lowered == b"transfer-encoding":
                    continue  # we frame the body ourselves
                elif b"close" in value.lower():  # connection: close
                    self.keep_alive = False
            names.add(lowered)
            head += (name, b": ", value, b"\r\n")
        for name, line in default_headers:
            if name not in names:
                head.append(line)
        if content_length is not None and status >= 200 and status not in (204, 304):
            if self._head_request:
                self._mode = _NO_BODY
            else:  # the app framed its body itself: the common case, decided inline
                self._mode = _LENGTH
                self._remaining = content_length
        else:
            self._choose_framing(status, content_length, body, more_body, head)
        if not self.keep_alive and b"connection" not in names:
            head.append(b"connection: close\r\n")
        elif self.keep_alive and self._http_version == "1.0":
            head.append(b"connection: keep-alive\r\n")
        head.append(b"\r\n")
        self.response_started = True
        self.status_code = status
        if not more_body and self._mode == _LENGTH and self._remaining == len(body):
            # The whole response at once (the common case): one join, no second pass.
            self._remaining = 0
            self.bytes_sent = len(body)
            self.response_complete = True
            head.append(body)
            return b"".join(head)
        return b"".join(head) + self.send_body(body, more_body)

    def _choose_framing(
        self,
        status: int,
        content_length: int | None,
        body: bytes,
        more_body: bool,
        lines: list[bytes],
    ) -> None:
        # RFC 9110 §6.4.1: 1xx, 204 and 304 have no body; a HEAD response only describes one.
        if status < 200 or status in (204, 304) or self._head_request:
            self._mode = _NO_BODY
            if content_length is None and self._head_request and not more_body and body:
                lines.append(b"content-length: %d\r\n" % len(body))
        elif content_length is not None:
            self._mode = _LENGTH
            self._remaining = content_length
        elif not more_body:  # the whole body is here: frame it with a length
            self._mode = _LENGTH
            self._remaining = len(body)
            lines.append(b"content-length: %d\r\n" % len(body))
        elif self._http_version == "1.1":
            self._mode = _CHUNKED
            lines.append(b"transfer-encoding: chunked\r\n")
        else:  # HTTP/1.0 cannot chunk: the end of the body is the end of the connection
            self._mode = _UNTIL_CLOSE
            self.keep_alive = False

    def send_body(self, body: bytes, more_body: bool) -> bytes:
        """Frame one body chunk; ``more_body=False`` completes the response."""
        if self.response_complete:
            raise ResponseError("The response is already complete; send nothing after it.")
        mode = self._mode
        if mode == _LENGTH:
            self._remaining -= len(body)
            if self._remaining < 0:
                raise ResponseError(
                    "The app sent more body bytes than its Content-Length header announced."
                )
            if not more_body and self._remaining:
                raise ResponseError(
                    f"The app completed the response {self._remaining} bytes short of its"
                    " Content-Length header."
                )
            out = body
        elif mode == _CHUNKED:
            out = b"%x\r\n%s\r\n" % (len(body), body) if body else b""
            if not more_body:
                out += b"0\r\n\r\n"
        elif mode == _NO_BODY:
            out = b""
        else:
            out = body
        self.bytes_sent += len(body)
        if not more_body:
            self.response_complete = True
        return out
