"""scope["session"]: lazy, loaded from the cookie, saved when a consumer changes it."""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.exceptions import SessionInterrupted
from django.test import TransactionTestCase

from consumers.sessions import (
    LazySession,
    SessionMiddleware,
    SessionMiddlewareStack,
    save_session_sync,
)
from consumers.testing import HttpCommunicator
from testproject.asgi import application
from testproject.tests import TIMEOUT, cookie_header, open_socket, set_cookies


class HttpSessionTests(TransactionTestCase):
    async def get_counter(self, session_key: str | None = None) -> dict[str, Any]:
        communicator = HttpCommunicator(
            application, "GET", "/counter/", headers=cookie_header(session_key)
        )
        return await communicator.get_response(timeout=TIMEOUT)

    async def test_a_new_session_sets_the_cookie_and_later_requests_reuse_it(self) -> None:
        first = await self.get_counter()
        self.assertEqual(first["body"], b"1")
        [cookie] = set_cookies(first["headers"])
        key = cookie.split(";")[0].removeprefix("sessionid=")
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Lax", cookie)
        self.assertIn("Max-Age=1209600", cookie)  # Django's SESSION_COOKIE_AGE: two weeks
        self.assertEqual(await SessionStore(key).aget("count"), 1)

        second = await self.get_counter(key)
        self.assertEqual(second["body"], b"2")
        self.assertEqual(set_cookies(second["headers"]), [])  # same key: nothing to set
        self.assertEqual(await SessionStore(key).aget("count"), 2)

    async def test_an_untouched_session_is_never_loaded_nor_sent(self) -> None:
        seen: list[Any] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(scope["session"])
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        communicator = HttpCommunicator(
            SessionMiddlewareStack(app), "GET", "/", headers=cookie_header("abc")
        )
        response = await communicator.get_response(timeout=TIMEOUT)
        self.assertEqual(response["status"], 204)
        self.assertEqual(set_cookies(response["headers"]), [])
        [session] = seen
        self.assertIsInstance(session, LazySession)
        self.assertFalse(session.is_loaded)

    async def test_session_middleware_without_cookies_says_what_to_wrap(self) -> None:
        async def nothing() -> dict[str, str]:
            return {}

        with self.assertRaisesMessage(ValueError, "CookieMiddleware"):
            await SessionMiddleware(None)({"type": "http"}, nothing, nothing)


class WebsocketSessionTests(TransactionTestCase):
    async def say(self, socket: Any, text: str) -> str | bytes:
        await socket.send_to(text_data=text)
        return await socket.receive_from(timeout=TIMEOUT)

    async def test_a_change_is_saved_before_the_next_message_to_the_client(self) -> None:
        socket = await open_socket("/ws/session/")
        self.assertEqual(await self.say(socket, "key"), "None")  # no cookie: no session yet
        self.assertEqual(await self.say(socket, "blue"), "ok")
        key = await self.say(socket, "key")
        self.assertNotEqual(key, "None")
        self.assertEqual(await SessionStore(key).aget("note"), "blue")

        self.assertEqual(await self.say(socket, "green"), "ok")
        self.assertEqual(await SessionStore(key).aget("note"), "green")
        self.assertEqual(await self.say(socket, "key"), key)

        self.assertEqual(await self.say(socket, "clear"), "ok")
        self.assertFalse(await SessionStore().aexists(key))
        await socket.disconnect()

    async def test_an_existing_session_is_updated_in_place(self) -> None:
        store = SessionStore()
        await store.aset("note", "old")
        await store.asave()
        socket = await open_socket("/ws/session/", store.session_key)
        self.assertEqual(await self.say(socket, "new"), "ok")
        self.assertEqual(await self.say(socket, "key"), store.session_key)
        self.assertEqual(await SessionStore(store.session_key).aget("note"), "new")
        await socket.disconnect()

    async def test_a_change_with_no_message_after_it_is_saved_when_the_consumer_ends(self) -> None:
        store = SessionStore()
        await store.aset("note", "old")
        await store.asave()
        socket = await open_socket("/ws/session/", store.session_key)
        await socket.send_to(text_data="quiet:kept")
        await socket.disconnect(timeout=TIMEOUT)
        self.assertEqual(await SessionStore(store.session_key).aget("note"), "kept")

    async def test_a_session_deleted_meanwhile_raises_session_interrupted(self) -> None:
        session = SessionStore()
        session["count"] = 1
        await sync_to_async(session.save)()
        await SessionStore(session.session_key).adelete()  # a concurrent logout, say
        session["count"] = 2
        with self.assertRaisesMessage(SessionInterrupted, "logged out in a concurrent request"):
            await sync_to_async(save_session_sync)(session)
