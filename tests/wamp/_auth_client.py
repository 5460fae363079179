"""autobahn-python clients that authenticate: a session class driven by what the test asks for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from autobahn.wamp import auth as _auth
from nacl.signing import SigningKey

from tests.wamp._autobahn import ComponentConfig, WampWebSocketClientFactory
from tests.wamp.conftest import SERIALIZERS, Client, Wamp

compute_wcs: Any = _auth.compute_wcs
derive_key: Any = _auth.derive_key


class CryptosignKey:
    """An Ed25519 key that answers cryptosign challenges the way autobahn's ``AuthCryptoSign``
    does: hex(signature || challenge). (autobahn's own key class needs the base58 package.)"""

    def __init__(self, seed: bytes) -> None:
        self.key = SigningKey(seed)

    def public_key(self) -> str:
        return bytes(self.key.verify_key).hex()

    def sign_challenge(self, challenge: Any, channel_id: bytes | None = None) -> str:
        """With a ``channel_id`` (TLS channel binding) the signed message is challenge XOR it."""
        message = bytes.fromhex(challenge.extra["challenge"])
        if channel_id is not None:
            message = bytes(a ^ b for a, b in zip(message, channel_id, strict=True))
        return (self.key.sign(message).signature + message).hex()


class AuthClient(Client):
    """Joins with ``authmethods``/``authid``/``authextra`` and answers CHALLENGEs with
    ``answer(challenge)`` (sync or async)."""

    authmethods: list[str]
    login_authid: str | None
    login_authextra: dict[str, Any] | None
    answer: Callable[[Any], Any]

    def onConnect(self) -> None:
        self.join(
            self.config.realm,
            authmethods=self.authmethods,
            authid=self.login_authid,
            authextra=self.login_authextra,
        )

    async def onChallenge(self, challenge: Any) -> Any:
        self.challenges = [*getattr(self, "challenges", []), challenge]
        result = self.answer(challenge)
        if asyncio.iscoroutine(result):
            result = await result
        return result


async def login(
    wamp: Wamp,
    authmethods: list[str],
    authid: str | None = None,
    answer: Callable[[Any], Any] = lambda challenge: "",
    authextra: dict[str, Any] | None = None,
    realm: str = "realm1",
    headers: dict[str, str] | None = None,
    ssl: Any = None,
    client_class: type[AuthClient] = AuthClient,
) -> AuthClient:
    """A client whose transport is open and whose HELLO has gone out: await ``client.joined``
    (it raises ``RuntimeError("refused: <reason> ...")`` when the router aborts)."""
    made: list[AuthClient] = []

    def make() -> AuthClient:
        client = client_class(ComponentConfig(realm))
        client.authmethods, client.login_authid = authmethods, authid
        client.login_authextra = authextra
        client.answer = answer
        made.append(client)
        return client

    factory = WampWebSocketClientFactory(
        make, url=wamp.url, serializers=[SERIALIZERS[wamp.serializer]()], headers=headers
    )
    loop = asyncio.get_running_loop()
    await loop.create_connection(factory, wamp.host, wamp.port, ssl=ssl)
    for _ in range(400):
        if made:
            break
        await asyncio.sleep(0.005)
    wamp.clients.append(made[0])
    return made[0]


async def outcome(client: AuthClient, timeout: float = 5) -> Any:
    """The WELCOME details, or the refusal's reason URI as a string."""
    try:
        return await asyncio.wait_for(client.joined, timeout)
    except RuntimeError as exc:
        return str(exc).split()[1]
