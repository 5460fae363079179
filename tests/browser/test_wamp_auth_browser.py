"""autobahn.js (the vendored autobahn-browser build) in headless Chromium logs in to the router
with ``ticket``, ``wampcra`` (plain and salted keys, signed by ``autobahn.auth_cra``) and
``cryptosign`` (``autobahn.auth_cryptosign``, a key made from a seed with ``autobahn.nacl``): the
right secret joins with the expected identity, the page sees it in the session's details; a
wrong one is refused, and the page sees the router's error."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router
from consumers.wamp.auth import Cookie, Cryptosign, Principal, Ticket, WampCra
from consumers.wamp.browser import autobahn_js
from consumers.wamp.roles import Permission, Role
from consumers.wamp.settings import AuthLimits
from tests.browser.conftest import TIMEOUT_MS
from tests.wamp._auth_client import CryptosignKey

pytestmark = pytest.mark.transports("asyncio")  # the router, not the transport, is under test

ALICE_SEED = list(range(32))  # the seed of alice's Ed25519 key, in Python and in the page
ALICE_KEY = CryptosignKey(bytes(ALICE_SEED)).public_key()
PAGE = b"<!doctype html><title>wamp auth</title><script src='/autobahn.min.js'></script>"

# Opens a connection with the given credentials. Resolves with what the page sees: the welcome
# details and the session's own view of its identity, or how the connection closed.
LOGIN = """async ({url, realm, authid, authmethods, secret, seed}) => new Promise((resolve) => {
  const keyPair = seed && autobahn.nacl.sign.keyPair.fromSeed(new Uint8Array(seed));
  const authextra = keyPair ? {pubkey: autobahn.auth_cryptosign.public_key(keyPair)} : undefined;
  const onchallenge = (session, method, extra) => {
    window.challenges.push([method, extra]);
    if (method === "ticket") return secret;
    if (method === "cryptosign") return autobahn.auth_cryptosign.sign_challenge(keyPair, extra);
    let key = secret;  // wampcra: derive the key from the password when the router salts it
    if (extra.salt) {
      key = autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen);
    }
    return autobahn.auth_cra.sign(key, extra.challenge);
  };
  window.challenges = [];
  const connection = new autobahn.Connection(
    {url, realm, authid, authmethods, authextra, onchallenge, max_retries: 0});
  connection.onopen = (session, details) => {
    window.session = session;
    resolve({joined: true, details, id: session.id});
  };
  connection.onclose = (reason, details) => {
    resolve({joined: false, reason, details});
    return false;
  };
  connection.open();
})"""


async def page(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A blank page that loads autobahn.js (the test drives it)."""
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": PAGE})


def application() -> Any:
    salted = Principal("frontend", secret="password", salt="pepper", iterations=100)
    frontend = Role("frontend", [Permission("com.app.", "prefix", call=True, register=True)])
    realm = Realm(
        "realm1",
        roles=[frontend],
        auth=[
            Ticket({"joe": Principal("frontend", secret="s3cret")}),
            WampCra(
                {
                    "peter": Principal("frontend", secret="secret1"),
                    "salty": salted,
                }
            ),
            Cryptosign({"alice": Principal("frontend", authorized_keys=(ALICE_KEY,))}),
            Cookie(),
        ],
        auth_limits=AuthLimits(failure_delay=0.05),
    )
    router = Router(realms=[realm])

    @router.register("realm1", "com.app.whoami")
    def whoami() -> str:
        return "served"

    return ProtocolTypeRouter(
        {
            "http": URLRouter([path("autobahn.min.js", autobahn_js), path("", page)]),
            "websocket": URLRouter([path("ws", router.as_asgi())]),
        }
    )


def login(
    browser: Any,
    port: int | Any,
    authid: str | None,
    methods: list[str],
    secret: str = "",
    seed: list[int] | None = None,
) -> Any:
    """A fresh page (or ``port``, a page already open) that tries to join realm1; what it saw
    (see LOGIN) and the page."""
    if isinstance(port, int):
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/")
    else:
        page, port = port, int(port.url.split(":")[2].split("/")[0])
    options = {
        "url": f"ws://127.0.0.1:{port}/ws",
        "realm": "realm1",
        "authid": authid,
        "authmethods": methods,
        "secret": secret,
        "seed": seed,
    }
    return page.evaluate(LOGIN, options), page


def test_ticket(browser: Any, run_server: Any) -> None:
    with run_server(application()) as server:
        seen, page = login(browser, server.port, "joe", ["ticket"], "s3cret")
        assert seen["joined"], seen
        details = seen["details"]
        assert (details["authid"], details["authrole"]) == ("joe", "frontend")
        assert (details["authmethod"], details["authprovider"]) == ("ticket", "static")
        assert page.evaluate("window.challenges") == [["ticket", {}]]
        assert page.evaluate("window.session.call('com.app.whoami')") == "served"
        refused, _ = login(browser, server.port, "joe", ["ticket"], "wrong")
        assert refused["joined"] is False
        assert refused["reason"] == "closed", refused
        assert refused["details"]["reason"] == "wamp.error.not_authorized", refused


@pytest.mark.parametrize(("authid", "password"), [("peter", "secret1"), ("salty", "password")])
def test_wampcra(browser: Any, run_server: Any, authid: str, password: str) -> None:
    with run_server(application()) as server:
        seen, page = login(browser, server.port, authid, ["wampcra"], password)
        assert seen["joined"], seen
        details = seen["details"]
        assert (details["authid"], details["authrole"]) == (authid, "frontend")
        assert details["authmethod"] == "wampcra"
        [[method, extra]] = page.evaluate("window.challenges")
        assert method == "wampcra" and ("salt" in extra) == (authid == "salty")
        assert page.evaluate("window.session.call('com.app.whoami')") == "served"
        refused, _ = login(browser, server.port, authid, ["wampcra"], password + "x")
        assert refused["joined"] is False
        assert refused["details"]["reason"] == "wamp.error.not_authorized", refused


def test_cryptosign(browser: Any, run_server: Any) -> None:
    with run_server(application()) as server:
        seen, page = login(browser, server.port, None, ["cryptosign"], seed=ALICE_SEED)
        assert seen["joined"], seen
        details = seen["details"]
        assert (details["authid"], details["authrole"]) == ("alice", "frontend")
        assert details["authmethod"] == "cryptosign"
        [[method, extra]] = page.evaluate("window.challenges")
        assert method == "cryptosign" and len(extra["challenge"]) == 64
        assert page.evaluate("window.session.call('com.app.whoami')") == "served"
        mallory = list(range(1, 33))  # a key the realm does not know
        refused, _ = login(browser, server.port, "alice", ["cryptosign"], seed=mallory)
        assert refused["joined"] is False
        assert refused["details"]["reason"] == "wamp.error.not_authorized", refused


def test_cookie_after_a_ticket_login(browser: Any, run_server: Any) -> None:
    """The first connection has no cookie yet and logs in with its ticket; the next one, from
    the same browser, is let in on the cookie the router set, with nothing to answer."""
    with run_server(application()) as server:
        first, page = login(browser, server.port, "joe", ["cookie", "ticket"], "s3cret")
        assert first["details"]["authmethod"] == "ticket", first
        page.evaluate("window.session.leave()")
        again, _ = login(browser, page, None, ["cookie"])
        details = again["details"]
        assert (details["authid"], details["authrole"]) == ("joe", "frontend")
        assert details["authmethod"] == "cookie" and page.evaluate("window.challenges") == []
        assert page.evaluate("document.cookie") == ""  # HttpOnly: the page cannot read it
        other_browser, _ = login(browser, server.port, None, ["cookie"])  # a new context
        assert other_browser["details"]["reason"] == "wamp.error.no_auth_method"
