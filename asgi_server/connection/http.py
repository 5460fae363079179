"""The HTTP/1.1 connection driver, shared by the asyncio and the Twisted shells.

An ``HttpHandler`` feeds the bytes its shell read to the HTTP/1.1 core (``protocols/http11.py``),
runs one app task per request through a ``RequestCycle`` (``asgi/http.py``), and keeps the
connection's timers (request head, request body, keep-alive) and both flow controls. On a
WebSocket upgrade it hands the connection to a ``WebsocketHandler`` (``connection/websocket.py``)
with the request, the bytes read after its head and the scope it built.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from asgi_server.asgi.http import RequestCycle, build_scope, scope_template
from asgi_server.connection.timers import TICKS_PER_SECOND
from asgi_server.protocols.http11 import (
    PAUSED,
    Body,
    EndOfRequest,
    HTTP11Core,
    Request,
    RequestError,
)

if TYPE_CHECKING:
    from typing import Any

    from asgi_server.connection.base import Connection

# Stop reading once this many request bytes wait for the app (body or pipelined requests).
# One read from uvloop can bring 256 KiB: a lower mark would pause and resume the socket (two
# system calls) on nearly every read of an upload; this one costs a fifth less CPU per upload.
HIGH_WATER = 256 * 1024
# The name of every request's app task (asyncio.current_task().get_name()).
TASK_NAME = "asgi-http-request"
_Task = asyncio.Task


class HttpHandler:
    """HTTP/1.1 over one connection: feeds the core, runs one app task per request, keeps
    the timers (head timeout from accept, body idle timeout while the app waits for the body,
    keep-alive idle timeout) and both flow controls."""

    # Slots: one handler is built per connection, and its instance dict (with ~25 keys) was a
    # visible share of a `Connection: close` request.
    __slots__ = (
        "__weakref__",  # tests and debugging tools keep weak references to connections
        "_awaiting_body",
        "_body_timeout",
        "_closed",
        "_deadline",
        "_deadlines",
        "_drain_waiters",
        "_idle",
        "_keep_alive_timeout",
        "_max_requests",
        "_proxy",
        "_reading_paused",
        "_scope_template",
        "_shutting_down",
        "_started_at",
        "_tick",
        "config",
        "connection",
        "core",
        "cycle",
        "default_headers",
        "logger",
        "loop",
        "state",
        "transport",
        "writing_paused",
    )

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.state = connection.server_state
        self.config = connection.config
        self.logger = connection.logger
        self.loop = connection.loop  # not get_running_loop() again: a getpid() system call
        # A plain attribute, not a property: read once per response. ServerState updates this
        # list in place every second, so it stays current.
        self.default_headers = self.state.default_headers
        self.core = HTTP11Core(self.state.limits)
        self.cycle: RequestCycle | None = None
        self.writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._reading_paused = False
        self._closed = False
        self._shutting_down = False
        self._started_at = 0.0
        # One deadline (head, body or keep-alive) and at most one armed tick of the server's
        # shared timers (connection/timers.py: no loop timer per connection). Moving the
        # deadline costs a clock read; the tick re-arms when it comes before a deadline that
        # moved later.
        self._deadlines = self.state.deadlines
        self._tick = 0  # the tick armed, 0 when none
        self._keep_alive_timeout = self.config.timeout_keep_alive
        self._body_timeout = self.config.timeout_request_body
        self._max_requests = self.config.limit_max_requests
        self._deadline: float | None = None
        self._idle = False  # the deadline is the keep-alive one
        self._awaiting_body = False  # the deadline is the request body's (--timeout-request-body)
        self._set_deadline(self.config.timeout_request_head)  # counted from accept
        # The peer's address is fixed for the connection: decide once whether it may send
        # proxy headers (parsing addresses per request would cost more than the request).
        self._proxy = self.state.trusted_proxy(connection.client)
        self._scope_template = scope_template(
            connection.client,
            connection.server,
            connection.scheme,
            connection.root_path,
            connection.lifespan_state,
        )

    # --- bytes in ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        """Feed the core and act on what it parsed."""
        if self._idle:  # the idle connection speaks again: its head gets timed instead
            self._idle = False
            self._deadline = None
        self.core.receive_data(data)
        self._process_events()
        if self.connection.handler is not self:
            return  # upgraded: the WebSocket handler owns the connection and its timers
        if self.cycle is None and self._deadline is None and not self._closed:
            self._set_deadline(self.config.timeout_request_head)  # the head is incomplete

    def _process_events(self) -> None:
        core = self.core
        while not self._closed:
            event = core.next_event()
            kind = type(event)
            if kind is Body:
                cycle = self.cycle
                if self._awaiting_body:  # the body moves: its idle deadline is met
                    self._awaiting_body = False
                    self._deadline = None
                if cycle is not None:
                    cycle.body_received(event.data)  # type: ignore[union-attr]
                    if cycle.buffered_body > HIGH_WATER:
                        self._pause_reading()
            elif kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
                if self.connection.handler is not self:
                    return  # upgraded: the new handler owns the connection
            elif kind is EndOfRequest:
                if self._awaiting_body:
                    self._awaiting_body = False
                    self._deadline = None
                if self.cycle is not None:
                    self.cycle.request_complete()
                # The core is PAUSED now (its next event would say so): act on that here,
                # which saves a call per request.
                if core.paused_bytes > HIGH_WATER:
                    self._pause_reading()  # too many pipelined bytes wait their turn
                return
            elif kind is RequestError:
                self._on_bad_request(event)  # type: ignore[arg-type]
                return
            else:
                if event is PAUSED and core.paused_bytes > HIGH_WATER:
                    self._pause_reading()  # too many pipelined bytes wait their turn
                return

    def _on_request(self, request: Request) -> None:
        self._deadline = None
        state = self.state
        # Checked before the upgrade too: a WebSocket is a connection and an app task like any.
        limit = self.config.limit_concurrency
        if limit is not None and (len(state.connections) > limit or len(state.tasks) >= limit):
            self._refuse(503, "Service Unavailable: too many connections or tasks")
            return
        connection = self.connection
        scope = build_scope(request, self._scope_template)
        if request.forwarded and self._proxy is not None and connection.client is not None:
            scope["client"], scope["scheme"] = self._proxy.resolve(
                connection.client, connection.scheme, request.headers
            )
        if connection.tls is not None:
            scope["extensions"] = {"tls": connection.tls}
        if (
            request.upgrade is not None
            and b"websocket" in request.upgrade
            and self._upgrade(request, scope)
        ):
            return
        self.cycle = cycle = RequestCycle(
            scope, self.core, self, request.expect_continue, self.logger
        )
        if state.access_log:
            self._started_at = time.monotonic()
        tasks = state.tasks
        loop = self.loop
        coro = cycle.run(connection.app, tasks)
        if loop.get_task_factory() is None:
            # What create_task() does, with a name given: an unnamed Task formats "Task-<n>"
            # (a sprintf per request).
            task = _Task(coro, loop=loop, name=TASK_NAME)
        else:
            task = loop.create_task(coro)
        cycle.task = task
        tasks.add(task)

    def _upgrade(self, request: Request, scope: dict[str, Any]) -> bool:
        if not self.config.ws:
            return False
        # Imported here: wsproto's import costs a server that never sees a WebSocket ~20 ms.
        from asgi_server.connection.websocket import WebsocketHandler

        handler = WebsocketHandler(self.connection, request, scope, self.core.trailing_data())
        self.connection.set_handler(handler)
        self.core.close()
        # Leave the shared ticks: an armed one would keep this handler, its core and parser
        # alive (~2 KiB per WebSocket) until the head timeout's tick came.
        self._cancel_timer()
        return True

    def _on_bad_request(self, error: RequestError) -> None:
        if self.cycle is not None and self.core.response_started:
            self.logger.info("Closing the connection: %s", error.detail)
            self._close()
            return
        if self.cycle is not None:
            self.cycle.disconnected()  # the app stops waiting for a body that will not come
            self.cycle = None
        self._refuse(error.status_code, error.detail)

    def _refuse(self, status_code: int, detail: str) -> None:
        self.logger.debug("Refusing a request with %d: %s", status_code, detail)
        lines = [line for _, line in self.state.default_headers]
        self.transport.write(self.core.error_response(status_code, lines))
        self._close()

    # --- the ResponseSink side (called by the request cycle) ---------------------------------
    def write(self, data: bytes) -> None:
        """Write response bytes."""
        if not self._closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the peer reads slowly (the transport paused our writing)."""
        if self.writing_paused and not self._closed:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def body_consumed(self) -> None:
        """The app read the buffered body: read more."""
        if self._reading_paused and self.core.paused_bytes <= HIGH_WATER:
            self._reading_paused = False
            self.transport.resume_reading()

    def body_wanted(self) -> None:
        """The app waits in receive() for more of the body: time the wait."""
        self._awaiting_body = True
        self._set_deadline(self._body_timeout)

    def abort(self) -> None:
        """The response cannot be completed: close without pretending otherwise."""
        self._close()

    def response_complete(self, cycle: RequestCycle) -> None:
        """Log the response, then keep the connection for the next request or close it."""
        state = self.state
        core = self.core
        if state.access_log:
            state.log_access(cycle.scope, core.status_code, self._started_at)
        # Counted here rather than in a ServerState method: once per request, and with the other
        # inlined bookkeeping it saved ~0.5 us per request (benchmarks/README.md, "What changed").
        state.total_requests += 1
        if self._max_requests is not None and state.total_requests >= self._max_requests:
            state.max_requests_reached = True
        if self.cycle is cycle:
            self.cycle = None
        if not core.keep_alive or not cycle.request_is_complete or self._shutting_down:
            self._close()
            return
        if core.start_next_cycle():  # a pipelined request is waiting
            # Read again only once the backlog is answered: a client that pipelines faster
            # than we answer would otherwise grow it without bound, one read per response.
            if self._reading_paused and core.paused_bytes <= HIGH_WATER:
                self._reading_paused = False
                self.transport.resume_reading()
            self._process_events()
            if self.cycle is not None or self._closed:
                return
        elif self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        # Idle until the next request: the keep-alive deadline. The timer armed earlier almost
        # always fires before it, and re-arms then: no timer call per request.
        self._idle = True
        self._set_deadline(self._keep_alive_timeout)

    # --- lifecycle -----------------------------------------------------------------------------
    def eof_received(self) -> bool | None:
        """The client half-closed: we take it as gone and close too, as nginx and Go do. A
        client that closes shows us the same EOF first, and an app waiting for a long poll
        must hear http.disconnect then, not at its next write."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell the app (http.disconnect) and release anyone waiting to write."""
        self._closed = True
        self._cancel_timer()
        self.core.close()  # the parser and llhttp refer to each other: free both now
        if self.cycle is not None:
            self.cycle.disconnected()
            self.cycle = None  # the cycle refers back to us: no reference cycle left behind
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def pause_writing(self) -> None:
        """The peer reads slowly: make the app's send() wait."""
        self.writing_paused = True

    def resume_writing(self) -> None:
        """The peer caught up: release the app's send()."""
        self.writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle between requests, else after the current
        response (on a fresh connection: after its first one)."""
        self._shutting_down = True
        if self.cycle is None and self._idle:
            self._close()
        elif self.cycle is None:
            # Accepted, no request parsed yet: its first request may already be on the wire,
            # and closing would reset it (a failed request during a rolling restart). Serve
            # it, giving the peer at most the keep-alive timeout to send it.
            self._set_deadline(
                min(self.config.timeout_keep_alive, self.config.timeout_request_head)
            )
        else:
            self.core.keep_alive = False

    def _set_deadline(self, seconds: float) -> None:
        deadline = self._deadline = self.loop.time() + seconds
        tick = self._tick
        if not tick or tick > deadline * TICKS_PER_SECOND + 1:
            self._arm_timer(deadline)

    def _arm_timer(self, when: float) -> None:
        """Arm the connection's one tick for ``when`` (re-arm if it was armed for later)."""
        if self._tick:
            self._deadlines.disarm(self, self._tick)
        self._tick = self._deadlines.arm(self.loop, self, when)

    def on_tick(self) -> None:
        """The armed tick came (``Deadlines``): enforce the deadline, or re-arm for it."""
        self._tick = 0
        deadline = self._deadline
        if deadline is None or self._closed:
            return
        if self.loop.time() < deadline:  # the deadline moved since the timer was armed
            self._arm_timer(deadline)
        elif self.cycle is None:  # head or keep-alive timeout: close (RFC 9112 §9.5)
            self._close()
        elif self._awaiting_body:
            self._body_timed_out()

    def _body_timed_out(self) -> None:
        """The app waited --timeout-request-body for the next piece of the body: 408 (RFC 9110
        §15.5.9), or close if its response began; either way the connection's slot is freed."""
        self._awaiting_body = False
        started = self.core.response_started
        self.logger.info(
            "No request body for %s s (--timeout-request-body): %s",
            self._body_timeout,
            "closing the connection" if started else "answering 408",
        )
        if started:
            self._close()  # connection_lost tells the app (http.disconnect)
        else:
            self._on_bad_request(RequestError(408, "Request body timed out"))

    def _cancel_timer(self) -> None:
        self._deadline = None
        if self._tick:
            self._deadlines.disarm(self, self._tick)
            self._tick = 0

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._closed:
            self._reading_paused = True
            self.transport.pause_reading()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cancel_timer()
            self.transport.close()
