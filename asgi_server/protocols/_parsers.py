"""The two request parsers behind the HTTP/1.1 core: h11 (pure Python) and httptools (llhttp).

Both adapters turn bytes into the same raw events and append them to a shared deque; the core
(``http11.py``) then validates heads and enforces every limit the parsers leave to the server, so
that both parsers give the same answers. Neither adapter does I/O.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Protocol

import h11

# Raw events are plain tuples tagged by their first item: they are internal to the core, made
# once per request on the hot path, and a tuple costs a tenth of a frozen dataclass to build.
#   (HEAD, method, target, http_version, headers)   a parsed head, not yet checked
#   (BODY, data)                                      a piece of the de-chunked body
#   (END,)                                            the request is complete
#   (ERROR, status_code, detail)                      the parser refused the bytes
HEAD, BODY, END, ERROR = range(4)
RawEvent = tuple[Any, ...]
RAW_END: RawEvent = (END,)
# A Content-Length line as sent: its value with trailing whitespace, which llhttp refuses.
_CONTENT_LENGTH_VALUE = re.compile(rb"\ncontent-length:[ \t]*([^\r\n]*)(?=\r\n)", re.IGNORECASE)


class RequestParser(Protocol):
    """What the core needs from a parser: bytes in, raw events out, one request at a time."""

    events: deque[RawEvent]

    def feed(self, data: bytes) -> None:
        """Parse ``data``, appending raw events to ``events``."""

    def next_cycle(self) -> None:
        """Start parsing the next pipelined request (after the current one was answered)."""

    def trailing_data(self) -> bytes:
        """Bytes received after an upgrade request, for the protocol that takes over."""

    def close(self) -> None:
        """The connection is gone (or upgraded): release what the parser holds."""


class H11Parser:
    """h11 as a request parser only: a fresh ``h11.Connection`` per request, since we write
    responses ourselves and h11 would otherwise want to see them to advance its state."""

    __slots__ = ("_awaiting_head", "_conn", "_failed", "_head_chunks", "_limit", "events")

    def __init__(self, limit_request_head: int) -> None:
        self.events: deque[RawEvent] = deque()
        self._limit = limit_request_head
        self._conn = self._new_connection()
        self._failed = False
        # The bytes of a head being received, to check what h11 tolerates and llhttp refuses:
        # obs-fold, bare LF, and Content-Length lists and duplicates, which h11 merges (_head).
        self._awaiting_head = True
        self._head_chunks: list[bytes] = []

    def _new_connection(self) -> h11.Connection:
        # h11 counts an incomplete head against max_incomplete_event_size (431 beyond); a complete
        # head that arrives in one read is measured by the core instead.
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self._limit)

    def feed(self, data: bytes) -> None:
        """Hand ``data`` to h11 and collect every event of the current request it yields."""
        if self._failed or not data:  # h11 takes b"" for EOF, then raises on any later byte
            return
        conn = self._conn
        conn.receive_data(data)
        if self._awaiting_head:
            self._head_chunks.append(data)
        events = self.events
        try:
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    events.append((BODY, bytes(event.data)))  # type: ignore[union-attr]
                elif kind is h11.Request:
                    head = self._head(event)  # type: ignore[arg-type]
                    events.append(head)
                    if head[0] == ERROR:
                        self._failed = True
                        return
                elif kind is h11.EndOfMessage:
                    # Stop here: asking h11 for more would make it refuse a pipelined request
                    # after an HTTP/1.0 keep-alive one (its MUST_CLOSE state); next_cycle
                    # hands the bytes to a fresh connection.
                    events.append(RAW_END)
                    return
                else:  # NEED_DATA, PAUSED (request done) or ConnectionClosed
                    return
        except h11.RemoteProtocolError as exc:
            self._failed = True
            status = 431 if exc.error_status_hint == 431 else 400
            events.append((ERROR, status, str(exc)))

    def _head(self, event: h11.Request) -> RawEvent:
        # The version as sent (h11 takes any HTTP/d.d): the core refuses all but 1.0 and 1.1.
        version = "1.1" if event.http_version == b"1.1" else event.http_version.decode()
        # Iterating h11's headers yields lowercased names, as ASGI wants them.
        headers = list(event.headers)
        head = b"".join(self._head_chunks)
        self._awaiting_head = False
        self._head_chunks = []
        end = head.find(b"\r\n\r\n") + 2
        head = head[:end]
        # h11 takes a bare LF as a line end and unfolds obs-fold; llhttp refuses both, and so
        # do we with h11: a proxy in front that reads these differently could smuggle a
        # header past us (RFC 9112 §2.2, §5.2).
        if end < 2 or head.count(b"\n") != head.count(b"\r\n"):
            return (ERROR, 400, "Invalid HTTP request: bare LF; end every line with CRLF")
        if b"\n " in head or b"\n\t" in head:
            return (ERROR, 400, "Invalid HTTP request: obs-fold; send each header on one line")
        lengths = [value for name, value in headers if name == b"content-length"]
        if lengths:
            sent = _CONTENT_LENGTH_VALUE.findall(head)
            if sent != lengths:
                # h11 merged "1, 1" or two equal lines into one: give the core what was sent,
                # so that it refuses these for both parsers (RFC 9112 §6.3).
                headers = [item for item in headers if item[0] != b"content-length"]
                headers += [(b"content-length", value) for value in sent]
        return (HEAD, event.method, event.target, version, headers)

    def next_cycle(self) -> None:
        """Carry the pipelined bytes h11 has buffered over to a fresh connection."""
        leftover, _closed = self._conn.trailing_data
        self._conn = self._new_connection()
        self._awaiting_head = True
        if leftover:
            self.feed(leftover)

    def trailing_data(self) -> bytes:
        """Bytes h11 holds after the (upgrade) request."""
        return bytes(self._conn.trailing_data[0])

    def close(self) -> None:
        """Nothing to release: h11's connection holds no reference back to us."""
        self._failed = True


class HttptoolsParser:
    """httptools (llhttp) as a request parser. llhttp parses eagerly, so events of pipelined
    requests queue up here; the core hands them out one request at a time."""

    __slots__ = (
        "_body_seen",
        "_completed_in_feed",
        "_failed",
        "_head_bytes",
        "_headers",
        "_httptools",
        "_in_head",
        "_limit",
        "_parser",
        "_raw_body_left",
        "_upgrade_tail",
        "_url",
        "events",
    )

    # httptools looks these callbacks up once per parser: a missing attribute costs it an
    # AttributeError raised and cleared, three per connection. None means "not wanted".
    on_message_begin = None
    on_chunk_header = None
    on_chunk_complete = None

    def __init__(self, limit_request_head: int) -> None:
        httptools = _httptools or _import_httptools()
        self._httptools: Any = httptools
        self.events: deque[RawEvent] = deque()
        self._limit = limit_request_head
        self._parser: Any = httptools.HttpRequestParser(self)  # None once closed
        self._failed = False
        self._completed_in_feed = False
        self._reset_head()
        self._upgrade_tail = b""
        self._raw_body_left = 0  # body bytes we pass through without llhttp (see feed)

    def _reset_head(self) -> None:
        self._in_head = True
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body_seen = 0

    def feed(self, data: bytes) -> None:
        """Feed llhttp, converting its errors into an ``ERROR`` event."""
        if self._failed:
            return
        if self._upgrade_tail:  # llhttp stopped at an upgrade; keep the rest for the new owner
            self._upgrade_tail += data
            return
        if self._raw_body_left:
            data = self._pass_body_through(data)
            if not data:
                return
        # llhttp buffers a partial header without telling us, so we count the bytes of a head
        # still incomplete after a read ourselves. A read that ends one request and begins the
        # next is not counted (we cannot tell where the split is): that head is measured
        # exactly once complete, so the bound is off by at most one read, never unbounded.
        self._completed_in_feed = False
        try:
            self._parser.feed_data(data)
        except self._httptools.HttpParserUpgrade as exc:
            self._upgrade_tail = data[exc.args[0] :]
            return
        except self._httptools.HttpParserError as exc:
            self._fail(400, f"Invalid HTTP request: {exc}")
            return
        if self._in_head:
            if not self._completed_in_feed:
                self._head_bytes += len(data)
                if self._head_bytes > self._limit:
                    self._fail(431, "Request head too large")
        else:
            self._raw_body_left = self._content_length_left()

    # A Content-Length body that spans reads skips llhttp: each later read is (up to the end
    # of the body) handed on as it is, instead of being copied once more by llhttp's on_body.
    # This saves a memory copy of every upload; a fresh llhttp parser takes the bytes after it.
    def _content_length_left(self) -> int:
        for name, value in self._headers:
            if name == b"content-length":
                try:
                    return max(int(value) - self._body_seen, 0)
                except ValueError:  # pragma: no cover - llhttp refuses these first
                    return 0
        return 0  # chunked: llhttp de-chunks it

    def _pass_body_through(self, data: bytes) -> bytes:
        """Hand on the body's part of ``data``; return what follows the body."""
        left = self._raw_body_left
        if len(data) < left:
            self._raw_body_left = left - len(data)
            self.events.append((BODY, data))
            return b""
        self._raw_body_left = 0
        self.events.append((BODY, data[:left] if len(data) > left else data))
        self.events.append(RAW_END)
        self._parser = self._httptools.HttpRequestParser(self)
        self._reset_head()
        return data[left:]

    def _fail(self, status: int, detail: str) -> None:
        self._failed = True
        self.events.append((ERROR, status, detail))

    def next_cycle(self) -> None:
        """After an upgrade request answered as plain HTTP, parse what followed it afresh."""
        if self._upgrade_tail:
            tail, self._upgrade_tail = self._upgrade_tail, b""
            self._parser = self._httptools.HttpRequestParser(self)
            self._reset_head()
            self.feed(tail)

    def trailing_data(self) -> bytes:
        """Bytes after the upgrade request."""
        return self._upgrade_tail

    def close(self) -> None:
        """Break the cycle between llhttp's parser and us (it holds our five bound callbacks):
        without this, every connection leaves ten objects to the cyclic GC, whose passes cost a
        `Connection: close` request more than its parsing does."""
        self._failed = True
        self._parser = None  # nothing parses after this: feed() returns at _failed

    # --- llhttp callbacks ---------------------------------------------------------------------
    def on_url(self, url: bytes) -> None:
        """llhttp: a piece of the request target."""
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: one complete header field (trailer fields are dropped, as with h11: the
        request's header list was handed out already)."""
        if self._in_head:
            self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        """llhttp: the head is complete."""
        self._in_head = False
        parser = self._parser
        self.events.append(
            (HEAD, parser.get_method(), self._url, parser.get_http_version(), self._headers)
        )

    def on_body(self, body: bytes) -> None:
        """llhttp: a piece of the (de-chunked) body."""
        self._body_seen += len(body)
        self.events.append((BODY, body))

    def on_message_complete(self) -> None:
        """llhttp: the request is complete; get ready for the next one."""
        self.events.append(RAW_END)
        self._completed_in_feed = True
        # _reset_head(), inlined. Done here rather than in an on_message_begin callback,
        # which would cost one more call from llhttp into Python per request.
        self._in_head = True
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._body_seen = 0


_httptools: Any = None


def _import_httptools() -> Any:
    """Import httptools on first use (an optional speedup): once, not per connection."""
    global _httptools
    import httptools

    _httptools = httptools
    return httptools


def make_parser(name: str, limit_request_head: int) -> RequestParser:
    """Build the parser named ``name`` ('h11' or 'httptools')."""
    if name == "httptools":
        return HttptoolsParser(limit_request_head)
    return H11Parser(limit_request_head)
