"""The chat's tests: run them with ``python manage.py test`` or ``pytest`` (pytest-django).

The consumer tests drive the ASGI application in-process with WebsocketCommunicator; the
browser test serves the project through a real Crossway server (CrosswayLiveServerTestCase) and
drives headless Chromium with Playwright.
"""

import shutil
from typing import Any

from django.contrib.auth.models import User
from django.test import TransactionTestCase
from django_chat.asgi import application

from chat.consumers import CLOSE_NOT_SIGNED_IN
from consumers.testing import WebsocketCommunicator
from consumers.testing_live import CrosswayLiveServerTestCase

TIMEOUT = 5  # seconds, for every wait
ORIGIN = (b"origin", b"http://localhost")


class ChatConsumerTests(TransactionTestCase):
    """TransactionTestCase: the consumer reads users and sessions from worker threads."""

    def setUp(self) -> None:
        self.cookies = {}
        for name in ("alice", "bob"):
            user = User.objects.create(username=name)  # no password: hashing one is slow
            client = self.client_class()  # one browser each: a login replaces a session
            client.force_login(user)
            self.cookies[name] = client.cookies["sessionid"].value

    async def join(self, room: str, user: str | None) -> WebsocketCommunicator:
        headers = [ORIGIN]
        if user:
            headers.append((b"cookie", f"sessionid={self.cookies[user]}".encode()))
        communicator = WebsocketCommunicator(application, f"/ws/chat/{room}/", headers=headers)
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        self.assertTrue(connected)
        return communicator

    async def test_messages_reach_the_room_with_their_author(self) -> None:
        alice = await self.join("lobby", "alice")
        bob = await self.join("lobby", "bob")
        elsewhere = await self.join("garden", "bob")
        # The author is the session's user, whatever the page claims.
        await alice.send_json_to({"message": "hello", "author": "mallory"})
        for socket in (alice, bob):
            reply = await socket.receive_json_from(timeout=TIMEOUT)
            self.assertEqual(reply, {"author": "alice", "message": "hello"})
        self.assertTrue(await elsewhere.receive_nothing(timeout=0.2))
        for socket in (alice, bob, elsewhere):
            await socket.disconnect()

    async def test_anonymous_sockets_are_refused(self) -> None:
        communicator = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=[ORIGIN])
        connected, code = await communicator.connect(timeout=TIMEOUT)
        self.assertEqual((connected, code), (False, CLOSE_NOT_SIGNED_IN))

    def test_pages_need_a_login(self) -> None:
        response = self.client.get("/chat/lobby/")  # nobody signed in
        self.assertRedirects(response, "/accounts/login/?next=/chat/lobby/")


class ChatInBrowserTests(CrosswayLiveServerTestCase):
    """The whole stack: Django's login page, the room page's script, the WebSocket."""

    def test_sign_in_and_chat(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        User.objects.create_user("alice", password="alice-pw")  # before Playwright's loop runs
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            self.skipTest("Chromium is not installed (apt-get install chromium)")
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=args)
            try:
                page: Any = browser.new_context().new_page()
                page.set_default_timeout(10_000)
                page.goto(self.live_server_url + "/chat/lobby/")
                page.fill("#id_username", "alice")
                page.fill("#id_password", "alice-pw")
                page.click("#sign-in")
                try:
                    expect(page.locator("#status")).to_have_text("Connected to #lobby")
                except AssertionError as exc:
                    log = self.live_server.output()
                    raise AssertionError(f"{exc}\nThe server's log:\n{log}") from exc
                page.fill("#message", "hello from the browser")
                page.press("#message", "Enter")
                expect(page.locator("#messages li")).to_have_text(["alice: hello from the browser"])
            finally:
                browser.close()
