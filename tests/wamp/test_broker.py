"""The broker and its publish filter, driven with raw messages through the sans-IO core."""

from __future__ import annotations

from typing import Any

from consumers.wamp.codec import SUBPROTOCOLS
from consumers.wamp.ids import MAX_ID
from consumers.wamp.settings import LIMIT_EXCEEDED, Limits
from tests.wamp._core import Core, Peer

SUBSCRIBED, EVENT, PUBLISHED, UNSUBSCRIBED, ERROR = 33, 36, 17, 35, 8


def subscribe(client: Any, topic: str, request: int = 1, **options: Any) -> int:
    [reply] = client.send(32, request, options, topic)
    assert reply[0] == SUBSCRIBED, reply
    return int(reply[2])


def events(client: Peer) -> list[list[Any]]:
    got = client.take()
    assert all(message[0] == EVENT for message in got), got
    return got


def test_subscribe_publish_event_and_exclude_me_default() -> None:
    core = Core()
    a, b = core.join(), core.join()
    sub_a = subscribe(a, "com.topic")
    sub_b = subscribe(b, "com.topic")
    assert sub_a == sub_b  # one subscription, two subscribers
    assert b.send(16, 1, {}, "com.topic", [1], {"k": "v"}) == []  # not to itself, no ack
    [event] = events(a)
    assert event[1] == sub_a and 1 <= event[2] <= MAX_ID
    assert event[3] == {} and event[4:] == [[1], {"k": "v"}]
    own = b.send(16, 2, {"exclude_me": False}, "com.topic")  # send() returns what b got
    assert len(events(a)) == 1 and len(own) == 1 and own[0][0] == EVENT


def test_acknowledge_answers_published_with_the_publication_id() -> None:
    core = Core()
    a, b = core.join(), core.join()
    subscribe(a, "com.topic")
    [published] = b.send(16, 7, {"acknowledge": True}, "com.topic", ["x"])
    [event] = events(a)
    assert published[:2] == [PUBLISHED, 7] and published[2] == event[2]


def test_prefix_and_wildcard_subscriptions_get_the_topic() -> None:
    core = Core()
    a, b = core.join(), core.join()
    exact = subscribe(a, "com.app.temp", 1)
    prefix = subscribe(a, "com.app", 2, match="prefix")
    wildcard = subscribe(a, "com..temp", 3, match="wildcard")
    subscribe(a, "com.other", 4, match="prefix")
    subscribe(a, "com..humidity", 5, match="wildcard")
    b.send(16, 1, {}, "com.app.temp", ["t"])
    got = {event[1]: event[3] for event in events(a)}
    assert got == {
        exact: {},
        prefix: {"topic": "com.app.temp"},
        wildcard: {"topic": "com.app.temp"},
    }
    b.send(16, 2, {}, "com.appendix")  # a string prefix, as the spec says
    assert [event[1] for event in events(a)] == [prefix]
    b.send(16, 3, {}, "com.app.temp.deeper")  # wildcards match whole components only
    assert [event[1] for event in events(a)] == [prefix]


def test_exclude_and_eligible_by_session_authid_and_authrole() -> None:
    core = Core()
    publisher = core.join(authid="pub", authrole="admin")
    alice = core.join(authid="alice", authrole="user")
    bob = core.join(authid="bob", authrole="user")
    carol = core.join(authid="carol", authrole="admin")
    subscribers = {"alice": alice, "bob": bob, "carol": carol, "pub": publisher}
    for client in subscribers.values():
        subscribe(client, "com.topic")

    def receivers(**options: Any) -> set[str]:
        own = publisher.send(16, 1, options, "com.topic")
        got = {name for name, client in subscribers.items() if client.take()}
        return got | ({"pub"} if own else set())

    assert receivers() == {"alice", "bob", "carol"}
    assert receivers(exclude_me=False) == {"alice", "bob", "carol", "pub"}
    assert receivers(exclude=[bob.id]) == {"alice", "carol"}
    assert receivers(eligible=[bob.id, carol.id]) == {"bob", "carol"}
    assert receivers(exclude_authid=["alice"]) == {"bob", "carol"}
    assert receivers(eligible_authid=["alice", "pub"]) == {"alice"}
    assert receivers(exclude_authrole=["admin"]) == {"alice", "bob"}
    assert receivers(eligible_authrole=["admin"], exclude_me=False) == {"carol", "pub"}
    # Rules combine: eligible by role, minus an excluded session.
    assert receivers(eligible_authrole=["user"], exclude=[alice.id]) == {"bob"}


def test_publisher_disclosure_on_request_and_by_realm_policy() -> None:
    core = Core()
    a, b = core.join(), core.join(authid="bob", authrole="user")
    subscribe(a, "com.topic")
    b.send(16, 1, {}, "com.topic")
    assert events(a)[0][3] == {}
    b.send(16, 2, {"disclose_me": True}, "com.topic")  # autobahn.js sends this option
    assert events(a)[0][3] == {
        "publisher": b.id,
        "publisher_authid": "bob",
        "publisher_authrole": "user",
    }
    policy = Core(disclose_publisher=True)
    c, d = policy.join(), policy.join()
    subscribe(c, "com.topic")
    d.send(16, 1, {}, "com.topic")
    assert events(c)[0][3]["publisher"] == d.id


def test_retained_events_are_replayed_on_request_and_bounded() -> None:
    core = Core(limits=Limits(max_retained_events=2))
    publisher = core.join()
    publisher.send(16, 1, {"retain": True}, "com.a", ["a1"])
    publisher.send(16, 2, {"retain": True}, "com.a", ["a2"])  # replaces a1
    publisher.send(16, 3, {"retain": True}, "com.b", ["b"])
    late = core.join()
    [subscribed, event] = late.send(32, 1, {"get_retained": True}, "com.a")
    assert subscribed[0] == SUBSCRIBED
    assert event[0] == EVENT and event[3] == {"retained": True} and event[4] == ["a2"]
    assert late.send(32, 2, {}, "com.b")[1:] == []  # not asked for: nothing replayed
    publisher.send(16, 4, {"retain": True}, "com.c", ["c"])  # past the bound: com.a goes
    fresh = core.join()
    assert len(fresh.send(32, 1, {"get_retained": True}, "com.a")) == 1
    got = fresh.send(32, 2, {"get_retained": True, "match": "prefix"}, "com.")
    assert sorted(e[4][0] for e in got[1:]) == ["b", "c"]
    assert all(e[3] == {"retained": True, "topic": f"com.{e[4][0]}"} for e in got[1:])


def test_retained_events_keep_their_receiver_rules() -> None:
    core = Core()
    publisher = core.join()
    publisher.send(16, 1, {"retain": True, "eligible_authrole": ["admin"]}, "com.secret", ["s"])
    user, admin = core.join(authrole="user"), core.join(authrole="admin")
    assert len(user.send(32, 1, {"get_retained": True}, "com.secret")) == 1  # SUBSCRIBED only
    assert len(admin.send(32, 1, {"get_retained": True}, "com.secret")) == 2


def test_unsubscribe_and_errors() -> None:
    core = Core()
    a, b = core.join(), core.join()
    subscription = subscribe(a, "com.topic")
    assert a.send(34, 2, subscription) == [[UNSUBSCRIBED, 2]]
    b.send(16, 1, {}, "com.topic")
    assert a.take() == []
    [error] = a.send(34, 3, subscription)
    assert error[:4] == [ERROR, 34, 3, {}] and error[4] == "wamp.error.no_such_subscription"
    assert core.realm.state.is_empty()


def test_invalid_and_reserved_topics() -> None:
    strict, loose = Core(), Core(uri_check="loose")
    for topic in ("Com.Topic", "com..topic", "com.topic.", "com.tōpic"):
        [error] = strict.join().send(32, 1, {}, topic)
        assert error[4] == "wamp.error.invalid_uri", topic
    assert loose.join().send(32, 1, {}, "Com.Topic-1")[0][0] == SUBSCRIBED
    assert loose.join().send(32, 1, {}, "com..topic")[0][4] == "wamp.error.invalid_uri"
    # Not even a loose URI: autobahn's parser refuses the message, a protocol violation.
    assert loose.join().send(32, 1, {}, "com.to pic")[0][:3:2] == [
        3,
        "wamp.error.protocol_violation",
    ]
    [abort] = strict.join().send(32, 1, {"match": "fuzzy"}, "com.topic")
    assert abort[:3:2] == [3, "wamp.error.protocol_violation"]
    client = strict.join()
    [error] = client.send(16, 1, {"acknowledge": True}, "wamp.session.on_join")
    assert error[:3] == [ERROR, 16, 1] and error[4] == "wamp.error.invalid_uri"
    assert client.send(16, 2, {}, "Bad.Topic") == []  # no acknowledge: dropped silently


def test_max_subscriptions_per_session() -> None:
    core = Core(limits=Limits(max_subscriptions_per_session=2))
    client = core.join()
    subscribe(client, "com.a", 1)
    subscribe(client, "com.b", 2)
    [error] = client.send(32, 3, {}, "com.c")
    assert error[4] == LIMIT_EXCEEDED
    assert core.join().send(32, 1, {}, "com.c")[0][0] == SUBSCRIBED  # others unaffected


def test_each_event_is_serialized_once_per_serializer() -> None:
    core = Core()
    subscribers = [core.join() for _ in range(50)]
    for client in subscribers:
        subscribe(client, "com.topic")
    core.join().send(16, 1, {}, "com.topic", ["payload"])
    sent = [client.peer.sent[0] for client in subscribers]
    assert all(event is sent[0] for event in sent)  # one EVENT object for the subscription
    for codec in SUBPROTOCOLS.values():
        frames = [codec.encode(event) for event in sent]
        assert all(frame is frames[0] for frame in frames)  # encoded once, then cached
