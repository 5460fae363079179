"""AsyncConsumer and SyncConsumer: dispatch by message type, layer wiring, groups, as_asgi().

A consumer is one ASGI application instance per connection. Each message it gets (from the
client, or from its channel-layer channel) is handed to the method named after the message's
type: ``"chat.message"`` goes to ``chat_message(message)``, as in Django Channels.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any, ClassVar

from asgiref.sync import async_to_sync, markcoroutinefunction

from channel_layers.base import LayerUnavailable

from .exceptions import ClientDisconnected, InvalidChannelLayerError, NoHandlerError, StopConsumer
from .layer_link import leave_outage, membership_view, receive_through_outages
from .lifecycle import Dispatcher, in_disconnect_handler
from .serial_loop import SerialLoop
from .sync import database_sync_to_async

if TYPE_CHECKING:
    from channel_layers import BaseChannelLayer

__all__ = ["ASGIApp", "AsyncConsumer", "Message", "Receive", "Scope", "Send", "SyncConsumer"]

logger = logging.getLogger("consumers")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_reported_unhandled: set[tuple[type[Any], str]] = set()


def _report_unhandled(consumer_class: type[Any], message: Message, exc: NoHandlerError) -> None:
    """Log a dropped layer message once per consumer class and message type."""
    key = (consumer_class, str(message.get("type")))
    if key not in _reported_unhandled:
        _reported_unhandled.add(key)
        logger.error(
            "%s; dropped this layer message (and will drop further ones of this type without "
            "logging again), the connection stays open. Set raise_on_unhandled_layer_message = "
            "True to end the consumer instead, as Channels does",
            exc,
        )


# Message type -> handler name, for the types already checked: a consumer handles the same few
# types over and over. Bounded, as an application could make types up (say, one per room).
_handler_names: dict[str, str] = {}
_HANDLER_NAMES_MAX = 1024


def get_handler_name(message: Message) -> str:
    """The method name for a message: its ``type`` with dots turned into underscores."""
    message_type = message.get("type")
    if type(message_type) is str:
        known = _handler_names.get(message_type)
        if known is not None:
            return known
    if not isinstance(message_type, str):
        raise ValueError(f"Incoming message has no string 'type' key: {message!r}")
    name = message_type.replace(".", "_")
    # Checked after the dots became underscores: ".x" must not reach a private method "_x"
    # either (Channels issue #1430). The wording starts as Channels' does, for code matching it.
    if name.startswith("_"):
        raise ValueError(
            f"Malformed type in message (leading underscore): {message_type!r} would name the "
            f"private method {name!r}; rename the type"
        )
    if type(message_type) is str:
        if len(_handler_names) >= _HANDLER_NAMES_MAX:
            _handler_names.clear()
        _handler_names[message_type] = name
    return name


class AsyncConsumer:
    """The base consumer: one instance per connection, handlers are ``async def`` methods.

    Class attributes (each can also be passed to ``as_asgi()``):

    - ``channel_layer_alias``: the layer to use (None for none); ``channel_layer`` and
      ``channel_name`` are set from it before the first message.
    - ``groups``: layer groups the consumer joins when it starts and leaves at disconnect.
    - ``disconnect_timeout``: seconds the consumer may run on after its client disconnected;
      then its handlers are cancelled, with a WARNING that shows where they were stuck.
    - ``max_concurrent_handlers``: how many handlers may run at once (1 = one at a time, as in
      Channels). See ``handler_order_key`` for what may overlap.
    - ``raise_on_unhandled_layer_message``: False (the default) drops a layer message whose type
      has no handler, with an ERROR logged once per consumer class and type, and the connection
      stays open; True raises NoHandlerError and ends the consumer, as Channels does (one bad
      group_send then closes every member of the group). A client message without a handler
      always raises.
    """

    _sync: ClassVar[bool] = False
    channel_layer_alias: str | None = "default"
    groups: list[str] | None = None
    disconnect_timeout: float = 10.0
    max_concurrent_handlers: int = 1
    raise_on_unhandled_layer_message: bool = False

    scope: Scope
    channel_layer: BaseChannelLayer | None
    channel_name: str | None
    # Class-level defaults, not per-instance attributes: an idle consumer holds only what differs.
    _joined_groups: tuple[str, ...] = ()  # joined from ``groups``, left at disconnect
    _memberships: tuple[str, ...] = ()  # every group this channel is in (re-added after outages)
    _accepted = False  # a websocket.accept was sent
    _layer_retry_at = 0.0  # during a layer outage: when to try again (see layer_link)
    _layer_retry_delay = 0.0
    _dispatcher: Dispatcher | SerialLoop | None = None
    _raw_send: Send | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.groups = list(self.groups or ())  # a copy: never share the class's list
        self.channel_layer = None
        self.channel_name = None

    @property
    def channel_receive(self) -> Receive | None:
        """A callable returning the next message of this consumer's channel (as in Channels)."""
        if self.channel_layer is None or self.channel_name is None:
            return None
        return functools.partial(self.channel_layer.receive, self.channel_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the consumer for one connection (the ASGI application instance)."""
        self.scope = scope
        self._raw_send = send
        layer = self._load_channel_layer()
        if layer is not None:
            self.channel_layer = membership_view(layer, self)
            self.channel_name = await layer.new_channel()
        loop = self._dispatcher = self._make_loop(receive, str(scope.get("type", "")))
        try:
            try:
                await self._join_groups()
            except LayerUnavailable as exc:
                await self._refuse(exc)
                return
            await loop.run()
        finally:
            leave_outage(self, str(self.channel_layer_alias), recovered=False)
            await self._leave_groups()

    def _make_loop(self, receive: Receive, scope_type: str) -> Dispatcher | SerialLoop:
        """The default one-at-a-time loop, or the general one for concurrent handlers."""
        layer_receive = self._receive_layer if self.channel_layer is not None else None
        if self.max_concurrent_handlers == 1:
            return SerialLoop(
                label=self._label,
                receive=receive,
                layer_receive=layer_receive,
                handle=self._handle,
                disconnect_timeout=self.disconnect_timeout,
                scope_type=scope_type,
                layer_ready=self._layer_ready if layer_receive is not None else None,
            )
        sources: dict[str, Receive] = {"client": receive}
        if layer_receive is not None:
            sources["layer"] = layer_receive
        return Dispatcher(
            label=self._label(),
            sources=sources,
            handle=self._handle,
            order_key=self.handler_order_key,
            max_concurrent=self.max_concurrent_handlers,
            disconnect_timeout=self.disconnect_timeout,
            scope_type=scope_type,
        )

    def _receive_layer(self) -> Awaitable[Message]:
        """The next message of this consumer's layer channel, waiting out layer outages."""
        assert self.channel_layer is not None and self.channel_name is not None
        alias = str(self.channel_layer_alias)
        # The coroutine itself, not one awaiting it: a frame fewer per layer message.
        return receive_through_outages(self.channel_layer, self.channel_name, self, alias)

    def _layer_ready(self) -> asyncio.Future[None] | None:
        """The layer's readiness for this consumer's channel; None during an outage (then the
        loop waits in :meth:`_receive_layer`, which retries) or when the layer cannot tell."""
        if self._layer_retry_at:
            return None
        assert self.channel_layer is not None and self.channel_name is not None
        return self.channel_layer.receive_ready(self.channel_name)

    async def _refuse(self, exc: LayerUnavailable) -> None:
        """Turn a connection away because the layer it needs is down: one log line, and a 503
        (or a close, where the server cannot send a response or the socket was accepted)."""
        logger.warning(
            "%s: refused the connection: channel layer %r unavailable (%s)",
            self._label(),
            self.channel_layer_alias,
            exc,
        )
        if self.scope.get("type") != "websocket" or self._raw_send is None:
            return
        extensions = self.scope.get("extensions") or {}
        if not self._accepted and "websocket.http.response" in extensions:
            body = b"The channel layer is unavailable; retry shortly.\n"
            headers = [(b"content-type", b"text/plain"), (b"retry-after", b"2")]
            await self._raw_send(
                {"type": "websocket.http.response.start", "status": 503, "headers": headers}
            )
            await self._raw_send({"type": "websocket.http.response.body", "body": body})
        else:
            reason = "channel layer unavailable"
            await self._raw_send({"type": "websocket.close", "code": 1011, "reason": reason})

    def _label(self) -> str:
        where = self.scope.get("path") or self.scope.get("channel") or ""
        return f"{type(self).__qualname__} ({self.scope.get('type')} {where})".replace(" )", ")")

    def _load_channel_layer(self) -> BaseChannelLayer | None:
        if not self.channel_layer_alias:
            return None
        from channel_layers import get_channel_layer

        return get_channel_layer(self.channel_layer_alias)

    # --- ordering of concurrent handlers -------------------------------------------------------

    def handler_order_key(self, message: Message, source: str) -> Hashable | None:
        """Messages with equal keys are handled one after another, in arrival order.

        ``source`` is "client" or "layer". The default key is the source: with
        ``max_concurrent_handlers`` >= 2 a slow client message does not hold up layer events
        (and back), while each stream stays in order. Return None to let a message overlap with
        anything, or a finer key (say, ``message["room"]``) for per-room order.
        """
        return source

    # --- dispatch ------------------------------------------------------------------------------

    async def _handle(self, message: Message, is_disconnect: bool, from_layer: bool) -> None:
        if is_disconnect:
            await self._leave_groups()  # before disconnect(), as Channels does
        try:
            if type(self).dispatch is _base_dispatch and "dispatch" not in self.__dict__:
                # What AsyncConsumer.dispatch() does, without its coroutine: a frame fewer per
                # message. Checked each time, so a dispatch() set or patched in (on the class or
                # the instance, even later) is still called.
                await self.get_handler(message)(message)
            else:
                await self.dispatch(message)
        except NoHandlerError as exc:
            if not from_layer or self.raise_on_unhandled_layer_message:
                raise
            _report_unhandled(type(self), message, exc)
        except LayerUnavailable as exc:
            if message.get("type") == "websocket.connect":
                await self._refuse(exc)
                raise StopConsumer() from exc
            # One line, no traceback: the connection outlives the outage, this message does not.
            logger.error(
                "%s: the handler for %r failed: channel layer %r unavailable (%s); the "
                "message is dropped and the connection stays open",
                self._label(),
                message.get("type"),
                self.channel_layer_alias,
                exc,
            )

    async def dispatch(self, message: Message) -> None:
        """Call the handler method for ``message``'s type."""
        await self.get_handler(message)(message)

    def get_handler(self, message: Message) -> Callable[[Message], Any]:
        """The bound method that handles ``message``, or NoHandlerError naming what to define."""
        name = get_handler_name(message)
        handler = getattr(self, name, None)
        if handler is None or not callable(handler):
            raise NoHandlerError(
                f"{type(self).__qualname__} has no handler for message type "
                f"{message['type']!r}: define a method named {name!r} on it "
                f"({'def' if self._sync else 'async def'} {name}(self, message)), "
                "or fix the message's 'type'"
            )
        return handler  # type: ignore[no-any-return]

    # --- sending -------------------------------------------------------------------------------

    async def base_send(self, message: Message) -> None:
        """Send an ASGI message to the client; ClientDisconnected once the client is gone."""
        dispatcher = self._dispatcher
        if self._raw_send is None or dispatcher is None:
            raise RuntimeError("send() was called before the consumer was started by ASGI")
        if dispatcher.client_gone:
            if in_disconnect_handler.get():
                logger.debug("%s: dropped a send after disconnect: %r", self._label(), message)
                return
            raise ClientDisconnected(
                f"{self._label()}: the client has disconnected; stop sending to it"
            )
        if message.get("type") == "websocket.accept":
            self._accepted = True
        try:
            await self._raw_send(message)
        except OSError:
            dispatcher.note_send_failed()
            raise

    async def send(self, message: Message) -> None:
        """Send an ASGI message (a dict with a ``type``) to the client."""
        await self.base_send(message)

    # --- groups ------------------------------------------------------------------------------

    def _require_groups_layer(self) -> BaseChannelLayer:
        layer = self.channel_layer
        if layer is None or "groups" not in getattr(layer, "extensions", ()):
            raise InvalidChannelLayerError(
                f"{type(self).__qualname__}.groups is {self.groups!r}, which needs a channel "
                "layer with groups: configure one (channel_layers.configure(...) or Django's "
                "CHANNEL_LAYERS), or set channel_layer_alias"
            )
        return layer

    async def _join_groups(self) -> None:
        if not self.groups:
            return
        layer = self._require_groups_layer()
        assert self.channel_name is not None
        for group in self.groups:
            await layer.group_add(group, self.channel_name)
            self._joined_groups += (group,)

    async def _leave_groups(self) -> None:
        """Discard every joined group; idempotent, bounded, and it never raises (a cleanup)."""
        layer, joined = self.channel_layer, self._joined_groups
        self._joined_groups = ()
        if layer is None or self.channel_name is None:
            return
        for group in joined:
            try:
                async with asyncio.timeout(self.disconnect_timeout):
                    await layer.group_discard(group, self.channel_name)
            except Exception:
                logger.warning("%s could not leave group %r", self._label(), group, exc_info=True)

    # --- ASGI entry point ------------------------------------------------------------------

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ASGIApp:
        """An ASGI application that runs a fresh ``cls(**initkwargs)`` for each connection."""
        for key in initkwargs:
            if not hasattr(cls, key):
                raise TypeError(
                    f"{cls.__qualname__}.as_asgi() got {key!r}, which is not an attribute of "
                    f"{cls.__qualname__}; define it on the class first"
                )
        limit = initkwargs.get("max_concurrent_handlers", cls.max_concurrent_handlers)
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"{cls.__qualname__}: max_concurrent_handlers must be 1 or more")

        @markcoroutinefunction
        def app(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            # The consumer's own coroutine, not one awaiting it: a connection then holds no
            # frame of this wrapper for its whole life (~300 bytes per idle WebSocket).
            return cls(**initkwargs)(scope, receive, send)

        app.consumer_class = cls  # type: ignore[attr-defined]
        app.consumer_initkwargs = initkwargs  # type: ignore[attr-defined]
        app.__name__ = app.__qualname__ = cls.__qualname__
        app.__doc__ = cls.__doc__
        return app


_base_dispatch = AsyncConsumer.dispatch


class SyncConsumer(AsyncConsumer):
    """A consumer whose handlers are plain ``def`` methods, run in a worker thread.

    Handlers run through asgiref's ``sync_to_async(thread_sensitive=True)`` (closing stale
    Django database connections around each when Django is set up), so they all share one
    thread, as in Channels: ``max_concurrent_handlers`` above 1 does not make them overlap.
    """

    _sync = True

    async def dispatch(self, message: Message) -> None:
        """Run the handler for ``message`` in the sync worker thread."""
        handler = self.get_handler(message)
        await database_sync_to_async(handler)(message)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI message to the client, from a sync handler (Channels' signature)."""
        async_to_sync(self.base_send)(message)
