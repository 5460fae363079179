"""The hostile list of authentication, beyond what test_auth.py and test_auth_core.py cover.

- An unknown authid (or key) and a known one with a wrong secret fail alike, method by method:
  the same CHALLENGE shape, nothing before the uniform delay, the same ABORT after it.
- One CHALLENGE gets one guess: an AUTHENTICATE after a wrong one is never welcomed.
- AUTHENTICATE without a CHALLENGE (first message, after WELCOME, for a method that sent none)
  is a protocol violation, also on the real socket, and the server keeps serving.
- A replayed WAMP-CRA signature and a cryptosign key the realm does not know, over the network.
(Wrong tickets, wrong signatures and 1,000 failed logins: test_auth.py.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from consumers.wamp.auth import Anonymous, Principal, WampCra
from tests.wamp._auth_client import CryptosignKey, login, outcome
from tests.wamp._core import feed
from tests.wamp.test_auth import ALICE as ALICE_CLIENT
from tests.wamp.test_auth import cra, router
from tests.wamp.test_auth_core import (
    ALICE,
    ALICE_KEY,
    MALLORY,
    core,
    cra_answer,
    cryptosign_answer,
    hello,
    start,
)

DELAY = 0.5  # test_auth_core.core()'s failure_delay
MALLORY_KEY = MALLORY.verify_key.encode().hex()

Answer = Callable[[list[Any]], str]
PLAIN = Principal("frontend", secret="secret1")
SALTED = Principal("frontend", secret="pw", salt="0f1e2d3c4b5a6978", iterations=20, keylen=24)
# method -> (the HELLO of a known identity, the HELLO of an unknown one, a wrong answer to both,
# and the realm's methods: the defaults of test_auth_core.core() when None)
ALIKE: dict[str, tuple[list[Any], list[Any], Answer, list[Any] | None]] = {
    "ticket": (hello(["ticket"], "joe"), hello(["ticket"], "nobody"), lambda c: "wrong", None),
    "wampcra": (
        hello(["wampcra"], "peter"),
        hello(["wampcra"], "ghost"),
        lambda c: cra_answer(c, "not-it"),
        [WampCra({"peter": PLAIN, "paul": PLAIN})],
    ),
    "wampcra-salted": (
        hello(["wampcra"], "salty"),
        hello(["wampcra"], "ghost"),
        lambda c: cra_answer(c, "not-it"),
        [WampCra({"salty": SALTED, "sally": SALTED})],
    ),
    # alice's key signed by mallory; mallory's own key, which the realm does not know, by her
    "cryptosign": (
        hello(["cryptosign"], None, pubkey=ALICE_KEY),
        hello(["cryptosign"], None, pubkey=MALLORY_KEY),
        lambda c: cryptosign_answer(c, MALLORY),
        None,
    ),
}


def failed_login(
    raw_hello: list[Any], answer: Answer, auth: list[Any] | None = None
) -> tuple[list[Any], list[Any]]:
    """Drive one failing login; its CHALLENGE and its ABORT, checking the ABORT comes exactly
    after the uniform delay and not before."""
    c = core(auth=auth)
    session, peer = start(c, *raw_hello)
    [challenge] = peer.take()
    assert challenge[0] == 4, challenge
    feed(session, [5, answer(challenge), {}])
    c.timers.advance(DELAY - 0.01)
    assert peer.take() == [], "refused before the uniform delay"
    c.timers.advance(0.01)
    [abort] = peer.take()
    assert abort[0] == 3 and peer.closed, abort
    return challenge, abort


@pytest.mark.parametrize("method", list(ALIKE))
def test_unknown_and_known_identities_fail_alike(method: str) -> None:
    known_hello, unknown_hello, answer, auth = ALIKE[method]
    known_challenge, known_abort = failed_login(known_hello, answer, auth)
    unknown_challenge, unknown_abort = failed_login(unknown_hello, answer, auth)
    assert known_challenge[1] == unknown_challenge[1] == method.split("-")[0]
    known_extra, unknown_extra = known_challenge[2], unknown_challenge[2]
    assert set(known_extra) == set(unknown_extra)
    if method.startswith("wampcra"):  # a decoy challenge for the unknown authid
        assert set(json.loads(known_extra["challenge"])) == set(
            json.loads(unknown_extra["challenge"])
        )
        shape = {
            k: v if k != "salt" else len(v) for k, v in known_extra.items() if k != "challenge"
        }
        decoy = {
            k: v if k != "salt" else len(v) for k, v in unknown_extra.items() if k != "challenge"
        }
        assert shape == decoy
    assert known_abort == unknown_abort, (known_abort, unknown_abort)
    assert known_abort[2] == "wamp.error.not_authorized"


def decoy_extra(cra: WampCra, authid: str) -> dict[str, Any]:
    c = core(auth=[cra])
    _, peer = start(c, *hello(["wampcra"], authid))
    extra: dict[str, Any] = peer.take()[0][2]
    del extra["challenge"]
    return extra


def test_wampcra_decoys_follow_the_principals_shapes() -> None:
    """In a realm of salted and unsalted principals, unknown authids get either shape (so
    neither proves an authid exists), each one stably; workers sharing ``decoy_secret`` agree."""
    principals = {"peter": PLAIN, "salty": SALTED}
    cra = WampCra(principals, decoy_secret="shared")
    shapes = [decoy_extra(cra, f"ghost{n}") for n in range(40)]
    salted = [extra for extra in shapes if extra]
    assert 0 < len(salted) < len(shapes)  # both shapes occur (40 draws: 2 in 10**12 fail)
    assert all((e["iterations"], e["keylen"], len(e["salt"])) == (20, 24, 16) for e in salted)
    assert decoy_extra(cra, "ghost1") == shapes[1]  # stable across attempts
    other_worker = WampCra(principals, decoy_secret="shared")
    assert [decoy_extra(other_worker, f"ghost{n}") for n in range(40)] == shapes


@pytest.mark.parametrize(
    ("raw_hello", "wrong", "right"),
    [
        (hello(["ticket"], "joe"), lambda c: "wrong", lambda c: "s3cret"),
        (
            hello(["wampcra"], "peter"),
            lambda c: cra_answer(c, "not-it"),
            lambda c: cra_answer(c, "secret1"),
        ),
        (
            hello(["cryptosign"], None, pubkey=ALICE_KEY),
            lambda c: cryptosign_answer(c, MALLORY),
            lambda c: cryptosign_answer(c, ALICE),
        ),
    ],
    ids=["ticket", "wampcra", "cryptosign"],
)
def test_one_challenge_gets_one_guess(raw_hello: list[Any], wrong: Answer, right: Answer) -> None:
    c = core()
    session, peer = start(c, *raw_hello)
    [challenge] = peer.take()
    feed(session, [5, wrong(challenge), {}])
    feed(session, [5, right(challenge), {}])  # during the delay, before the ABORT
    c.timers.advance(DELAY)
    sent = peer.take()
    assert [message[0] for message in sent] == [3], sent  # one ABORT, never a WELCOME
    assert peer.closed


def test_authenticate_without_a_challenge_in_the_core() -> None:
    open_door = core(auth=[Anonymous("public")])
    session, peer = start(open_door, *hello(["anonymous"]))
    assert peer.take()[0][0] == 2  # welcomed: no challenge was ever sent
    feed(session, [5, "late", {}])
    [abort] = peer.take()
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation", abort
    assert peer.closed


@pytest.mark.transports("asyncio")
async def test_authenticate_without_a_challenge_on_the_socket(wamp_server: Any) -> None:
    """Raw frames on a real WebSocket: AUTHENTICATE first, or right after HELLO for a method
    that does not challenge (ticket and anonymous are offered; anonymous is not): ABORT
    protocol_violation and the connection closes; the server goes on serving logins."""
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with wamp_server(router()) as wamp:
        protocol = [Subprotocol("wamp.2.json")]
        roles = {"caller": {}}
        for opening in (
            [[5, "s3cret", {}]],
            [[1, "realm1", {"roles": roles, "authmethods": ["ticket"], "authid": "joe"}]],
        ):
            async with connect(wamp.url, subprotocols=protocol, open_timeout=10) as ws:
                for message in opening:
                    await ws.send(json.dumps(message))
                if opening[0][0] == 1:  # the CHALLENGE came: answer twice, quickly
                    assert json.loads(await asyncio.wait_for(ws.recv(), 10))[0] == 4
                    await ws.send(json.dumps([5, "wrong", {}]))
                    await ws.send(json.dumps([5, "s3cret", {}]))
                abort = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert abort[0] == 3, abort
                await asyncio.wait_for(ws.wait_closed(), 10)
        joe = await login(wamp, ["ticket"], "joe", lambda c: "s3cret")
        assert (await outcome(joe)).authid == "joe"


@pytest.mark.transports("asyncio")
async def test_replayed_wampcra_signature_over_the_network(wamp_server: Any) -> None:
    async with wamp_server(router()) as wamp:
        signatures: list[str] = []

        def record(challenge: Any) -> str:
            signatures.append(cra("secret1")(challenge))
            return signatures[-1]

        peter = await login(wamp, ["wampcra"], "peter", record)
        assert (await outcome(peter)).authid == "peter"
        replay = await login(wamp, ["wampcra"], "peter", lambda c: signatures[0])
        assert await outcome(replay) == "wamp.error.not_authorized"
        assert replay.challenges[0].extra["challenge"] != peter.challenges[0].extra["challenge"]


@pytest.mark.transports("asyncio")
async def test_unknown_cryptosign_key_over_the_network(wamp_server: Any) -> None:
    mallory: Any = CryptosignKey(bytes(range(1, 33)))
    async with wamp_server(router()) as wamp:
        for authid in (None, "alice"):  # her own key; claiming to be alice does not help
            client = await login(
                wamp,
                ["cryptosign"],
                authid,
                mallory.sign_challenge,
                {"pubkey": mallory.public_key()},
            )
            assert await outcome(client) == "wamp.error.not_authorized"
        alice = await login(
            wamp,
            ["cryptosign"],
            None,
            ALICE_CLIENT.sign_challenge,
            {"pubkey": ALICE_CLIENT.public_key()},
        )
        assert (await outcome(alice)).authid == "alice"
