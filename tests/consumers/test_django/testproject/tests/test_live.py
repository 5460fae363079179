"""The live-server test case: the project served by a real Crossway server on the test database."""

import json

import httpx
import websockets
from django.contrib.auth.models import User

from consumers.testing_live import ChannelsLiveServerTestCase, CrosswayLiveServerTestCase
from testproject.tests import TIMEOUT


class LiveServerTests(CrosswayLiveServerTestCase):
    server_options = ("--header", "x-served-by: live-test")

    def test_the_server_sees_the_test_database(self) -> None:
        alice = User.objects.create_user("alice", password="alice-pw")
        self.client.force_login(alice)
        key = self.client.cookies["sessionid"].value
        page = httpx.get(
            self.live_server_url + "/whoami/", cookies={"sessionid": key}, timeout=TIMEOUT
        )
        self.assertEqual((page.status_code, page.text), (200, "alice"))
        self.assertEqual(page.headers["server"], "crossway")
        self.assertEqual(page.headers["x-served-by"], "live-test")  # server_options applied

    async def test_websocket_and_static_files(self) -> None:
        async with websockets.connect(
            self.live_server_ws_url + "/ws/whoami/", open_timeout=TIMEOUT
        ) as socket:
            reply = json.loads(await socket.recv())
        self.assertEqual(reply, {"user": "anonymous", "session_key": None})
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            static = await client.get(self.live_server_url + "/static/testproject/hello.txt")
        self.assertEqual(static.text, "hello static\n")

    def test_channels_name_is_the_same_class(self) -> None:
        self.assertIs(ChannelsLiveServerTestCase, CrosswayLiveServerTestCase)
