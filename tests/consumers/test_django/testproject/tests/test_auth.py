"""scope["user"] from the session cookie, and login()/logout() inside consumers."""

import json
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import TransactionTestCase, override_settings
from django.utils import timezone

from consumers.auth import AuthMiddleware, login
from consumers.testing import HttpCommunicator
from testproject.asgi import application
from testproject.tests import TIMEOUT, ask, cookie_header, open_socket, set_cookies


class AuthTests(TransactionTestCase):
    """Run with TransactionTestCase: consumers reach the database from worker threads."""

    def setUp(self) -> None:
        self.alice = User.objects.create_user("alice", password="alice-pw")
        self.bob = User.objects.create_user("bob", password="bob-pw")
        self.client.force_login(self.alice)
        self.alice_key = self.client.cookies["sessionid"].value

    def whoami_over_http(self, session_key: str) -> str:
        """What Django's own views make of a session cookie."""
        self.client.cookies["sessionid"] = session_key
        return self.client.get("/whoami/").content.decode()

    async def test_the_session_cookie_gives_the_user(self) -> None:
        socket = await open_socket("/ws/whoami/", self.alice_key)
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        self.assertEqual(reply, {"user": "alice", "session_key": self.alice_key})
        await socket.disconnect()

    async def test_no_cookie_is_anonymous(self) -> None:
        socket = await open_socket("/ws/whoami/")
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        self.assertEqual(set_cookies(socket.response_headers), [])
        await socket.disconnect()

    async def test_an_expired_session_is_anonymous_and_its_cookie_is_deleted(self) -> None:
        yesterday = timezone.now() - timedelta(days=1)
        await Session.objects.filter(pk=self.alice_key).aupdate(expire_date=yesterday)
        socket = await open_socket("/ws/whoami/", self.alice_key)
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        [deletion] = set_cookies(socket.response_headers)
        self.assertIn('sessionid=""', deletion)
        self.assertIn("Max-Age=0", deletion)
        await socket.disconnect()

    async def test_an_unknown_session_key_is_anonymous(self) -> None:
        socket = await open_socket("/ws/whoami/", "forged0key0that0does0not0exist")
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        self.assertEqual(reply["user"], "anonymous")
        await socket.disconnect()

    async def test_a_password_change_ends_other_sessions(self) -> None:
        def change_password() -> None:
            self.alice.set_password("new-pw")
            self.alice.save()

        await sync_to_async(change_password)()
        socket = await open_socket("/ws/whoami/", self.alice_key)
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        self.assertEqual(reply["user"], "anonymous")
        await socket.disconnect()

    async def test_login_inside_an_async_consumer_is_saved_for_http(self) -> None:
        socket = await open_socket("/ws/auth/")
        reply = await ask(socket, {"login": ["bob", "bob-pw"]})
        self.assertEqual(reply["user"], "bob")
        key = reply["session_key"]
        self.assertTrue(key)
        # Saved before the reply left: Django's views see bob with that cookie.
        self.assertEqual(await sync_to_async(self.whoami_over_http)(key), "bob")
        self.assertEqual(await ask(socket, {"reload": True}), {"user": "bob", "session_key": key})
        await socket.disconnect()

    async def test_wrong_password_does_not_log_in(self) -> None:
        socket = await open_socket("/ws/auth/")
        self.assertEqual(
            await ask(socket, {"login": ["bob", "nope"]}), {"error": "bad credentials"}
        )
        await socket.disconnect()

    async def test_login_as_another_user_replaces_the_session(self) -> None:
        socket = await open_socket("/ws/auth/", self.alice_key)
        reply = await ask(socket, {"login": ["bob", "bob-pw"]})
        self.assertEqual(reply["user"], "bob")
        self.assertNotEqual(reply["session_key"], self.alice_key)
        self.assertFalse(await Session.objects.filter(pk=self.alice_key).aexists())
        self.assertEqual(await sync_to_async(self.whoami_over_http)(reply["session_key"]), "bob")
        await socket.disconnect()

    async def test_logout_inside_an_async_consumer(self) -> None:
        socket = await open_socket("/ws/auth/", self.alice_key)
        self.assertEqual((await ask(socket, {"reload": True}))["user"], "alice")
        reply = await ask(socket, {"logout": True})
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        self.assertFalse(await Session.objects.filter(pk=self.alice_key).aexists())
        self.assertEqual(await sync_to_async(self.whoami_over_http)(self.alice_key), "anonymous")
        await socket.disconnect()

    async def test_login_and_logout_from_a_sync_consumer(self) -> None:
        socket = await open_socket("/ws/sync-auth/")
        reply = await ask(socket, {"login": "bob"})
        self.assertEqual(reply["user"], "bob")
        key = reply["session_key"]
        store = SessionStore(key)
        self.assertEqual(await store.aget("_auth_user_id"), str(self.bob.pk))
        reply = await ask(socket, {"logout": True})
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        self.assertFalse(await Session.objects.filter(pk=key).aexists())
        await socket.disconnect()

    @override_settings(
        AUTHENTICATION_BACKENDS=[
            "django.contrib.auth.backends.ModelBackend",
            "django.contrib.auth.backends.AllowAllUsersModelBackend",
        ]
    )
    async def test_login_with_several_backends_needs_one_named(self) -> None:
        socket = await open_socket("/ws/sync-auth/")
        await socket.send_json_to({"login": "bob"})
        with self.assertRaisesMessage(ValueError, "backend="):
            await socket.wait(TIMEOUT)  # the consumer ends with the error
        socket = await open_socket("/ws/sync-auth/")
        backend = "django.contrib.auth.backends.AllowAllUsersModelBackend"
        reply = await ask(socket, {"login": "bob", "backend": backend})
        self.assertEqual(reply["user"], "bob")
        self.assertEqual(
            await SessionStore(reply["session_key"]).aget("_auth_user_backend"), backend
        )
        await socket.disconnect()

    async def test_login_of_none_takes_the_scope_user_or_says_what_is_missing(self) -> None:
        scope = {"type": "websocket", "session": SessionStore(), "user": self.bob}
        await login(scope, None)
        session_key = scope["session"].session_key
        self.assertEqual(await SessionStore(session_key).aget("_auth_user_id"), str(self.bob.pk))
        with self.assertRaisesMessage(ValueError, "User must be passed as an argument"):
            await login({"type": "websocket", "session": SessionStore()}, None)

    async def test_auth_middleware_without_sessions_says_what_to_wrap(self) -> None:
        async def app(scope: object, receive: object, send: object) -> None:
            raise AssertionError("not reached")

        async def nothing() -> dict[str, str]:
            return {}

        async def drop(message: object) -> None:
            return None

        with self.assertRaisesMessage(ValueError, "AuthMiddlewareStack"):
            await AuthMiddleware(app)({"type": "websocket", "cookies": {}}, nothing, drop)

    async def test_login_and_logout_in_an_http_consumer_send_the_cookie(self) -> None:
        async def post(body: bytes, session_key: str | None) -> tuple[Any, list[str]]:
            communicator = HttpCommunicator(
                application, "POST", "/login/", body, headers=cookie_header(session_key)
            )
            response = await communicator.get_response(timeout=TIMEOUT)
            return json.loads(response["body"]), set_cookies(response["headers"])

        reply, cookies = await post(b"bob", None)
        self.assertEqual(reply["user"], "bob")
        [cookie] = cookies
        self.assertTrue(cookie.startswith(f"sessionid={reply['session_key']};"), cookie)
        self.assertEqual(await sync_to_async(self.whoami_over_http)(reply["session_key"]), "bob")

        reply, cookies = await post(b"", reply["session_key"])
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        [deletion] = cookies
        self.assertIn('sessionid=""', deletion)
