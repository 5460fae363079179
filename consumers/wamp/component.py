"""In-process components: Python code that joins a realm as a session, without a socket.

A ``ComponentSession`` is an ordinary ``Session`` whose peer hands messages to Python objects
instead of a WebSocket, so components follow exactly the routing rules remote clients do. Messages
go in and out as objects (nothing is serialized). Because the router is synchronous inside its event
loop, REGISTER, SUBSCRIBE and an acknowledged PUBLISH are answered before the method returns;
only CALL waits (for its callee). Handlers may be coroutine functions or plain functions; plain
ones run in the thread pool through asgiref's ``sync_to_async(thread_sensitive=False)``: plain
procedures side by side, plain event and progress handlers one at a time per component, in the
order the router delivered their messages (WAMP orders a subscriber's events).
Everything here must run in the router's event loop (see ``publish_sync`` for other threads).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from autobahn.wamp import exception as _exception
from autobahn.wamp import role as _role
from autobahn.wamp import types as _types

from .codec import Message
from .codec import messages as m
from .ids import SessionScopeIds
from .session import Session, State

if TYPE_CHECKING:
    from .router import Router

logger = logging.getLogger("consumers.wamp")

Handler = Callable[..., Any]
_roles: Any = _role  # autobahn's role classes are untyped
_CallResult: Any = _types.CallResult
#: autobahn's ApplicationError (untyped): what a failed call raises, and what a handler raises
#: to answer with a WAMP error URI.
ApplicationError: Any = _exception.ApplicationError


def _client_roles() -> dict[str, Any]:
    return {
        "publisher": _roles.RolePublisherFeatures(publisher_exclusion=True),
        "subscriber": _roles.RoleSubscriberFeatures(pattern_based_subscription=True),
        "caller": _roles.RoleCallerFeatures(call_canceling=True, progressive_call_results=True),
        "callee": _roles.RoleCalleeFeatures(call_canceling=True, pattern_based_registration=True),
    }


def _as_async(handler: Handler) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(handler):
        return handler
    return sync_to_async(handler, thread_sensitive=False)


class JoinRefused(Exception):
    """The router refused the component's HELLO (for example an unknown realm)."""


class _ComponentPeer:
    __slots__ = ("component",)

    def __init__(self, component: ComponentSession) -> None:
        self.component = component

    def send(self, message: Message) -> None:
        self.component._deliver(message)

    def close(self) -> None:
        self.component._closed()


class ComponentSession:
    """A WAMP session of Python code in this process (see the module docstring)."""

    def __init__(
        self, router: Router, realm: str, authid: str | None = None, authrole: str = "trusted"
    ) -> None:
        self._requests = SessionScopeIds()
        self._replies: dict[int, Message] = {}
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._events: dict[int, Callable[..., Any]] = {}
        self._procedures: dict[int, Callable[..., Any]] = {}
        # REGISTERs and SUBSCRIBEs a cluster answers later: request -> (URI, handler)
        self._registering: dict[int, tuple[str, Callable[..., Any]]] = {}
        self._settled = asyncio.Event()  # set while nothing is in _registering
        self._settled.set()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_order_lane = asyncio.Lock()  # FIFO: plain event handlers run one at a time
        self.abort: Message | None = None
        authid = authid or "component-" + secrets.token_hex(6)
        self.session = Session(router, _ComponentPeer(self), authid=authid, authrole=authrole)
        self.session.receive(m.Hello(realm, _client_roles()))
        if self.abort is not None:
            raise JoinRefused(f"{self.abort.reason}: {self.abort.message}")

    @property
    def id(self) -> int:
        """The session ID the router gave this component."""
        return self.session.id

    @property
    def is_attached(self) -> bool:
        """Whether the session is still joined to its realm."""
        return self.session.state is State.ESTABLISHED

    def _request(self, message: Message) -> Message | None:
        if not self.is_attached:
            raise RuntimeError("this component session has left its realm; join again")
        self.session.receive(message)
        reply = self._replies.pop(message.request, None)
        if reply is None:
            return None  # a cluster claims a registration first: the answer comes later
        if isinstance(reply, m.Error):
            raise ApplicationError(reply.error, *(reply.args or ()), **(reply.kwargs or {}))
        return reply

    def register(
        self, procedure: str, handler: Handler, match: str = "exact", invoke: str = "single"
    ) -> int:
        """Register ``handler`` (sync or async) for ``procedure``; returns the registration ID.
        Raises ``ApplicationError`` (e.g. procedure_already_exists)."""
        request = self._requests.next()
        reply = self._request(m.Register(request, procedure, match=match, invoke=invoke))
        if reply is None:  # a cluster's claim runs: the handler is bound when REGISTERED comes
            self._registering[request] = (procedure, _as_async(handler))
            self._settled.clear()
            return 0
        self._procedures[reply.registration] = _as_async(handler)
        return int(reply.registration)

    def subscribe(self, topic: str, handler: Handler, match: str = "exact") -> int:
        """Subscribe ``handler`` (sync or async; called with the event's args and kwargs) to
        ``topic``; returns the subscription ID. In a cluster the handler receives events once
        every node has taken the subscription in (``cluster.py``; ``settled`` waits for it), and
        the ID is the one it gets then (0 in the rare case that cannot be told beforehand)."""
        request = self._requests.next()
        reply = self._request(m.Subscribe(request, topic, match=match))
        if reply is None:
            self._registering[request] = (topic, self._in_order(handler))
            self._settled.clear()
            realm = self.session.realm
            if realm is None or realm.cluster is None:
                return 0
            return realm.cluster.subscription_id_for(topic, match)  # type: ignore[arg-type]
        self._events[reply.subscription] = self._in_order(handler)
        return int(reply.subscription)

    def _in_order(self, handler: Handler) -> Callable[..., Any]:
        """An event or progress handler as a coroutine function. A plain one waits for the plain
        handlers of earlier messages (an asyncio.Lock wakes its waiters first come, first
        served), so it sees events in delivery order even though it runs in a thread."""
        if inspect.iscoroutinefunction(handler):
            return handler
        in_thread = sync_to_async(handler, thread_sensitive=False)
        lane = self._in_order_lane

        async def in_order(*args: Any, **kwargs: Any) -> Any:
            async with lane:
                return await in_thread(*args, **kwargs)

        return in_order

    async def settled(self) -> None:
        """Wait until the router has answered every ``register`` and ``subscribe`` so far (in a
        cluster they take effect once every process has them, a few milliseconds later)."""
        await self._settled.wait()

    def publish(
        self, topic: str, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> int:
        """Publish to ``topic`` and return the publication ID; ``options`` are PUBLISH options
        (``exclude``, ``eligible_authrole``, ``retain``, ...). Raises ``ApplicationError``."""
        publish = m.Publish(
            self._requests.next(),
            topic,
            args=list(args) or None,
            kwargs=kwargs or None,
            acknowledge=True,
            **(options or {}),
        )
        reply = self._request(publish)
        assert reply is not None  # publications are answered at once
        return int(reply.publication)

    async def call(
        self,
        procedure: str,
        *args: Any,
        timeout: float | None = None,
        on_progress: Handler | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``procedure`` and return its result (one value, or a CallResult for several);
        ``timeout`` is in seconds and enforced by the router. Raises ``ApplicationError``."""
        if not self.is_attached:
            raise RuntimeError("this component session has left its realm; join again")
        request = self._requests.next()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.on_progress = on_progress  # type: ignore[attr-defined]
        self._calls[request] = future
        call = m.Call(
            request,
            procedure,
            args=list(args) or None,
            kwargs=kwargs or None,
            timeout=int(timeout * 1000) if timeout else None,
            receive_progress=True if on_progress else None,
        )
        self.session.receive(call)
        try:
            return await future
        except asyncio.CancelledError:
            if request in self._calls:
                self.session.receive(m.Cancel(request, mode="killnowait"))
            raise

    def leave(self) -> None:
        """Leave the realm (GOODBYE); the component's registrations and subscriptions go."""
        if self.is_attached:
            self.session.receive(m.Goodbye())

    # --- messages from the router -------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        kind = type(message)
        if kind is m.Event:
            handler = self._events.get(message.subscription)
            if handler is not None:
                self._spawn(handler(*(message.args or ()), **(message.kwargs or {})))
        elif kind is m.Invocation:
            self._invoke(message)
        elif kind is m.Result or (kind is m.Error and message.request_type == m.Call.MESSAGE_TYPE):
            self._call_answer(message)
        elif kind is m.Interrupt:
            task = self._running.pop(message.request, None)
            if task is not None:
                task.cancel()
        elif kind is m.Abort:
            self.abort = message
        elif hasattr(message, "request") and message.request in self._registering:
            procedure, handler = self._registering.pop(message.request)
            if kind is m.Registered:
                self._procedures[message.registration] = handler
            elif kind is m.Subscribed:
                self._events[message.subscription] = handler
            else:
                logger.error("component could not bind %r: %s", procedure, message.error)
            if not self._registering:
                self._settled.set()
        elif hasattr(message, "request"):
            self._replies[message.request] = message

    def _call_answer(self, message: Message) -> None:
        future = self._calls.get(message.request)
        if future is None:
            return
        if isinstance(message, m.Result) and message.progress:
            on_progress = getattr(future, "on_progress", None)
            if on_progress is not None:
                handler = self._in_order(on_progress)
                self._spawn(handler(*(message.args or ()), **(message.kwargs or {})))
            return
        del self._calls[message.request]
        if future.done():
            return
        if isinstance(message, m.Error):
            args, kwargs = message.args or (), message.kwargs or {}
            future.set_exception(ApplicationError(message.error, *args, **kwargs))
        elif message.kwargs or len(message.args or ()) > 1:
            future.set_result(_CallResult(*(message.args or ()), **(message.kwargs or {})))
        else:
            future.set_result(message.args[0] if message.args else None)

    def _invoke(self, invocation: Message) -> None:
        handler = self._procedures.get(invocation.registration)
        request = invocation.request
        if handler is None:
            error = m.Error(m.Invocation.MESSAGE_TYPE, request, "wamp.error.no_such_registration")
            self.session.receive(error)
            return
        task = self._spawn(self._run(handler, invocation))
        self._running[request] = task

    async def _run(self, handler: Callable[..., Any], invocation: Message) -> None:
        request = invocation.request
        kind = m.Invocation.MESSAGE_TYPE
        try:
            result = await handler(*(invocation.args or ()), **(invocation.kwargs or {}))
        except asyncio.CancelledError:
            reply = m.Error(kind, request, "wamp.error.canceled")
        except ApplicationError as exc:
            reply = m.Error(
                kind, request, exc.error, args=list(exc.args) or None, kwargs=exc.kwargs
            )
        except Exception as exc:
            logger.exception("WAMP procedure handler %r failed", handler)
            reply = m.Error(kind, request, "wamp.error.runtime_error", args=[str(exc)])
        else:
            if isinstance(result, _CallResult):
                reply = m.Yield(
                    request, args=result.results or None, kwargs=result.kwresults or None
                )
            else:
                reply = m.Yield(request, args=[result] if result is not None else None)
        self._running.pop(request, None)
        self.session.receive(reply)

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._guard(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _guard(coroutine: Any) -> None:
        try:
            await coroutine
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("WAMP event handler failed")

    def _closed(self) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(ApplicationError("wamp.error.canceled", "the session left"))
        self._calls.clear()
        for task in self._running.values():
            task.cancel()
