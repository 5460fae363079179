"""Django sessions on the scope: ``scope["session"]``, loaded from the session cookie.

``SessionMiddlewareStack(inner)`` is ``CookieMiddleware(SessionMiddleware(inner))``, as in
Channels. The session is a lazy object: nothing is read from the session store until the
application (or ``AuthMiddleware``) touches it, and that read must happen off the event loop
(``database_sync_to_async``, a SyncConsumer handler, or Django's async ``aget()``/``asave()``).

A changed session is saved for you:

- HTTP: when the response starts (not for a 500), with a ``Set-Cookie`` header on the response,
  as Django's own SessionMiddleware does; an emptied session deletes the cookie.
- WebSocket: before the next message goes to the client (accept, send, close), and when the
  consumer ends (unless it crashed). The handshake response (``websocket.accept``) also carries
  the cookie when the session key changed; after it, a WebSocket cannot set cookies, so the page
  must reload to see a new session (Channels has the same limit).

This module imports Django: use it only in a Django project (``import consumers`` does not).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import UpdateError  # type: ignore[import-untyped]
from django.contrib.sessions.exceptions import SessionInterrupted  # type: ignore[import-untyped]
from django.utils.functional import LazyObject, empty  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from .base import Message, Receive, Scope, Send
from .middleware import CookieMiddleware
from .sync import database_sync_to_async

__all__ = [
    "LazySession",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "save_session",
    "save_session_sync",
]

# The message types after which the client may act on a change: save before passing them on.
_HTTP_START = "http.response.start"
_WEBSOCKET_SENDS = ("websocket.accept", "websocket.send", "websocket.close")


class LazySession(LazyObject):  # type: ignore[misc]  # Django ships no type information
    """The request's session store, created (without I/O) on first use from the cookie's key."""

    def __init__(self, session_key: str | None) -> None:
        super().__init__()
        self.__dict__["_session_key"] = session_key

    def _setup(self) -> None:
        store_class = import_string(settings.SESSION_ENGINE + ".SessionStore")
        self._wrapped = store_class(self.__dict__["_session_key"])

    @property
    def is_loaded(self) -> bool:
        """True once the session store exists (something used the session)."""
        return self._wrapped is not empty


async def save_session(scope: Scope) -> None:
    """Save ``scope["session"]`` now, off the event loop, if it was changed."""
    session = scope.get("session")
    if isinstance(session, LazySession) and session.is_loaded and session.modified:
        await database_sync_to_async(save_session_sync)(session)


def save_session_sync(session: Any) -> None:
    """Save (or, when emptied, delete) ``session`` now, in the calling thread."""
    if session.is_empty():
        if session.session_key:
            session.delete()  # an emptied session (e.g. after logout): nothing to keep
    else:
        try:
            session.save()
        except UpdateError as exc:
            # Django's SessionMiddleware says the same when a concurrent request (a logout,
            # say) deleted the session while this one was still using it.
            raise SessionInterrupted(
                "The session was deleted before the consumer finished with it; the user may "
                "have logged out in a concurrent request."
            ) from exc
    session.modified = False  # saved: the next message does not save it again


class SessionMiddleware:
    """Puts the Django session named by the session cookie in ``scope["session"]`` and saves it
    when the application changed it. Needs ``CookieMiddleware`` outside it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Attach the session, run the application, save the session when it changed."""
        if "cookies" not in scope:
            raise ValueError(
                "SessionMiddleware needs scope['cookies']: wrap it in CookieMiddleware, or use "
                "SessionMiddlewareStack(app) / AuthMiddlewareStack(app)"
            )
        if "session" in scope:
            # An outer SessionMiddleware owns the session already (Channels does the same).
            await self.inner(scope, receive, send)
            return
        cookie_name: str = settings.SESSION_COOKIE_NAME
        cookie_key = scope["cookies"].get(cookie_name) or None
        scope = dict(scope)
        session = LazySession(cookie_key)
        scope["session"] = session
        is_http = scope.get("type") == "http"

        async def send_with_session(message: Message) -> None:
            message_type = message.get("type")
            if message_type == _HTTP_START and message.get("status", 200) != 500:
                await self._finish_http(session, cookie_key, message)
            elif message_type in _WEBSOCKET_SENDS:
                await save_session(scope)
                if message_type == "websocket.accept":
                    self._add_cookie(session, cookie_key, message)
            await send(message)

        await self.inner(scope, receive, send_with_session)
        if not is_http:
            # The consumer ended normally: keep what it changed since its last message. (Not
            # after a crash: half-made changes are not worth keeping, as Django skips a 500.)
            await save_session(scope)

    async def _finish_http(
        self, session: LazySession, cookie_key: str | None, message: Message
    ) -> None:
        if not session.is_loaded:
            return
        if session.modified or settings.SESSION_SAVE_EVERY_REQUEST:
            session.modified = True
            await database_sync_to_async(save_session_sync)(session)
        self._add_cookie(session, cookie_key, message)

    @staticmethod
    def _add_cookie(session: LazySession, cookie_key: str | None, message: Message) -> None:
        """Set (or delete) the session cookie on a response when the key differs from the
        request's, or on every response with SESSION_SAVE_EVERY_REQUEST (it renews expiry)."""
        if not session.is_loaded:
            return
        key = session.session_key
        if not key or session.is_empty():
            if cookie_key:
                CookieMiddleware.delete_cookie(
                    message,
                    settings.SESSION_COOKIE_NAME,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                )
            return
        if key == cookie_key and not settings.SESSION_SAVE_EVERY_REQUEST:
            return
        max_age: int | None = None
        expires: float | None = None
        if not session.get_expire_at_browser_close():
            max_age = session.get_expiry_age()
            expires = time.time() + max_age
        CookieMiddleware.set_cookie(
            message,
            settings.SESSION_COOKIE_NAME,
            key,
            max_age=max_age,
            expires=expires,
            path=settings.SESSION_COOKIE_PATH,
            domain=settings.SESSION_COOKIE_DOMAIN,
            secure=settings.SESSION_COOKIE_SECURE or False,
            httponly=settings.SESSION_COOKIE_HTTPONLY or False,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )


def SessionMiddlewareStack(inner: Any) -> CookieMiddleware:  # named as in Channels
    """``CookieMiddleware(SessionMiddleware(inner))``: cookies, then the session, on the scope."""
    return CookieMiddleware(SessionMiddleware(inner))
