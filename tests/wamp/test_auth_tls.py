"""Cryptosign with TLS channel binding (``tls-unique``) through the real server on TLS.

The client is autobahn-python's asyncio WAMP client: its transport computes the channel ID the
way it does for its own ``AuthCryptoSign`` (SHA-256 of the connection's tls-unique, in
``transport_details.channel_id``), and the signature is challenge XOR that ID. (autobahn's
``AuthCryptoSign`` class itself needs the base58 package, which we do not install: the signing
step is ours, three lines in ``_auth_client.CryptosignKey``.) A signature bound to another
connection, to autobahn's all-zero fallback ID, or not bound at all where the realm requires it,
is refused.
"""

from __future__ import annotations

import contextlib
import ssl
from typing import Any

import pytest

from consumers.wamp import Realm, Router
from consumers.wamp.auth import Cryptosign, Principal
from consumers.wamp.roles import Permission, Role
from consumers.wamp.settings import AuthLimits
from tests.server.conftest import certificates  # noqa: F401  (the fixture)
from tests.wamp._auth_client import AuthClient, CryptosignKey, login, outcome
from tests.wamp.conftest import Wamp, application

pytestmark = pytest.mark.transports("asyncio")  # Twisted's TLS reports no tls-unique

ALICE: Any = CryptosignKey(bytes(range(32)))
BINDING = {"pubkey": ALICE.public_key(), "channel_binding": "tls-unique"}
VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


class BoundClient(AuthClient):
    """Signs cryptosign challenges bound to the channel ID autobahn computed for its TLS
    connection, or to ``channel_id`` when a test sets one (a relayed or forged binding)."""

    channel_id: bytes | None = None

    async def onChallenge(self, challenge: Any) -> Any:
        self.challenges = [*getattr(self, "challenges", []), challenge]
        ours = self._transport.transport_details.channel_id.get("tls-unique")
        self.own_channel_id = ours
        return ALICE.sign_challenge(challenge, self.channel_id or ours)


def router() -> Router:
    alice = {"alice": Principal("frontend", authorized_keys=(ALICE.public_key(),))}
    roles = [Role("frontend", [Permission("com.", "prefix", call=True)])]
    limits = AuthLimits(failure_delay=0.05)
    return Router(
        realms=[
            Realm("realm1", roles=roles, auth=[Cryptosign(alice)], auth_limits=limits),
            Realm(
                "bound",
                roles=roles,
                auth=[Cryptosign(alice, channel_binding="tls-unique")],
                auth_limits=limits,
            ),
        ]
    )


@pytest.fixture
def tls_wamp(run_server: Any, certificates: Any) -> Any:  # noqa: F811
    """A factory: ``async with tls_wamp() as wamp`` serves the router on wss."""

    @contextlib.asynccontextmanager
    async def serve(**config: Any) -> Any:
        options = {
            "ssl_certfile": str(certificates.server_cert),
            "ssl_keyfile": str(certificates.server_key),
            **config,
        }
        with run_server(application(router()), **options) as server:
            url = f"wss://127.0.0.1:{server.port}/ws"
            wamp = Wamp(None, url, "127.0.0.1", server.port, "json")
            try:
                yield wamp
            finally:
                await wamp.close()

    return serve


def client_context(certificates: Any, version: ssl.TLSVersion) -> ssl.SSLContext:  # noqa: F811
    context: ssl.SSLContext = certificates.client_context()
    context.maximum_version = version
    return context


async def bound_login(wamp: Wamp, context: ssl.SSLContext, realm: str, **extra: Any) -> Any:
    authextra = {**BINDING, **extra}
    return await login(
        wamp,
        ["cryptosign"],
        None,
        authextra=authextra,
        realm=realm,
        ssl=context,
        client_class=BoundClient,
    )


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
async def test_bound_signature_is_welcomed(
    tls_wamp: Any,
    certificates: Any,  # noqa: F811
    version: ssl.TLSVersion,
) -> None:
    context = client_context(certificates, version)
    async with tls_wamp() as wamp:
        for realm in ("realm1", "bound"):  # asked for by the client; required by the realm
            client = await bound_login(wamp, context, realm)
            details = await outcome(client)
            assert (details.authid, details.authmethod) == ("alice", "cryptosign"), details
            assert client.challenges[0].extra["channel_binding"] == "tls-unique"
            assert client.own_channel_id != bytes(32)  # a real binding, not autobahn's fallback


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
async def test_wrong_binding_is_refused(
    tls_wamp: Any,
    certificates: Any,  # noqa: F811
    version: ssl.TLSVersion,
) -> None:
    context = client_context(certificates, version)
    async with tls_wamp() as wamp:
        first = await bound_login(wamp, context, "bound")
        await outcome(first)
        # A man in the middle relays alice's answer to his own connection: it is bound to hers.
        relayed = await login(
            wamp,
            ["cryptosign"],
            None,
            authextra=BINDING,
            realm="bound",
            ssl=context,
            client_class=type("Relayed", (BoundClient,), {"channel_id": first.own_channel_id}),
        )
        assert await outcome(relayed) == "wamp.error.not_authorized"
        zeros = type("Zeros", (BoundClient,), {"channel_id": bytes(32)})
        for realm in ("realm1", "bound"):
            forged = await login(
                wamp,
                ["cryptosign"],
                None,
                authextra=BINDING,
                realm=realm,
                ssl=context,
                client_class=zeros,
            )
            assert await outcome(forged) == "wamp.error.not_authorized"
        # The realm requires binding: a client that does not ask for it is refused.
        unbound = await login(
            wamp,
            ["cryptosign"],
            None,
            ALICE.sign_challenge,
            {"pubkey": ALICE.public_key()},
            realm="bound",
            ssl=context,
        )
        assert await outcome(unbound) == "wamp.error.not_authorized"


async def test_binding_without_tls_is_refused(wamp_server: Any) -> None:
    """On plain ws there is no tls-unique: a client asking for binding is refused (not bound
    to autobahn's all-zero fallback), and a realm that requires it refuses everyone."""
    async with wamp_server(router()) as wamp:
        for realm in ("realm1", "bound"):
            client = await login(
                wamp,
                ["cryptosign"],
                None,
                authextra=BINDING,
                realm=realm,
                client_class=type("Zeros", (BoundClient,), {"channel_id": bytes(32)}),
            )
            assert await outcome(client) == "wamp.error.not_authorized"
        plain = await login(
            wamp, ["cryptosign"], None, ALICE.sign_challenge, {"pubkey": ALICE.public_key()}
        )
        assert (await outcome(plain)).authid == "alice"
