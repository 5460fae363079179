"""A browser's Django login is its WAMP identity: the live server with autobahn-python clients."""

import asyncio
from typing import Any

import httpx
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission, User
from django.test import Client as DjangoClient

from consumers.testing_live import CrosswayLiveServerTestCase
from testproject.tests import TIMEOUT
from tests.wamp._autobahn import (
    ApplicationError,
    ApplicationSession,
    ComponentConfig,
    JsonSerializer,
    WampWebSocketClientFactory,
)


class Browser(ApplicationSession):  # type: ignore[misc]  # autobahn is untyped
    """Joins realm 'site' asking for the ``cookie`` method, as a browser page would."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        loop = asyncio.get_running_loop()
        self.joined: asyncio.Future[Any] = loop.create_future()
        self.left: asyncio.Future[Any] = loop.create_future()

    def onConnect(self) -> None:
        self.join("site", authmethods=["cookie"])

    async def onJoin(self, details: Any) -> None:
        self.joined.set_result(details)

    def onLeave(self, details: Any) -> None:
        for future in (self.joined, self.left):
            if not future.done():
                future.set_result(details)
        self.disconnect()


class DjangoWampTests(CrosswayLiveServerTestCase):
    def users(self) -> dict[str, str]:
        """alice (editors, may view users) and bob (no group): their session cookies."""
        editors = Group.objects.create(name="editors")
        editors.permissions.add(Permission.objects.get(codename="view_user"))
        alice = User.objects.create_user("alice", password="pw")
        alice.groups.add(editors)
        bob = User.objects.create_user("bob", password="pw")
        keys = {}
        for user in (alice, bob):
            browser = DjangoClient()  # one each: a second login on one client ends the first
            browser.force_login(user)
            keys[user.username] = browser.cookies["sessionid"].value
        return keys

    async def browser(self, session_key: str | None) -> Browser:
        made: list[Browser] = []

        def make() -> Browser:
            made.append(Browser(ComponentConfig("site")))
            return made[-1]

        headers = {"Cookie": f"sessionid={session_key}"} if session_key else None
        url = self.live_server_ws_url + "/ws/wamp/"
        factory = WampWebSocketClientFactory(
            make, url=url, serializers=[JsonSerializer()], headers=headers
        )
        host, port = url.split("//")[1].split("/")[0].split(":")
        await asyncio.get_running_loop().create_connection(factory, host, int(port))
        for _ in range(400):
            if made:
                break
            await asyncio.sleep(0.005)
        return made[0]

    async def test_django_login_is_the_wamp_identity(self) -> None:
        keys = await sync_to_async(self.users)()
        alice = await self.browser(keys["alice"])
        details = await asyncio.wait_for(alice.joined, TIMEOUT)
        self.assertEqual((details.authid, details.authrole), ("alice", "editors"))
        self.assertEqual((details.authmethod, details.authprovider), ("cookie", "django"))
        # Django's permission decides, through the dynamic authorizer.
        self.assertEqual(await alice.call("com.site.admin.ping"), "pong")
        bob = await self.browser(keys["bob"])
        details = await asyncio.wait_for(bob.joined, TIMEOUT)
        self.assertEqual((details.authid, details.authrole), ("bob", "authenticated"))
        self.assertEqual(await bob.call("com.site.echo", "hi"), "hi")
        with self.assertRaises(ApplicationError) as refused:
            await bob.call("com.site.admin.ping")
        self.assertEqual(refused.exception.error, "wamp.error.not_authorized")
        stranger = await self.browser(None)
        left = await asyncio.wait_for(stranger.joined, TIMEOUT)
        self.assertEqual(left.reason, "wamp.error.no_auth_method")
        # Logging out of the site ends alice's WAMP session; bob's stays.
        cookies = {"sessionid": keys["alice"]}
        async with httpx.AsyncClient(timeout=TIMEOUT, cookies=cookies) as client:
            page = await client.get(self.live_server_url + "/logout/")
        self.assertEqual(page.status_code, 200)
        goodbye = await asyncio.wait_for(alice.left, TIMEOUT)
        self.assertEqual(goodbye.reason, "wamp.close.logout")
        self.assertEqual(await bob.call("com.site.echo", "still"), "still")
        bob.leave()
        await asyncio.wait_for(bob.left, TIMEOUT)
