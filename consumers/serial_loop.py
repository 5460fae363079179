"""The default consumer loop (``max_concurrent_handlers = 1``): one handler at a time, no task per
message.

The rules are those of :mod:`consumers.lifecycle` (arrival order, the client read ahead so that
its disconnect is seen during a long handler, the disconnect as a barrier, ``disconnect_timeout``),
run with no task per message, and no task at all beyond the application's own while idle:

- the application's own task reads the client: each message goes into a bounded queue
  (``CLIENT_READ_AHEAD``), so a disconnect is noticed at once, whatever a handler is doing;
- a worker task awaits the handlers directly, one after another, and takes the consumer's layer
  messages itself whenever it is the layer's turn. It exists only while there is work: a client
  message, or the layer's ``receive_ready()`` future (armed while the consumer is idle) completing,
  starts one, and it ends when nothing waits. Every worker runs in one shared context, so what a
  handler sets in a context variable is still seen by the next handler.
- a worker that has handled a layer message *lingers*: instead of ending, it waits on a future
  of its own that the layer's readiness, a client message or the disconnect completes, so the
  next message reaches its handler with no task to create (a busy chat room's consumer gets one
  every few milliseconds), and nothing is cancelled to wake it. One timer per event loop
  (``LINGER_PERIOD``) ends the workers that lingered a whole period: a consumer that stops getting
  messages is back to no worker within two periods.

Turns: after a client message, if more client messages wait, the worker handles a layer message
next when the layer's readiness says one waits, so a client backlog cannot starve layer events;
the two sources alternate as they do in Channels' loop.

A layer without ``receive_ready()`` (a third-party backend; also any layer during an outage) is
read as before: the worker waits in the layer's ``receive()`` (so an idle consumer has two tasks),
and a client message that arrives meanwhile interrupts that wait: the layer contract makes
``receive()`` cancel-safe (a cancelled receive loses no message), so the wait is simply cancelled
and started again later; with client messages waiting, it looks at the layer for one loop
iteration only. The same interruption covers a readiness that completed early (an expired
message, a pub/sub subscription still to make): ``receive()`` then waits, interruptibly.

An idle consumer is therefore the application's task waiting in ``receive()`` plus the layer's
readiness future: no other task, no timer of its own, no per-message allocation beyond the message
and the worker task of each burst of work after an idle period.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from .exceptions import StopConsumer
from .lifecycle import (
    CLIENT_READ_AHEAD,
    in_disconnect_handler,
    logger,
    warn_overdue,
    warn_stuck,
)

Message = dict[str, Any]

#: Seconds a worker lingers on the layer's readiness after a layer message: it ends after one to
#: two of them without a message (it is a timer's period, shared by the loop's consumers).
LINGER_PERIOD = 0.25


class _Lingering:
    """The lingering workers of one event loop, and the one timer that ends those that waited a
    whole period: a consumer costs no timer of its own, and a sweep is one check per consumer."""

    # No reference to the loop (the key of _lingering), not even through the timer's handle.
    __slots__ = ("armed", "period", "serials")

    def __init__(self) -> None:
        self.period = 0  # counts the sweeps
        self.serials: set[SerialLoop] = set()
        self.armed = False  # the sweep's timer is pending

    def add(self, serial: SerialLoop, loop: asyncio.AbstractEventLoop) -> None:
        serial._linger_period = self.period
        self.serials.add(serial)
        if not self.armed:
            self.armed = True
            loop.call_later(LINGER_PERIOD, self._sweep)

    def _sweep(self) -> None:
        self.armed = False
        for serial in list(self.serials):
            wake = serial._wake
            if wake is None or wake.done():
                self.serials.discard(serial)  # working, or ended: it adds itself again
            elif serial._linger_period < self.period:  # lingered since before the last sweep
                self.serials.discard(serial)
                wake.set_result(False)
        self.period += 1
        if self.serials:
            self.armed = True
            asyncio.get_running_loop().call_later(LINGER_PERIOD, self._sweep)


_lingering: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lingering] = (
    weakref.WeakKeyDictionary()
)


class SerialLoop:
    """Runs one consumer's handlers one at a time for its client and its layer channel."""

    __slots__ = (
        "_app_task",
        "_client",
        "_context",
        "_deadline",
        "_deadline_cancel",
        "_disconnect_seen",
        "_disconnect_type",
        "_handle",
        "_interrupted",
        "_label",
        "_layer_ready",
        "_layer_receive",
        "_linger_period",
        "_lingering",
        "_polls",
        "_reader_interrupted",
        "_reading",
        "_ready",
        "_receive",
        "_running",
        "_space",
        "_stopping",
        "_timeout",
        "_waiting_layer",
        "_wake",
        "_worker",
        "client_gone",
    )

    def __init__(
        self,
        *,
        label: Callable[[], str],
        receive: Callable[[], Awaitable[Message]],
        layer_receive: Callable[[], Awaitable[Message]] | None,
        handle: Callable[[Message, bool, bool], Awaitable[None]],
        disconnect_timeout: float,
        scope_type: str,
        layer_ready: Callable[[], asyncio.Future[None] | None] | None = None,
    ) -> None:
        self._label = label
        self._receive = receive
        self._layer_receive = layer_receive
        # The layer's receive_ready() for our channel (None: wait in receive() instead).
        self._layer_ready = layer_ready
        self._handle = handle
        self._timeout = disconnect_timeout
        self._disconnect_type = f"{scope_type}.disconnect"  # made once, compared per message
        # Read, not yet started, in arrival order. A list (at most CLIENT_READ_AHEAD long): an
        # empty deque costs 700 bytes more per idle consumer.
        self._client: list[Message] = []
        self._app_task: asyncio.Task[Any] | None = None
        # The worker while it runs; after it ended the consumer (stop, error) it stays here.
        self._worker: asyncio.Task[None] | None = None
        self._context: contextvars.Context | None = None  # every worker runs in this one
        self._ready: asyncio.Future[None] | None = None  # the layer's readiness, while armed
        self._wake: asyncio.Future[bool] | None = None  # while the worker lingers
        self._lingering: _Lingering | None = None  # the loop's, once a worker lingered
        self._linger_period = 0  # the sweep during which the worker last began to linger
        self._space: asyncio.Future[None] | None = None  # the reader waits for queue space
        self._deadline: asyncio.TimerHandle | None = None
        self._reading = False  # the application task is in the client's receive()
        self._waiting_layer = 0  # nonzero while the worker waits on the layer (a poll's id)
        self._polls = 0  # numbers each look at the layer, so a late end-of-poll is ignored
        # We cancelled a wait ourselves (not a real cancellation): the worker's, the reader's.
        self._interrupted = False
        self._reader_interrupted = False
        self._deadline_cancel = False  # we cancelled the running handler at the deadline
        self._running: Message | None = None
        self._disconnect_seen = False
        self._stopping = False
        #: True once the client is known to be gone (its disconnect message, or a failed send).
        self.client_gone = False

    def note_send_failed(self) -> None:
        """The server refused a send: the client is gone even if its disconnect is not read yet."""
        self.client_gone = True
        self._start_deadline()

    async def run(self) -> None:
        """Read the client until it disconnects, while workers run the handlers; return when
        the consumer stops (StopConsumer, or the disconnect handled). A handler's unexpected
        exception propagates after everything is cancelled."""
        self._app_task = asyncio.current_task()
        # One context for all the workers: what a handler sets is seen by the next handler, as
        # when one long-lived task ran them all.
        self._context = contextvars.copy_context()
        try:
            if self._layer_receive is not None:
                self._kick()  # look at the layer once: a message may wait already
            await self._read_client()
            while (worker := self._worker) is not None:
                await worker  # raises what ended the consumer
                if self._worker is worker:
                    break  # it ended the consumer
        finally:
            # No worker may start after this (a readiness callback already scheduled would).
            self._stopping = True
            if self._deadline is not None:
                self._deadline.cancel()
            worker = self._worker
            if worker is not None and not worker.done():
                worker.cancel()
                await asyncio.wait((worker,))
            if self._ready is not None:
                self._ready.cancel()  # the layer lets go of our channel's wait
                self._ready = None
            if self._lingering is not None:
                self._lingering.serials.discard(self)

    def _ended(self) -> bool:
        worker = self._worker
        return worker is not None and worker.done()

    # --- the application task: reading the client ------------------------------------------

    async def _read_client(self) -> None:
        task = self._app_task
        assert task is not None
        while not self._disconnect_seen and not self._ended():
            try:
                if len(self._client) >= CLIENT_READ_AHEAD:
                    self._space = asyncio.get_running_loop().create_future()
                    await self._space
                    continue
                self._reading = True
                message = await self._receive()
            except asyncio.CancelledError:
                if not self._reader_interrupted or task.uncancel() > 0:
                    raise
                self._reader_interrupted = False
                continue  # the worker ended, or the deadline made up a disconnect
            finally:
                self._reading = False
                self._space = None
            self._deliver(message)

    def _deliver(self, message: Message) -> None:
        """Queue a client message for the worker (starting one, or interrupting its layer wait)."""
        if message.get("type") == self._disconnect_type:
            self._disconnect_seen = True
            self.client_gone = True
            self._start_deadline()
        self._client.append(message)
        if self._worker is None:
            self._kick()
        elif self._wake_worker():
            pass  # it lingered: it takes the message now
        elif self._waiting_layer and not self._interrupted:
            self._interrupt_worker()

    def _kick(self) -> None:
        """Start a worker: there is work, and none is running."""
        if self._worker is None and not self._stopping:
            app_task = self._app_task
            assert app_task is not None
            # The loop from the task: get_running_loop() is a getpid() call before Python 3.12.
            loop = app_task.get_loop()
            self._worker = loop.create_task(self._work(), context=self._context)

    def _interrupt_worker(self) -> None:
        worker = self._worker
        if worker is not None and not worker.done():
            self._interrupted = True
            worker.cancel()

    def _interrupt_reader(self) -> None:
        task = self._app_task
        reading = self._reading or self._space is not None
        if reading and task is not None and not self._reader_interrupted:
            self._reader_interrupted = True
            task.cancel()

    # --- the workers: running handlers ----------------------------------------------------

    async def _work(self) -> None:
        """Run handlers while there is work; end when there is none (the next client message or
        the layer's readiness starts another worker), so that an idle consumer has no worker."""
        layer_turn = False
        linger = False  # after a layer message; not once a sweep ended the lingering
        try:
            while not self._stopping:
                can_read_layer = self._layer_receive is not None and not self._disconnect_seen
                if self._client and not (layer_turn and can_read_layer):
                    message = self._client.pop(0)
                    if self._space is not None and not self._space.done():
                        self._space.set_result(None)
                    layer_turn = True
                    await self._run(message, from_layer=False)
                    continue
                layer_turn = False
                ready = self._layer_state() if can_read_layer else False
                if ready is False:
                    if self._client:
                        continue
                    if linger and can_read_layer and self._ready is not None:
                        linger = await self._linger()
                        continue
                    self._worker = None  # idle: this task ends
                    return
                layer_message = await self._read_layer(poll=ready is None and bool(self._client))
                if layer_message is not None:
                    linger = True
                    await self._run(layer_message, from_layer=True)
        finally:
            # Still the worker: it ended the consumer (stop, error). Stop reading the client,
            # nobody would handle it (the reader resumes after this task is done).
            if self._worker is not None:
                self._interrupt_reader()

    def _layer_state(self) -> bool | None:
        """True when the layer has a message for us, False when it has none (and will start a
        worker when one comes), None when it cannot tell (then the worker waits in receive())."""
        ready = self._ready
        if ready is None:
            make = self._layer_ready
            ready = make() if make is not None else None
            if ready is None:
                return None
            if not ready.done():
                ready.add_done_callback(self._on_layer_ready)
                self._ready = ready
                return False
        elif not ready.done():
            return False
        self._ready = None
        if not ready.cancelled():
            ready.exception()  # an outage: receive() reports it (and waits it out)
        return True

    async def _linger(self) -> bool:
        """Wait in this worker for more work (the layer's readiness, a client message): True
        when some came, False when the loop's sweep found the consumer idle for a whole period
        (the worker should end)."""
        worker, lingering = self._worker, self._lingering
        assert worker is not None
        loop = worker.get_loop()
        if lingering is None:
            lingering = _lingering.get(loop)
            if lingering is None:
                lingering = _lingering[loop] = _Lingering()
            self._lingering = lingering
        lingering.add(self, loop)
        wake: asyncio.Future[bool] = loop.create_future()
        self._wake = wake
        try:
            woken: bool = await wake
        finally:
            self._wake = None
        return woken

    def _wake_worker(self) -> bool:
        """Wake a lingering worker (True), or say that none lingers (False)."""
        wake = self._wake
        if wake is None:
            return False
        if not wake.done():
            wake.set_result(True)
        return True

    def _on_layer_ready(self, ready: asyncio.Future[None]) -> None:
        if ready is not self._ready:
            return
        wake = self._wake  # _wake_worker(), inlined: this runs once per layer message
        if wake is not None:
            if not wake.done():
                wake.set_result(True)
        elif self._worker is None:
            self._kick()

    async def _read_layer(self, *, poll: bool) -> Message | None:
        """The next layer message, or None when a client message (or, for a poll, one loop
        iteration) interrupted the wait; cancelling the layer's receive() loses nothing."""
        assert self._layer_receive is not None and self._worker is not None
        if poll:
            self._polls += 1
            self._waiting_layer = self._polls
            asyncio.get_running_loop().call_soon(self._end_poll, self._polls)
        else:
            self._waiting_layer = -1
        try:
            return await self._layer_receive()
        except asyncio.CancelledError:
            if not self._interrupted or self._worker.uncancel() > 0:
                raise
            return None
        finally:
            self._waiting_layer = 0
            self._interrupted = False

    def _end_poll(self, poll_id: int) -> None:
        if self._waiting_layer == poll_id and not self._interrupted:
            self._interrupt_worker()

    async def _run(self, message: Message, *, from_layer: bool) -> None:
        is_disconnect = message.get("type") == self._disconnect_type
        token = in_disconnect_handler.set(True) if is_disconnect else None
        self._running = message
        try:
            await self._handle(message, is_disconnect, from_layer)
        except asyncio.CancelledError:
            assert self._worker is not None
            if not self._deadline_cancel or self._worker.uncancel() > 0:
                raise
        except StopConsumer:
            self._stopping = True
        except OSError as exc:
            if not self.client_gone:
                raise
            # A send loop that met the vanished client: expected, and disconnect() still runs.
            logger.debug("%s: handler ended because the client is gone: %r", self._label(), exc)
        finally:
            self._running = None
            self._deadline_cancel = False
            if token is not None:
                in_disconnect_handler.reset(token)
        if is_disconnect:
            self._stopping = True

    # --- the end of a connection -------------------------------------------------------------

    def _start_deadline(self) -> None:
        if self._deadline is None:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._timeout, self._deadline_passed)

    def _deadline_passed(self) -> None:
        """Cancel a handler still running ``disconnect_timeout`` after the client left (#1119);
        drop what waited behind it (only the disconnect is still handled)."""
        disconnect_type = self._disconnect_type
        overdue = [m for m in self._client if m.get("type") != disconnect_type]
        if overdue:
            warn_overdue(self._label(), overdue)
            kept = [m for m in self._client if m.get("type") == disconnect_type]
            self._client.clear()
            self._client.extend(kept)
        running, worker = self._running, self._worker
        if running is not None and worker is not None and not self._deadline_cancel:
            warn_stuck(self._label(), self._timeout, running, worker)
            self._deadline_cancel = True
            worker.cancel()
        if not self._disconnect_seen:
            # The server refused a send but never delivered the disconnect: make one up, so
            # disconnect() still runs exactly once, and stop reading the client.
            self._deliver({"type": disconnect_type, "code": 1006})
            self._interrupt_reader()
        self._deadline = asyncio.get_running_loop().call_later(self._timeout, self._deadline_passed)
