"""The broker: SUBSCRIBE, UNSUBSCRIBE, PUBLISH and the EVENTs they lead to.

Routing state lives in the realm's ``RoutingState``; who gets an event is decided here and in
``filter.py``, nothing else. One EVENT object is built per matching subscription and shared by all
its subscribers, so each transport serializer encodes it once (see ``codec.py``). Ordering: events
of one publisher reach each subscriber in publication order (one loop, per-connection FIFO queues);
events of different publishers have no order relative to each other.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from .codec import Message
from .codec import messages as m
from .filter import PublishFilter
from .ids import global_id
from .settings import LIMIT_EXCEEDED
from .state import RetainedEvent
from .uris import MATCH_POLICIES, MatchPolicy, reserved, valid_uri

if TYPE_CHECKING:
    from .realm import RealmRouter
    from .session import Peer, Session

INVALID_URI = "wamp.error.invalid_uri"


class _Answerable(Protocol):
    """Anything with a peer to answer: a session, or a stand-in for one on another node."""

    @property
    def peer(self) -> Peer: ...


def error(session: _Answerable, request_type: int, request: int, uri: str, text: str) -> None:
    """Answer a request of ``session`` with an ERROR carrying a human-readable ``text``."""
    session.peer.send(m.Error(request_type, request, uri, args=[text]))


def option(raw: list[Any] | None, position: int, name: str) -> Any:
    """An option autobahn's parser drops (``disclose_me``), read from the raw message."""
    if raw is None or len(raw) <= position or not isinstance(raw[position], dict):
        return None
    return raw[position].get(name)


class Broker:
    """Pub/sub routing for one realm."""

    def __init__(self, realm: RealmRouter) -> None:
        self.realm = realm

    def subscribe(self, session: Session, request: Message) -> None:
        """SUBSCRIBE: answer SUBSCRIBED (then any retained event asked for) or an ERROR."""
        realm = self.realm
        match = request.match or "exact"
        kind = m.Subscribe.MESSAGE_TYPE
        if match not in MATCH_POLICIES or not valid_uri(
            request.topic, realm.config.uri_check, match
        ):
            error(session, kind, request.request, INVALID_URI, f"invalid topic {request.topic!r}")
            return
        if len(session.subscriptions) >= realm.limits.max_subscriptions_per_session:
            limit = realm.limits.max_subscriptions_per_session
            error(session, kind, request.request, LIMIT_EXCEEDED, f"at most {limit} subscriptions")
            return
        ready = partial(self._subscribed, session, request, match)
        if realm.cluster is not None:  # SUBSCRIBED once every node has the pattern
            realm.cluster.prepare_subscribe(request.topic, match, bool(request.get_retained), ready)
        else:
            ready(realm.state.retained_for(request.topic, match) if request.get_retained else [])

    def _subscribed(
        self, session: Session, request: Message, match: MatchPolicy, retained: list[RetainedEvent]
    ) -> None:
        """The subscription takes effect: SUBSCRIBED, then the retained events asked for."""
        realm = self.realm
        if realm.sessions.get(session.id) is not session:
            return  # it left while the cluster took the subscription in
        subscription = realm.state.subscribe(session.id, request.topic, match)
        session.subscriptions.add(subscription.id)
        session.peer.send(m.Subscribed(request.request, subscription.id))
        for event in retained:
            if event.rules is not None and not event.rules.allows(session):
                continue  # the publication's exclude/eligible rules hold for replays too
            session.peer.send(
                m.Event(
                    subscription.id,
                    event.publication,
                    args=event.args,
                    kwargs=event.kwargs,
                    publisher=event.publisher,
                    publisher_authid=event.publisher_authid,
                    publisher_authrole=event.publisher_authrole,
                    topic=event.topic if match != "exact" else None,
                    retained=True,
                )
            )

    def unsubscribe(self, session: Session, request: Message) -> None:
        """UNSUBSCRIBE: answer UNSUBSCRIBED, or ERROR no_such_subscription."""
        if self.realm.state.unsubscribe(session.id, request.subscription) is None:
            error(
                session,
                m.Unsubscribe.MESSAGE_TYPE,
                request.request,
                "wamp.error.no_such_subscription",
                f"not subscribed to {request.subscription}",
            )
            return
        session.subscriptions.discard(request.subscription)
        session.peer.send(m.Unsubscribed(request.request))

    def publish(self, session: Session, request: Message, raw: list[Any] | None = None) -> int:
        """PUBLISH: deliver EVENTs, keep a retained event, acknowledge if asked; returns the
        publication ID (0 when the publication was refused)."""
        realm = self.realm
        topic = request.topic
        if not valid_uri(topic, realm.config.uri_check) or reserved(topic):
            if request.acknowledge:
                error(session, m.Publish.MESSAGE_TYPE, request.request, INVALID_URI, repr(topic))
            return 0
        publication = global_id()
        disclose = realm.config.disclose_publisher or option(raw, 2, "disclose_me") is True
        publisher: tuple[int | None, str | None, str | None] = (
            (session.id, session.authid, session.authrole) if disclose else (None, None, None)
        )
        rules = PublishFilter.of(request, session.id)
        self.deliver(topic, publication, request.args, request.kwargs, publisher, rules)
        if realm.cluster is not None:
            realm.cluster.publish(
                topic, publication, request.args, request.kwargs, publisher, rules
            )
        if request.retain:
            realm.state.retain(
                RetainedEvent(topic, publication, request.args, request.kwargs, *publisher, rules)
            )
        if request.acknowledge:
            session.peer.send(m.Published(request.request, publication))
        return publication

    def deliver(
        self,
        topic: str,
        publication: int,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        publisher: tuple[int | None, str | None, str | None],
        rules: PublishFilter,
    ) -> None:
        """EVENTs to this process's subscribers of ``topic`` (one EVENT object per matching
        subscription, encoded once per serializer whatever the number of subscribers)."""
        fast = rules.only_excludes_sessions
        sessions = self.realm.sessions
        for subscription in self.realm.state.subscriptions_matching(topic):
            event = m.Event(
                subscription.id,
                publication,
                args=args,
                kwargs=kwargs,
                publisher=publisher[0],
                publisher_authid=publisher[1],
                publisher_authrole=publisher[2],
                topic=topic if subscription.match != "exact" else None,
            )
            for session_id in subscription.subscribers:
                receiver = sessions.get(session_id)
                if receiver is None:
                    continue
                if (session_id not in rules.exclude) if fast else rules.allows(receiver):
                    receiver.peer.send(event)
