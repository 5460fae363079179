"""Roles, permissions and the dynamic authorizer in the sans-IO core (no network)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from consumers.wamp.roles import Decision, Permission, Role
from consumers.wamp.settings import Limits
from tests.wamp._core import Core

NOT_AUTHORIZED = "wamp.error.not_authorized"

FRONTEND = Role(
    "anonymous",
    [
        Permission("com.app.", match="prefix", publish=True, subscribe=True, call=True),
        Permission("com.app.admin.", match="prefix"),  # the longer prefix refuses everything
        Permission("com.app.admin.status", call=True),  # the exact rule beats both prefixes
        Permission("com..public", match="wildcard", subscribe=True),
        Permission("com.other.", match="prefix", register=True),
    ],
)


def test_most_specific_rule_wins() -> None:
    role = FRONTEND
    assert role.rule_for("com.app.admin.status") == FRONTEND.permissions[2]
    assert role.rule_for("com.app.admin.reboot") == FRONTEND.permissions[1]
    assert role.rule_for("com.app.x") == FRONTEND.permissions[0]
    assert role.rule_for("com.x.public") == FRONTEND.permissions[3]
    assert role.rule_for("org.x") is None


@pytest.mark.parametrize(
    ("action", "uri", "allowed"),
    [
        ("publish", "com.app.chat", True),
        ("subscribe", "com.app.chat", True),
        ("call", "com.app.add", True),
        ("register", "com.app.add", False),
        ("call", "com.app.admin.reboot", False),
        ("call", "com.app.admin.status", True),
        ("subscribe", "com.x.public", True),
        ("publish", "com.x.public", False),
        ("register", "com.other.proc", True),
        ("call", "org.unknown", False),
    ],
)
def test_permission_table_allows_and_refuses(action: str, uri: str, allowed: bool) -> None:
    core = Core(roles=[FRONTEND])
    client = core.join()
    messages = {
        "publish": [16, 1, {"acknowledge": True}, uri],
        "subscribe": [32, 1, {}, uri],
        "call": [48, 1, {}, uri],
        "register": [64, 1, {}, uri],
    }
    [reply] = client.send(*messages[action])
    if allowed:
        # A call to nothing registered gets no_such_procedure, which is past authorization.
        assert reply[0] != 8 or reply[4] != NOT_AUTHORIZED, reply
    else:
        assert reply[0] == 8 and reply[4] == NOT_AUTHORIZED, reply


def test_refusal_is_logged_with_session_authid_role_action_uri(
    caplog: pytest.LogCaptureFixture,
) -> None:
    core = Core(roles=[FRONTEND])
    client = core.join()
    with caplog.at_level(logging.WARNING, "consumers.wamp"):
        client.send(64, 7, {}, "com.app.add")
    line = caplog.records[-1].getMessage()
    for part in (str(client.id), client.session.authid, "anonymous", "register", "com.app.add"):
        assert str(part) in line


def test_unacknowledged_refused_publish_gets_no_error_and_delivers_nothing() -> None:
    core = Core(roles=[Role("anonymous", [Permission("com.", "prefix", subscribe=True)])])
    subscriber, publisher = core.join(), core.join()
    subscriber.send(32, 1, {}, "com.topic")
    assert publisher.send(16, 2, {}, "com.topic", ["x"]) == []
    assert subscriber.take() == []


def test_unknown_role_may_do_nothing_and_no_roles_means_open() -> None:
    closed = Core(roles=[Role("frontend", [Permission("com.", "prefix", call=True)])])
    [reply] = closed.join().send(32, 1, {}, "com.topic")
    assert reply[4] == NOT_AUTHORIZED
    open_realm = Core()
    [reply] = open_realm.join().send(32, 1, {}, "com.topic")
    assert reply[0] == 33


def test_disclosure_from_the_rule() -> None:
    role = Role(
        "anonymous",
        [Permission("com.", "prefix", call=True, register=True, disclose_caller=True)],
    )
    core = Core(roles=[role])
    callee, caller = core.join(), core.join()
    callee.send(64, 1, {}, "com.add")
    caller.send(48, 2, {}, "com.add", [1])
    [invocation] = callee.take()
    assert invocation[3]["caller"] == caller.id
    assert invocation[3]["caller_authrole"] == "anonymous"


def test_trusted_role_is_built_in_for_in_process_sessions() -> None:
    core = Core(roles=[Role("frontend")])
    component = core.join(authid="backend", authrole="trusted")
    [reply] = component.send(64, 1, {}, "com.anything")
    assert reply[0] == 65


def test_sync_authorizer_with_cache() -> None:
    asked: list[tuple[str, str]] = []

    def authorizer(details: dict[str, Any], uri: str, action: str) -> Any:
        asked.append((uri, action))
        assert details["authrole"] == "anonymous" and details["session"]
        return {"allow": uri.startswith("com.ok"), "cache": 60}

    core = Core(roles=[Role("anonymous", authorizer=authorizer)])
    client = core.join()
    assert client.send(32, 1, {}, "com.ok")[0][0] == 33
    assert client.send(32, 2, {}, "com.ok")[0][0] == 33
    assert client.send(32, 3, {}, "com.no")[0][4] == NOT_AUTHORIZED
    assert asked == [("com.ok", "subscribe"), ("com.no", "subscribe")]  # the second was cached
    other = core.join()
    other.send(32, 1, {}, "com.ok")
    assert len(asked) == 3  # the cache is per session


def test_uncached_decisions_ask_every_time_and_errors_refuse() -> None:
    calls = 0

    def authorizer(details: dict[str, Any], uri: str, action: str) -> Any:
        nonlocal calls
        calls += 1
        if uri == "com.boom":
            raise RuntimeError("broken authorizer")
        return Decision(True)

    client = Core(roles=[Role("anonymous", authorizer=authorizer)]).join()
    client.send(32, 1, {}, "com.a")
    client.send(32, 2, {}, "com.a")
    assert calls == 2
    assert client.send(32, 3, {}, "com.boom")[0][4] == NOT_AUTHORIZED


async def test_async_authorizer_keeps_the_sessions_order() -> None:
    gate = asyncio.Event()

    async def authorizer(details: dict[str, Any], uri: str, action: str) -> bool:
        await gate.wait()
        return uri != "com.no"

    core = Core(roles=[Role("anonymous", authorizer=authorizer)])
    client = core.join()
    assert client.send(32, 1, {}, "com.a") == []  # waiting for the authorizer
    assert client.send(32, 2, {}, "com.no") == []  # held behind it
    assert client.send(32, 3, {}, "com.b") == []
    gate.set()
    for _ in range(20):
        await asyncio.sleep(0)
    replies = client.take()
    assert [(r[0], r[2] if r[0] == 8 else r[1]) for r in replies] == [(33, 1), (8, 2), (33, 3)]


async def test_messages_held_behind_an_authorizer_are_bounded() -> None:
    gate = asyncio.Event()

    async def authorizer(details: dict[str, Any], uri: str, action: str) -> bool:
        await gate.wait()
        return True

    core = Core(
        limits=Limits(max_outgoing_queue=3), roles=[Role("anonymous", authorizer=authorizer)]
    )
    client = core.join()
    for request in range(1, 5):
        assert client.send(32, request, {}, "com.a") == []  # the first waits, three are held
    [abort] = client.send(32, 5, {}, "com.a")
    assert abort[0] == 3 and abort[2] == "wamp.error.protocol_violation"
    gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert client.take() == []  # the session is gone: nothing is routed for it afterwards


def test_roles_from_a_crossbar_config() -> None:
    role = Role.from_config(
        {
            "name": "frontend",
            "permissions": [
                {
                    "uri": "com.app.",
                    "match": "prefix",
                    "allow": {"call": True, "subscribe": True},
                    "disclose": {"caller": True},
                    "cache": True,
                },
                {"uri": "com.legacy.*", "publish": True},  # the older form
            ],
        }
    )
    app = role.rule_for("com.app.add")
    assert app is not None and app.call and app.subscribe and not app.register
    assert app.decide("call") == Decision(True, disclose=True)
    legacy = role.rule_for("com.legacy.x")
    assert legacy is not None and legacy.match == "prefix" and legacy.publish
    dynamic = Role.from_config({"name": "backend", "authorizer": "com.app.authorize"})
    assert dynamic.authorizer == "com.app.authorize" and dynamic.rule_for("com.x") is None
    with pytest.raises(ValueError):
        Permission.from_config({"uri": "com.x", "match": "regex"})
