"""Consumers that exercise sessions, users, login and logout, and the database bridges."""

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.db import connection

from consumers import (
    AsyncHttpConsumer,
    AsyncJsonWebsocketConsumer,
    JsonWebsocketConsumer,
    SyncConsumer,
    WebsocketConsumer,
)
from consumers.auth import get_user, login, logout
from consumers.db import database_sync_to_async


def describe(scope: dict[str, Any]) -> dict[str, Any]:
    """What a test checks: the scope's user and session key."""
    user = scope["user"]
    return {
        "user": user.get_username() if user.is_authenticated else "anonymous",
        "session_key": scope["session"].session_key,
    }


class WhoAmI(AsyncJsonWebsocketConsumer):
    """Accepts, then says who the connection's user is."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json(describe(self.scope))


class AsyncAuth(AsyncJsonWebsocketConsumer):
    """Logs in and out on request, from async code."""

    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if "login" in content:
            username, password = content["login"]
            user = await database_sync_to_async(authenticate)(username=username, password=password)
            if user is None:
                await self.send_json({"error": "bad credentials"})
                return
            await login(self.scope, user)
        elif "logout" in content:
            await logout(self.scope)
        elif "reload" in content:  # what the session says now, read again from the store
            self.scope["user"] = await get_user(self.scope)
        await self.send_json(describe(self.scope))


class SyncAuth(JsonWebsocketConsumer):
    """Logs in and out on request, from a sync consumer through async_to_sync."""

    def connect(self) -> None:
        self.accept()

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        if "login" in content:
            user = User.objects.get(username=content["login"])
            async_to_sync(login)(self.scope, user, backend=content.get("backend"))
        elif "logout" in content:
            async_to_sync(logout)(self.scope)
        self.send_json(describe(self.scope))


class SessionNotes(WebsocketConsumer):
    """Stores a text frame in the session under "note" and answers "ok"; "key" asks for the
    session key (a new session gets one only when it is saved: when "ok" goes out)."""

    def connect(self) -> None:
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        session = self.scope["session"]
        if text_data == "key":
            self.send(text_data=str(session.session_key))
            return
        if text_data and text_data.startswith("quiet:"):  # change it, say nothing
            session["note"] = text_data.removeprefix("quiet:")
            return
        if text_data == "clear":
            session.flush()
        else:
            session["note"] = text_data
        self.send(text_data="ok")


class SessionCounter(AsyncHttpConsumer):
    """Counts this session's requests; the count lives in the Django session."""

    async def handle(self, body: bytes) -> None:
        count = await database_sync_to_async(self.bump)()
        await self.send_response(200, str(count).encode(), headers={"content-type": "text/plain"})

    def bump(self) -> int:
        session = self.scope["session"]
        session["count"] = session.get("count", 0) + 1
        return int(session["count"])


class HttpLogin(AsyncHttpConsumer):
    """POST a username to log in as that user, an empty body to log out; answers who is in."""

    async def handle(self, body: bytes) -> None:
        if body:
            user = await User.objects.aget(username=body.decode())
            await login(self.scope, user)
        else:
            await logout(self.scope)
        await self.send_response(200, json.dumps(describe(self.scope)).encode())


class ConnectionProbe(SyncConsumer):
    """A sync handler that leaves its database connection obsolete: the SyncConsumer machinery
    must close it after the handler, as Django does after each request."""

    def probe(self, message: dict[str, Any]) -> None:
        opened_before = connection.connection is not None
        User.objects.exists()  # opens the connection
        connection.close_at = 0  # as if CONN_MAX_AGE had passed
        self.send({"type": "probed", "open_at_start": opened_before})


class UserCounter(SyncConsumer):
    """A worker consumer (runworker): counts users in the database and replies on the layer."""

    def count_users(self, message: dict[str, Any]) -> None:
        count = User.objects.count()
        assert self.channel_layer is not None
        reply = {"type": "users.counted", "count": count, "channel": self.scope["channel"]}
        async_to_sync(self.channel_layer.send)(message["reply_to"], reply)
