"""Authentication in the sans-IO core: each method driven with raw messages, no network."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from consumers.wamp.auth import Anonymous, Cryptosign, Principal, Ticket, WampCra
from consumers.wamp.roles import Permission, Role
from consumers.wamp.settings import AuthLimits
from tests.wamp._core import CLIENT_ROLES, Core, feed

ROLES = [Role("frontend", [Permission("com.", "prefix", call=True)]), Role("public")]
ALICE = SigningKey.generate()
MALLORY = SigningKey.generate()
ALICE_KEY = ALICE.verify_key.encode().hex()


def core(auth: list[Any] | None = None, **options: Any) -> Core:
    auth = auth or [
        Ticket({"joe": Principal("frontend", secret="s3cret")}),
        WampCra(
            {
                "peter": Principal("frontend", secret="secret1"),
                "salty": Principal("frontend", secret="pw", salt="salt1", iterations=10),
            }
        ),
        Cryptosign({"alice": Principal("frontend", authorized_keys=(ALICE_KEY,))}),
    ]
    limits = AuthLimits(**{"failure_delay": 0.5, **options})
    return Core(roles=ROLES, auth=auth, auth_limits=limits)


def hello(methods: list[str], authid: str | None = None, **extra: Any) -> list[Any]:
    details: dict[str, Any] = {"roles": CLIENT_ROLES, "authmethods": methods}
    if authid:
        details["authid"] = authid
    if extra:
        details["authextra"] = extra
    return [1, "realm1", details]


def start(c: Core, *raw: Any) -> tuple[Any, Any]:
    session, peer = c.new_session()
    feed(session, list(raw))
    return session, peer


def refused_after_delay(c: Core, peer: Any, reason: str = "wamp.error.not_authorized") -> None:
    assert peer.take() == []  # nothing before the uniform delay
    c.timers.advance(0.5)
    [abort] = peer.take()
    assert abort[0] == 3 and abort[2] == reason, abort
    assert peer.closed


def test_ticket() -> None:
    c = core()
    session, peer = start(c, *hello(["ticket"], "joe"))
    assert peer.take() == [[4, "ticket", {}]]
    feed(session, [5, "s3cret", {}])
    [welcome] = peer.take()
    assert welcome[0] == 2
    assert welcome[2]["authid"] == "joe" and welcome[2]["authrole"] == "frontend"
    assert welcome[2]["authmethod"] == "ticket"


@pytest.mark.parametrize(("authid", "ticket"), [("joe", "wrong"), ("nobody", "s3cret")])
def test_wrong_ticket_and_unknown_authid_fail_alike(authid: str, ticket: str) -> None:
    c = core()
    session, peer = start(c, *hello(["ticket"], authid))
    assert peer.take() == [[4, "ticket", {}]]
    feed(session, [5, ticket, {}])
    refused_after_delay(c, peer)


def cra_answer(challenge: list[Any], secret: str) -> str:
    extra = challenge[2]
    key = secret.encode()
    if "salt" in extra:
        raw = hashlib.pbkdf2_hmac(
            "sha256", secret.encode(), extra["salt"].encode(), extra["iterations"], extra["keylen"]
        )
        key = base64.b64encode(raw)
    digest = hmac.new(key, extra["challenge"].encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize(("authid", "secret"), [("peter", "secret1"), ("salty", "pw")])
def test_wampcra(authid: str, secret: str) -> None:
    c = core()
    session, peer = start(c, *hello(["wampcra"], authid))
    [challenge] = peer.take()
    assert challenge[1] == "wampcra"
    assert json.loads(challenge[2]["challenge"])["session"] == session.id
    assert ("salt" in challenge[2]) == (authid == "salty")
    feed(session, [5, cra_answer(challenge, secret), {}])
    assert peer.take()[0][0] == 2


def test_wampcra_replayed_signature_and_unknown_authid_fail() -> None:
    c = core()
    first, first_peer = start(c, *hello(["wampcra"], "peter"))
    signature = cra_answer(first_peer.take()[0], "secret1")
    feed(first, [5, signature, {}])
    assert first_peer.take()[0][0] == 2
    replay, replay_peer = start(c, *hello(["wampcra"], "peter"))
    replay_peer.take()
    feed(replay, [5, signature, {}])  # a fresh challenge: the old signature does not fit
    refused_after_delay(c, replay_peer)
    ghost, ghost_peer = start(c, *hello(["wampcra"], "ghost"))
    [decoy] = ghost_peer.take()  # an unknown authid still gets a challenge
    feed(ghost, [5, cra_answer(decoy, "secret1"), {}])
    refused_after_delay(c, ghost_peer)


def cryptosign_answer(challenge: list[Any], key: SigningKey) -> str:
    message = bytes.fromhex(challenge[2]["challenge"])
    return (key.sign(message).signature + message).hex()


@pytest.mark.parametrize(("signer", "welcomed"), [(ALICE, True), (MALLORY, False)])
def test_cryptosign(signer: SigningKey, welcomed: bool) -> None:
    c = core()
    pubkey = ALICE.verify_key.encode().hex()
    session, peer = start(c, *hello(["cryptosign"], None, pubkey=pubkey))
    [challenge] = peer.take()
    assert challenge[1] == "cryptosign" and len(challenge[2]["challenge"]) == 64
    feed(session, [5, cryptosign_answer(challenge, signer), {}])
    if welcomed:
        [welcome] = peer.take()
        assert welcome[2]["authid"] == "alice" and welcome[2]["authmethod"] == "cryptosign"
    else:
        refused_after_delay(c, peer)


def test_authmethods_order_is_the_clients() -> None:
    c = core()
    _, peer = start(c, *hello(["wampcra", "ticket"], "peter"))
    assert peer.take()[0][1] == "wampcra"
    _, peer = start(c, *hello(["nonsense", "ticket"], "peter"))
    assert peer.take()[0][1] == "ticket"


def test_no_auth_method_and_anonymous_only_when_configured() -> None:
    c = core()
    _, peer = start(c, *hello(["anonymous"]))
    refused_after_delay(c, peer, "wamp.error.no_auth_method")
    open_door = core(auth=[Anonymous("public")])
    _, peer = start(open_door, *hello(["anonymous"]))
    [welcome] = peer.take()
    assert welcome[2]["authrole"] == "public" and welcome[2]["authid"].startswith("anonymous-")


def test_authenticate_without_challenge_and_other_messages_before_welcome() -> None:
    c = core(auth=[Anonymous("public")])
    session, peer = start(c, [5, "sig", {}])
    assert peer.take()[0][2] == "wamp.error.protocol_violation"
    c = core()
    session, peer = start(c, *hello(["ticket"], "joe"))
    peer.take()
    feed(session, [32, 1, {}, "com.topic"])
    assert peer.take()[0][2] == "wamp.error.protocol_violation"


def test_rate_limit_per_authid_then_per_address() -> None:
    c = core(failure_delay=0.0, max_failures_per_authid=3, max_failures_per_address=1000)
    for _ in range(3):
        session, peer = start(c, *hello(["ticket"], "joe"))
        feed(session, [5, "wrong", {}])
        assert peer.take()[-1][0] == 3
    session, peer = start(c, *hello(["ticket"], "joe"))
    [abort] = peer.take()  # refused without a challenge, even with the right ticket to come
    assert abort[0] == 3 and "too many" in abort[1]["message"]
    c.timers.advance(0)
    limiter = c.realm.auth_failures
    limiter.by_authid.clock = lambda: 1e9  # the window has moved on
    session, peer = start(c, *hello(["ticket"], "joe"))
    feed(session, [5, "s3cret", {}])
    assert peer.take()[-1][0] == 2


def test_wampcra_decoy_looks_like_a_real_challenge() -> None:
    salty = Principal("frontend", secret="pw", salt="a1b2c3d4e5f60718", iterations=10, keylen=16)
    c = core(auth=[WampCra({"salty": salty})])
    _, real_peer = start(c, *hello(["wampcra"], "salty"))
    _, decoy_peer = start(c, *hello(["wampcra"], "ghost"))
    _, again_peer = start(c, *hello(["wampcra"], "ghost"))
    real, decoy, again = real_peer.take()[0][2], decoy_peer.take()[0][2], again_peer.take()[0][2]
    assert set(real) == set(decoy) == {"challenge", "salt", "iterations", "keylen"}
    assert (decoy["iterations"], decoy["keylen"]) == (10, 16)  # the principal's parameters
    assert len(decoy["salt"]) == len(real["salt"]) and decoy["salt"] != real["salt"]
    assert set(json.loads(real["challenge"])) == set(json.loads(decoy["challenge"]))
    assert decoy["salt"] == again["salt"]  # stable: retrying does not reveal a decoy
