"""The rules of a consumer's life, and the loop that runs concurrent handlers.

What every consumer loop guarantees (the default one-at-a-time loop is
:class:`consumers.serial_loop.SerialLoop`; :class:`Dispatcher` below runs
``max_concurrent_handlers`` >= 2):

- Sources. A consumer reads two sources: its client (the ASGI ``receive()``) and its layer
  channel. The client is read ahead into a bounded holding queue (``CLIENT_READ_AHEAD``), so that
  its disconnect, queued behind the messages it sent before leaving, is noticed while a handler is
  stuck (channels#1119). The layer has at most one message waiting; past these bounds a slow
  consumer pushes back on the server and the layer. The two sources take turns, as in Channels.
- Ordering. Handlers start in arrival order. At most ``max_concurrent_handlers`` run at once, and
  two messages with the same ordering key (``handler_order_key``) never overlap, so each key's
  messages are handled one after another in arrival order.
- The disconnect barrier. The client's disconnect is handled after every earlier handler has
  finished, and nothing starts after it; the consumer's groups are left just before it.
- ``disconnect_timeout``. Once the client is gone (its disconnect read, or a send refused),
  handlers still running that many seconds later are cancelled with a WARNING showing where they
  were stuck, messages waiting behind them are dropped, and disconnect() still runs exactly once
  (made up with code 1006 when the server never delivered the disconnect).
- A handler's StopConsumer ends the consumer; an OSError from a send to a vanished client is
  expected and only logged at DEBUG; any other exception propagates after everything is cancelled.

Here, each held message joins the scheduling only when the one before it from the same source has
started, so reading ahead does not let the client jump ahead of the layer.
"""

from __future__ import annotations

import asyncio
import contextvars
import linecache
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("consumers")

#: Client messages read while handlers run (a bound on memory per connection).
CLIENT_READ_AHEAD = 16

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]

#: True inside the task that handles the client's disconnect message: there a send to the gone
#: client is dropped quietly (closing an already closed socket is a common, harmless habit).
in_disconnect_handler: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "in_disconnect_handler", default=False
)


@dataclass
class _Pending:
    """A message read from a source and waiting for a handler slot."""

    seq: int
    source: str
    message: Message
    key: Hashable | None
    is_disconnect: bool


class Dispatcher:
    """Runs one consumer's handlers for messages from its client and its layer channel."""

    def __init__(
        self,
        *,
        label: str,
        sources: dict[str, Receive],
        handle: Callable[[Message, bool, bool], Awaitable[None]],
        order_key: Callable[[Message, str], Hashable | None],
        max_concurrent: int,
        disconnect_timeout: float,
        scope_type: str,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"{label}: max_concurrent_handlers must be 1 or more")
        self._label = label
        self._sources = sources
        self._handle = handle
        self._order_key = order_key
        self._max_concurrent = max_concurrent
        self._disconnect_timeout = disconnect_timeout
        self._scope_type = scope_type
        self._readers: dict[asyncio.Task[Message], str] = {}
        self._buffer: list[_Pending] = []  # at most one per source
        self._held: deque[Message] = deque()  # client messages read ahead, in order
        self._running: dict[asyncio.Future[None], _Pending] = {}
        self._busy_keys: set[Hashable] = set()
        self._seq = 0
        self._deadline: float | None = None
        self._disconnect_seen = False
        self._stopping = False
        #: True once the client is known to be gone (its disconnect message, or a failed send).
        self.client_gone = False

    def note_send_failed(self) -> None:
        """The server refused a send: the client is gone even if its disconnect is not read yet."""
        self.client_gone = True
        self._start_deadline()

    async def run(self) -> None:
        """Dispatch messages until a handler raises StopConsumer or the client's disconnect is
        handled. A handler's unexpected exception propagates after everything is cancelled."""
        try:
            for source in self._sources:
                self._arm(source)
            while not self._stopping:
                self._start_ready()
                waitables: set[asyncio.Future[Any]] = {*self._readers, *self._running}
                if self._stopping or not waitables:
                    break
                timeout = None
                if self._deadline is not None:
                    timeout = max(0.0, self._deadline - asyncio.get_running_loop().time())
                done, _ = await asyncio.wait(
                    waitables, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    self._deadline_passed()
                for task in done:
                    if task in self._readers:
                        self._on_message(self._readers.pop(task), task.result())
                    elif task in self._running:
                        self._on_handler_done(task)

        finally:
            await self._cancel_all()

    # --- reading -----------------------------------------------------------------------------

    def _arm(self, source: str) -> None:
        """Start reading the next message of ``source`` unless enough are waiting already."""
        if self._stopping or self._disconnect_seen or source in self._readers.values():
            return
        waiting = sum(p.source == source for p in self._buffer)
        if source == "client":
            waiting += len(self._held)
        if waiting >= (CLIENT_READ_AHEAD if source == "client" else 1):
            return
        task = asyncio.ensure_future(self._sources[source]())
        self._readers[task] = source

    def _on_message(self, source: str, message: Message) -> None:
        if source == "client" and message.get("type") == self._disconnect_type:
            self._disconnect_seen = True
            self.client_gone = True
            self._start_deadline()
            self._stop_reading()
        if source == "client" and (self._held or any(p.source == "client" for p in self._buffer)):
            self._held.append(message)  # joins the scheduling when the one before it starts
        else:
            self._enqueue(source, message)
        self._arm(source)

    def _enqueue(self, source: str, message: Message) -> None:
        """Make ``message`` a candidate for a handler, ordered after everything enqueued so far."""
        self._seq += 1
        is_disconnect = source == "client" and message.get("type") == self._disconnect_type
        key = None if is_disconnect else self._order_key(message, source)
        self._buffer.append(_Pending(self._seq, source, message, key, is_disconnect))

    @property
    def _disconnect_type(self) -> str:
        return f"{self._scope_type}.disconnect"

    def _stop_reading(self) -> None:
        for task in self._readers:
            task.cancel()
        self._readers.clear()

    # --- running handlers ----------------------------------------------------------------------

    def _start_ready(self) -> None:
        """Start buffered messages in arrival order, as slots and ordering keys allow."""
        for pending in list(self._buffer):
            if len(self._running) >= self._max_concurrent:
                return
            if pending.is_disconnect:
                if not self._running:
                    self._start(pending)
                return  # a barrier: nothing after it starts, nothing starts beside it
            if pending.key is not None and pending.key in self._busy_keys:
                continue
            self._start(pending)

    def _start(self, pending: _Pending) -> None:
        self._buffer.remove(pending)
        task = asyncio.ensure_future(self._run_handler(pending))
        self._running[task] = pending
        if pending.key is not None:
            self._busy_keys.add(pending.key)
        if pending.source == "client" and self._held:
            self._enqueue("client", self._held.popleft())
        self._arm(pending.source)

    async def _run_handler(self, pending: _Pending) -> None:
        if pending.is_disconnect:
            in_disconnect_handler.set(True)  # this task runs in its own copy of the context
        await self._handle(pending.message, pending.is_disconnect, pending.source == "layer")

    def _on_handler_done(self, task: asyncio.Future[Any]) -> None:
        pending = self._running.pop(task)
        self._busy_keys.discard(pending.key)
        if pending.is_disconnect:
            self._stopping = True
        if task.cancelled():
            return  # cancelled by us at the disconnect deadline; already reported
        exc = task.exception()
        if exc is None:
            return
        from .exceptions import StopConsumer

        if isinstance(exc, StopConsumer):
            self._stopping = True
        elif isinstance(exc, OSError) and self.client_gone:
            # A send loop that met the vanished client: expected, and disconnect() still runs.
            logger.debug("%s: handler ended because the client is gone: %r", self._label, exc)
        else:
            raise exc

    # --- the end of a connection -----------------------------------------------------------

    def _start_deadline(self) -> None:
        if self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.time() + self._disconnect_timeout

    def _deadline_passed(self) -> None:
        """Cancel handlers still running ``disconnect_timeout`` after the client left (#1119).

        Messages that were waiting behind them are dropped: the consumer is already overdue, and
        each could take another timeout. Only the disconnect is still handled.
        """
        held = [*(p.message for p in self._buffer), *self._held]
        overdue = [m for m in held if m.get("type") != self._disconnect_type]
        if overdue:
            warn_overdue(self._label, overdue)
        self._buffer = [p for p in self._buffer if p.is_disconnect]
        if self._held and self._held[-1].get("type") == self._disconnect_type:
            self._enqueue("client", self._held[-1])  # nothing is read after a disconnect
        self._held.clear()
        for task, pending in self._running.items():
            warn_stuck(self._label, self._disconnect_timeout, pending.message, task)
            task.cancel()
        if not self._disconnect_seen:
            # The server refused a send but never delivered the disconnect: make one up, so
            # disconnect() still runs exactly once (after the cancelled handlers have ended).
            self._on_message("client", {"type": self._disconnect_type, "code": 1006})
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self._disconnect_timeout

    async def _cancel_all(self) -> None:
        tasks: list[asyncio.Future[Any]] = [*self._readers, *self._running]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._readers.clear()
        self._running.clear()


def warn_overdue(label: str, overdue: list[Message]) -> None:
    """Log the messages a consumer drops because it is overdue after its client disconnected."""
    logger.warning(
        "%s: dropping %d unhandled message(s) (%s) because it is overdue after its "
        "client disconnected",
        label,
        len(overdue),
        ", ".join(sorted({str(m.get("type")) for m in overdue})),
    )


def warn_stuck(label: str, timeout: float, message: Message, task: asyncio.Future[Any]) -> None:
    """Log a handler still running ``timeout`` seconds after its client disconnected, and where
    it is stuck (it is about to be cancelled)."""
    logger.warning(
        "%s did not finish %.3gs after its client disconnected; cancelling its handler "
        "for %r, stuck at:\n%s\nMake handlers return once the client is gone, or raise "
        "the consumer's disconnect_timeout.",
        label,
        timeout,
        message.get("type"),
        "\n".join("  " + line for line in describe_await_chain(task)),
    )


def describe_await_chain(task: asyncio.Future[Any]) -> list[str]:
    """Return 'File ..., line N, in func: source' for each coroutine ``task`` is awaiting through,
    outermost first; the last line is where it is blocked."""
    lines: list[str] = []
    current: Any = task.get_coro() if isinstance(task, asyncio.Task) else task
    for _ in range(100):  # bound the walk: an await chain is never this deep in practice
        if isinstance(current, asyncio.Task):
            current = current.get_coro()
        frame = getattr(current, "cr_frame", None) or getattr(current, "gi_frame", None)
        if frame is None:
            if isinstance(current, asyncio.Future):
                lines.append(f"waiting on {current!r}")
            break
        code = frame.f_code
        source = linecache.getline(code.co_filename, frame.f_lineno).strip()
        lines.append(
            f'File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}: {source}'
        )
        current = getattr(current, "cr_await", None) or getattr(current, "gi_yieldfrom", None)
    return lines
