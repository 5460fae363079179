"""Django users as WAMP sessions: a browser logged in to the site joins as that user.

``DjangoUser`` reads the user that ``AuthMiddlewareStack`` put in the WebSocket's scope (from the
site's session cookie, sent with the handshake) and welcomes the session with
``authid = user.get_username()`` and the role ``role_for(user)`` returns: by default the user's
first group name (alphabetically), else ``authenticated``. A user who is not logged in (or a role
of None) makes the method not apply, so the client's next method is tried. With
``end_sessions_on_logout`` (the default) Django's ``user_logged_out`` signal ends that user's WAMP
sessions in every realm that offers this method, in whichever thread the logout ran, and (on a
channel layer that joins processes) in every process of the cluster (``shared.py``).
``django_authorizer`` turns Django permissions into a dynamic authorizer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async

from ..roles import Decision
from .base import Accept, HelloInfo, Outcome, Skip

logger = logging.getLogger("consumers.wamp")

LOGGED_OUT = "wamp.close.logout"


def default_role(user: Any) -> str | None:
    """The user's first group name, else ``authenticated``; None for an anonymous user."""
    if not user.is_authenticated:
        return None
    group = user.groups.order_by("name").values_list("name", flat=True).first()
    return str(group) if group else "authenticated"


class DjangoUser:
    """Authentication by the Django session of the WebSocket handshake (see the module
    docstring). ``method`` is the authmethod the client asks for (``cookie`` by default)."""

    def __init__(
        self,
        method: str = "cookie",
        role_for: Callable[[Any], str | None] = default_role,
        end_sessions_on_logout: bool = True,
    ) -> None:
        self.method = method
        self.role_for = role_for
        if end_sessions_on_logout:
            from django.contrib.auth.signals import user_logged_out  # type: ignore[import-untyped]

            user_logged_out.connect(self._logged_out, weak=False, dispatch_uid=id(self))

    def start(self, hello: HelloInfo) -> Outcome:
        """Accept the scope's logged-in user, or Skip."""
        scope = hello.transport.scope
        if scope is None or "user" not in scope:
            return Skip()
        return self._identify(scope["user"])

    async def _identify(self, user: Any) -> Outcome:
        found = await sync_to_async(self._resolve, thread_sensitive=True)(user)
        if found is None:
            return Skip()
        return Accept(found[0], found[1], self.method, "django")

    def _resolve(self, user: Any) -> tuple[str, str] | None:
        role = self.role_for(user)  # the lazy scope user is loaded here, in a thread
        return (str(user.get_username()), role) if role is not None else None

    def _logged_out(self, sender: Any, user: Any = None, **kwargs: Any) -> None:
        if user is None:
            return
        username = str(user.get_username())
        from ..router import routers_by_realm

        for realm_name, router in routers_by_realm().items():
            if self not in (router.configs[realm_name].auth or ()):
                continue
            loop = router.loop
            if loop is None or loop.is_closed():
                continue  # never bound in this process: it has no sessions (and no feed)
            loop.call_soon_threadsafe(_logged_out_everywhere, router, realm_name, username)


def _logged_out_everywhere(router: Any, realm_name: str, username: str) -> None:
    """In the router's loop: end the user's sessions here, and tell the other processes."""
    end_sessions(router.realm(realm_name), username)
    if router.auth_feed is not None:
        router.auth_feed.share_logout(realm_name, username)


def end_sessions(realm: Any, username: str) -> None:
    """End the Django-authenticated sessions of ``username`` in ``realm`` (in its loop)."""
    if realm is None:
        return
    for session in list(realm.sessions.values()):
        if session.authprovider == "django" and session.authid == username:
            logger.info("WAMP session %s ended: %r logged out of Django", session.id, username)
            session.goodbye(LOGGED_OUT, "the user logged out")
    realm.meta.flush()


def django_authorizer(
    permission_for: Callable[[str, str], str | None], cache: float = 30.0
) -> Callable[[dict[str, Any], str, str], Any]:
    """A dynamic authorizer from Django permissions: ``permission_for(uri, action)`` names the
    permission (``"app.codename"``) the session's user needs, or None to refuse; decisions are
    cached ``cache`` seconds."""

    def check(authid: str | None, permission: str) -> bool:
        from django.contrib.auth import get_user_model  # type: ignore[import-untyped]

        user = get_user_model().objects.filter(username=authid, is_active=True).first()
        return user is not None and bool(user.has_perm(permission))

    async def authorize(details: dict[str, Any], uri: str, action: str) -> Decision:
        permission = permission_for(uri, action)
        if permission is None or details.get("authprovider") != "django":
            return Decision(False)
        allowed = await sync_to_async(check, thread_sensitive=True)(details["authid"], permission)
        return Decision(allowed, cache=cache)

    return authorize
