"""Django users on the scope: ``scope["user"]``, and ``login()`` / ``logout()`` for consumers.

``AuthMiddlewareStack(inner)`` is ``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``,
as in Channels. The user is loaded from the session by Django's own ``get_user`` (so the
session-hash check after a password change behaves as in a view), in a worker thread through
``database_sync_to_async``: the event loop never waits on the database. A scope without a
session cookie gets ``AnonymousUser`` without touching the database.

``login`` and ``logout`` are coroutines; from a SyncConsumer call them through
``async_to_sync(login)(self.scope, user)``. Outside HTTP, ``login`` saves the session at once
(its new key exists as soon as it returns); other changes to ``scope["session"]`` are saved by
``SessionMiddleware`` before the next message to the client.

This module imports Django: use it only in a Django project (``import consumers`` does not).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.contrib import auth  # type: ignore[import-untyped]
from django.utils.crypto import constant_time_compare  # type: ignore[import-untyped]
from django.utils.functional import LazyObject  # type: ignore[import-untyped]

from .base import Scope
from .middleware import BaseMiddleware, CookieMiddleware
from .sessions import SessionMiddleware, save_session_sync
from .sync import database_sync_to_async

__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "get_user",
    "login",
    "logout",
]


class UserLazyObject(LazyObject):  # type: ignore[misc]  # Django ships no type information
    """Stands for ``scope["user"]`` until AuthMiddleware has loaded the user."""

    def _setup(self) -> None:
        raise ValueError(
            "scope['user'] was used before AuthMiddleware loaded it; wrap the application in "
            "AuthMiddlewareStack(...) and read the user from the consumer, not a middleware "
            "outside it"
        )


class _SessionOnly:
    """What Django's ``auth.get_user(request)`` reads from a request: only its session."""

    def __init__(self, session: Any) -> None:
        self.session = session


def _require_session(scope: Scope, what: str) -> Any:
    if "session" not in scope:
        raise ValueError(
            f"{what} needs scope['session']: wrap the application in AuthMiddlewareStack(...) "
            "or SessionMiddlewareStack(...)"
        )
    return scope["session"]


def _load_user(session: Any) -> Any:
    if not session.session_key and not session.modified:
        from django.contrib.auth.models import AnonymousUser  # type: ignore[import-untyped]

        return AnonymousUser()  # no cookie: nothing to look up
    return auth.get_user(_SessionOnly(session))


async def get_user(scope: Scope) -> Any:
    """The user of ``scope["session"]``, or AnonymousUser; loaded in a worker thread."""
    session = _require_session(scope, "get_user()")
    return await database_sync_to_async(_load_user)(session)


class AuthMiddleware(BaseMiddleware):
    """Puts the session's user in ``scope["user"]``. Needs SessionMiddleware outside it."""

    async def populate_scope(self, scope: Scope) -> None:
        """Load the user (off the event loop) before the application starts."""
        _require_session(scope, "AuthMiddleware")
        user = UserLazyObject()
        user._wrapped = await get_user(scope)
        scope["user"] = user


def _backend_path(user: Any, backend: str | None) -> str:
    """The authentication backend to record in the session, as Django's login() picks it."""
    chosen = backend or getattr(user, "backend", None)
    if chosen is None:
        backends: list[str] = list(settings.AUTHENTICATION_BACKENDS)
        if len(backends) != 1:
            raise ValueError(
                "several AUTHENTICATION_BACKENDS are configured: pass login(scope, user, "
                "backend='dotted.path.Backend'), or log in a user returned by authenticate()"
            )
        chosen = backends[0]
    if not isinstance(chosen, str):
        raise TypeError(f"backend must be a dotted import path string, got {chosen!r}")
    return chosen


def _login(scope: Scope, user: Any, backend: str | None) -> None:
    session = _require_session(scope, "login()")
    if user is None:
        user = scope.get("user")  # Channels' login(scope, None) logs in the scope's user
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    auth_hash = user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    if auth.SESSION_KEY in session:
        same_user = session[auth.SESSION_KEY] == user._meta.pk.value_to_string(user)
        same_hash = constant_time_compare(session.get(auth.HASH_SESSION_KEY, ""), auth_hash)
        if not same_user or (auth_hash and not same_hash):
            session.flush()  # another user's session: do not let them share its data
    else:
        session.cycle_key()  # a new key on login prevents session fixation
    session[auth.SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[auth.BACKEND_SESSION_KEY] = _backend_path(user, backend)
    session[auth.HASH_SESSION_KEY] = auth_hash
    if scope.get("type") != "http":
        # No response will carry a cookie: store the session now, so that its key exists and
        # the login survives whatever the consumer does next.
        save_session_sync(session)
    scope["user"] = user
    auth.user_logged_in.send(sender=user.__class__, request=None, user=user)


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` (None: ``scope["user"]``) in for this connection: record them in the
    session and in scope["user"].

    Outside HTTP (WebSocket, channel) the session is saved at once; for HTTP, SessionMiddleware
    saves it when the response starts and sends the new cookie.
    """
    await database_sync_to_async(_login)(scope, user, backend)


def _logout(scope: Scope) -> None:
    from django.contrib.auth.models import AnonymousUser

    session = _require_session(scope, "logout()")
    user = scope.get("user")
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    auth.user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    scope["user"] = AnonymousUser()


async def logout(scope: Scope) -> None:
    """Log the connection's user out: empty the session and set scope["user"] to anonymous."""
    await database_sync_to_async(_logout)(scope)


def AuthMiddlewareStack(inner: Any) -> CookieMiddleware:  # named as in Channels
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``: cookies, the session
    and the user on the scope."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
