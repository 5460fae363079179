"""The sans-IO session core, fed raw messages without a network: lifecycle and bad input."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from consumers.wamp.ids import MAX_ID, SessionScopeIds, global_id
from consumers.wamp.session import State
from tests.wamp._core import CLIENT_ROLES, Core, feed

VIOLATION = "wamp.error.protocol_violation"


def hello(realm: str = "realm1") -> list[Any]:
    return [1, realm, {"roles": CLIENT_ROLES}]


def test_hello_welcome_announces_router_roles_and_features() -> None:
    core = Core()
    session, peer = core.new_session()
    feed(session, hello())
    [welcome] = peer.take()
    assert welcome[0] == 2
    assert 1 <= welcome[1] <= MAX_ID and welcome[1] == session.id
    details = welcome[2]
    broker = details["roles"]["broker"]["features"]
    dealer = details["roles"]["dealer"]["features"]
    for feature in (
        "publisher_identification",
        "pattern_based_subscription",
        "subscriber_blackwhite_listing",
        "publisher_exclusion",
        "event_retention",
    ):
        assert broker[feature] is True, feature
    for feature in (
        "caller_identification",
        "pattern_based_registration",
        "shared_registration",
        "call_timeout",
        "call_canceling",
        "progressive_call_results",
    ):
        assert dealer[feature] is True, feature
    assert details["authrole"] == "anonymous" and details["authmethod"] == "anonymous"
    assert details["realm"] == "realm1" and details["authid"].startswith("anonymous-")
    assert session.state is State.ESTABLISHED and core.realm.sessions == {session.id: session}


def test_unknown_realm_is_aborted_with_no_such_realm() -> None:
    session, peer = Core().new_session()
    feed(session, hello("nowhere"))
    [abort] = peer.take()
    assert abort[0] == 3 and abort[2] == "wamp.error.no_such_realm"
    assert "nowhere" in abort[1]["message"]
    assert peer.closed and session.state is State.CLOSED


# Every message type a client might send before HELLO, well-formed: each is out of order.
BEFORE_HELLO = [
    [2, 1, {"roles": {"broker": {}}}],
    [4, "ticket", {}],
    [5, "signature", {}],
    [6, {}, "wamp.close.normal"],
    [8, 68, 1, {}, "com.error"],
    [16, 1, {}, "com.topic"],
    [17, 1, 2],
    [32, 1, {}, "com.topic"],
    [33, 1, 2],
    [34, 1, 2],
    [35, 1],
    [36, 1, 2, {}],
    [48, 1, {}, "com.proc"],
    [49, 1, {}],
    [50, 1, {}],
    [64, 1, {}, "com.proc"],
    [65, 1, 2],
    [66, 1, 2],
    [67, 1],
    [68, 1, 2, {}],
    [69, 1, {}],
    [70, 1, {}],
]


@pytest.mark.parametrize("raw", BEFORE_HELLO, ids=lambda raw: str(raw[0]))
def test_any_message_before_hello_is_a_protocol_violation(raw: list[Any]) -> None:
    session, peer = Core().new_session()
    feed(session, raw)
    [abort] = peer.take()
    assert abort[0] == 3 and abort[2] == VIOLATION
    assert peer.closed and session.state is State.CLOSED


def test_abort_before_hello_closes_quietly() -> None:
    session, peer = Core().new_session()
    feed(session, [3, {}, "wamp.close.normal"])
    assert peer.take() == [] and peer.closed


MALFORMED: list[Any] = [
    {"not": "a list"},
    [],
    ["1", "realm1", {}],
    [999, 1],
    [1, "realm1"],  # HELLO without details
    [1, "realm1", {}],  # HELLO without roles
    [1, 42, {"roles": CLIENT_ROLES}],  # realm not a string
    [1, "realm1", {"roles": {"nonsense": {}}}],  # an unknown role
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_first_message_is_a_protocol_violation(raw: Any) -> None:
    session, peer = Core().new_session()
    feed(session, raw)
    [abort] = peer.take()
    assert abort[0] == 3 and abort[2] == VIOLATION and peer.closed


def test_undecodable_bytes_are_a_protocol_violation() -> None:
    core = Core()
    client = core.join()
    from tests.wamp._core import JSON

    with pytest.raises(Exception) as info:
        JSON.decode(b"[16, 1, {")
    client.session.receive_malformed(str(info.value))
    [abort] = client.take()
    assert abort[0] == 3 and abort[2] == VIOLATION
    assert core.realm.is_idle()


ESTABLISHED_MALFORMED: list[Any] = [
    [16, "one", {}, "com.topic"],  # request ID not an integer
    [16, 0, {}, "com.topic"],  # request ID out of range (IDs are 1..2^53)
    [16, MAX_ID + 1, {}, "com.topic"],
    [32, 1, [], "com.topic"],  # options not a dict
    [48, 1, {}, "com.proc", "not a list"],  # args not a list
    [48, 1, {}, "com.proc", [], ["not a dict"]],  # kwargs not a dict
    [64, 1, {"match": 5}, "com.proc"],
    [70],
]

ROUTER_ONLY = [
    [2, 1, {"roles": {"broker": {}}}],
    [4, "ticket", {}],
    [17, 1, 2],
    [33, 1, 2],
    [35, 1],
    [36, 1, 2, {}],
    [50, 1, {}],
    [65, 1, 2],
    [67, 1],
    [68, 1, 2, {}],
    [69, 1, {}],
]


@pytest.mark.parametrize(
    "raw",
    [*ESTABLISHED_MALFORMED, *ROUTER_ONLY, hello(), [5, "sig", {}], [8, 48, 1, {}, "com.e"]],
    ids=lambda raw: str(raw[0]) if raw else "empty",
)
def test_bad_message_on_an_established_session_aborts_it_alone(raw: list[Any]) -> None:
    core = Core()
    victim = core.join()
    bystander = core.join()
    bystander.send(32, 1, {}, "com.topic")
    assert victim.send(*raw)[0][:3:2] == [3, VIOLATION]
    assert victim.peer.closed and victim.session.state is State.CLOSED
    # The other session is untouched and still routes.
    other = core.join()
    other.send(16, 1, {}, "com.topic", ["still here"])
    [event] = bystander.take()
    assert event[0] == 36 and event[4] == ["still here"]
    assert victim.id not in core.realm.sessions


def test_client_goodbye_is_answered_and_ends_the_session() -> None:
    core = Core()
    client = core.join()
    client.send(32, 1, {}, "com.topic")
    client.send(64, 2, {}, "com.proc")
    assert client.send(6, {}, "wamp.close.close_realm") == [[6, {}, "wamp.close.goodbye_and_out"]]
    assert client.peer.closed and client.session.state is State.CLOSED
    assert core.realm.is_idle()
    assert client.send(16, 1, {}, "com.topic") == []  # a closed session ignores everything


def test_router_goodbye_waits_for_the_client_reply() -> None:
    core = Core()
    client = core.join()
    client.session.goodbye("wamp.close.system_shutdown", "bye")
    assert client.take() == [[6, {"message": "bye"}, "wamp.close.system_shutdown"]]
    assert client.session.state is State.CLOSING and core.realm.is_idle()
    assert client.send(16, 1, {"acknowledge": True}, "com.topic") == []  # ignored while closing
    client.send(6, {}, "wamp.close.goodbye_and_out")
    assert client.session.state.value == "closed" and client.peer.closed


def test_client_abort_ends_the_session_without_reply() -> None:
    core = Core()
    client = core.join()
    assert client.send(3, {}, "wamp.close.normal") == []
    assert client.peer.closed and core.realm.is_idle()


def test_lost_transport_leaves_no_routing_state() -> None:
    core = Core()
    client = core.join()
    client.send(32, 1, {"match": "prefix"}, "com")
    client.send(32, 2, {"match": "wildcard"}, "com..x")
    client.send(64, 3, {}, "com.proc")
    client.session.lost()
    assert core.realm.is_idle()


def test_ids_follow_the_spec() -> None:
    ids = [global_id() for _ in range(1000)]
    assert all(1 <= i <= MAX_ID for i in ids) and len(set(ids)) == 1000
    counter = SessionScopeIds()
    assert [counter.next() for _ in range(3)] == [1, 2, 3]
    counter._last = MAX_ID - 1
    assert [counter.next(), counter.next()] == [MAX_ID, 1]


def test_a_protocol_violation_is_logged_with_the_session_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="consumers.wamp")
    core = Core()
    client = core.join()
    client.send(36, 1, 2, {})  # an EVENT from a client
    [record] = [r for r in caplog.records if r.name == "consumers.wamp"]
    assert f"WAMP session {client.id} aborted: protocol violation" in record.getMessage()
    assert "Event is sent by routers, not clients" in record.getMessage()
