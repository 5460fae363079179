"""The wsgi path type: any WSGI application (Django, Flask) behind ASGI, in the thread pool.

The WSGI call runs in the event loop's default executor (the server's thread pool). Both bodies
stream: ``wsgi.input`` pulls request body chunks from ASGI ``receive()`` as the application reads
(never past Content-Length, never a receive() after the last chunk), and each response chunk is
handed to ASGI ``send()`` and waited for, so a slow client holds the WSGI thread rather than
memory. A client that disconnects makes the next write raise in the WSGI thread, which stops the
iteration and calls the iterable's ``close()``.

Why our own and not asgiref's ``WsgiToAsgi`` or a2wsgi: ``WsgiToAsgi`` reads the whole request
body into a temporary file before calling the app (no request streaming). a2wsgi streams both
ways through a bounded queue, but when the client disconnects its sender task stops while the
WSGI thread keeps putting into the full queue: the thread and the request hang for good (tested in
``tests/web/test_wsgi.py::test_disconnect_mid_response_frees_the_thread``). It also runs its own
thread pool and reads a process-wide SCRIPT_NAME environment variable.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from ..base import Receive, Scope, Send
from ._http import refuse_websocket

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class WsgiInput:
    """``wsgi.input``: a file-like reader over ASGI ``receive()``, called from the WSGI thread."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, receive: Receive, content_length: int | None
    ) -> None:
        self._loop = loop
        self._receive = receive
        self._remaining = content_length  # None: read until the last chunk (chunked encoding)
        self._buffer = bytearray()
        self._done = content_length == 0

    def _pull(self) -> bool:
        """Fetch one more chunk into the buffer; False once the body is over."""
        if self._done:
            return False
        future = asyncio.run_coroutine_threadsafe(_call(self._receive), self._loop)
        message = future.result()
        if message["type"] != "http.request":
            self._done = True  # http.disconnect: what we have is all there will be
            return False
        chunk: bytes = message.get("body", b"")
        if self._remaining is not None:
            chunk = chunk[: self._remaining]  # the server enforces it too; never trust twice
            self._remaining -= len(chunk)
        self._buffer.extend(chunk)
        if not message.get("more_body", False) or self._remaining == 0:
            self._done = True
        return True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative or None)."""
        if size is None or size < 0:
            while self._pull():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._pull():
            pass
        return self._take(size)

    def readline(self, limit: int | None = -1) -> bytes:
        """One line, including its newline (at most ``limit`` bytes when positive)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                size = end + 1
                break
            if (limit is not None and 0 <= limit <= len(self._buffer)) or not self._pull():
                size = len(self._buffer)
                break
        if limit is not None and limit >= 0:
            size = min(size, limit)
        return self._take(size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The remaining lines."""
        return list(self)

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


async def _call(function: Callable[[], Awaitable[Any]]) -> Any:
    return await function()


def build_environ(scope: Scope, body: WsgiInput) -> dict[str, Any]:
    """The PEP 3333 environ for an ASGI HTTP scope: SCRIPT_NAME is ``root_path`` (the mount
    point), PATH_INFO the rest; strings are UTF-8 bytes decoded as latin-1, as PEP 3333 says."""
    root_path: str = scope.get("root_path", "")
    path: str = scope["path"]
    path_info = path[len(root_path) :] if root_path and path.startswith(root_path) else path
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode().decode("latin-1"),
        "PATH_INFO": path_info.encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "asgi.scope": scope,
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_LENGTH", "CONTENT_TYPE"):
            name = "HTTP_" + name
        value = raw_value.decode("latin-1")
        environ[name] = f"{environ[name]},{value}" if name in environ else value
    return environ


class _Response:
    """The WSGI side of one response: start_response, write(), and the sends to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self.loop = loop
        self.send = send
        self.start: dict[str, Any] | None = None
        self.started = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        if self.start is not None and exc_info is None:
            raise RuntimeError("start_response() called twice without exc_info")
        self.start = {
            "type": "http.response.start",
            "status": int(status.split(" ", 1)[0]),
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
            ],
        }
        return self.write

    def _emit(self, message: dict[str, Any]) -> None:
        # Waits until the server took the message: flow control reaches the WSGI thread here.
        asyncio.run_coroutine_threadsafe(_call(lambda: self.send(message)), self.loop).result()

    def write(self, data: bytes) -> None:
        """Send a body chunk (also the legacy ``write()`` callable)."""
        if not data:
            return
        self._send_start()
        self._emit({"type": "http.response.body", "body": bytes(data), "more_body": True})

    def _send_start(self) -> None:
        if self.started:
            return
        if self.start is None:
            raise RuntimeError("the WSGI application sent a body before calling start_response()")
        self.started = True
        self._emit(self.start)

    def run(self, app: WSGIApplication, environ: dict[str, Any]) -> None:
        """Call the app and send its response (in a worker thread)."""
        iterable = app(environ, self.start_response)
        if isinstance(iterable, (list, tuple)) and self.start is not None:
            # A whole body in hand: say its length rather than chunking it (as Django's
            # HttpResponse and most Flask views answer).
            names = {name for name, _ in self.start["headers"]}
            if b"content-length" not in names:
                length = b"%d" % sum(len(chunk) for chunk in iterable)
                self.start["headers"].append((b"content-length", length))
        try:
            for chunk in iterable:
                self.write(chunk)
            self._send_start()
            self._emit({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()


class WsgiApp:
    """ASGI app running ``application`` (a WSGI callable); ``path("app/", WsgiApp(wsgi))``."""

    #: URLRouter treats this app as a mount point: SCRIPT_NAME is the prefix it matched.
    _path_routing = True

    def __init__(self, application: WSGIApplication) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request (WebSocket handshakes are refused; lifespan is acknowledged)."""
        if scope["type"] == "websocket":
            await refuse_websocket(receive, send)
            return
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        loop = asyncio.get_running_loop()
        length = _content_length(scope)
        environ = build_environ(scope, WsgiInput(loop, receive, length))
        response = _Response(loop, send)
        # OSError: the client went away mid-response; the iterable has been closed.
        with contextlib.suppress(OSError):
            await loop.run_in_executor(None, response.run, self.application, environ)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        kind = message["type"].removeprefix("lifespan.")
        await send({"type": f"lifespan.{kind}.complete"})
        if kind == "shutdown":
            return
