"""The meta procedures of a cluster realm: the same answers on every node.

``meta.MetaApi`` answers from this process's sessions and routing state; when the realm is part of
a cluster it hands the CALL to these instead. Sessions come from the registry's session space
(one read), subscribers and callees from every node holding a session of the realm (one question
each, ``cluster_sessions.ClusterSessions.ask``), kills go to the nodes holding their targets. Lists
are in a fixed order (join order for sessions; node, then arrival, for subscribers and callees),
so two nodes asked the same question answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .index import PatternIndex
from .meta import NO_SUCH_REGISTRATION, NO_SUCH_SESSION, NO_SUCH_SUBSCRIPTION, MetaError
from .uris import uri_matches

if TYPE_CHECKING:
    from .cluster_sessions import ClusterSessions, SessionRecord
    from .session import Session

Procedure = Callable[..., Coroutine[Any, Any, Any]]


class ClusterMetaProcedures:
    """The ``wamp.*`` procedures, cluster-wide; each takes the calling session first."""

    def __init__(self, sessions: ClusterSessions) -> None:
        self.sessions = sessions
        self.procedures: dict[str, Procedure] = {
            "wamp.session.count": self.session_count,
            "wamp.session.list": self.session_list,
            "wamp.session.get": self.session_get,
            "wamp.session.kill": self.session_kill,
            "wamp.session.kill_by_authid": self.kill_by_authid,
            "wamp.session.kill_by_authrole": self.kill_by_authrole,
            "wamp.subscription.list": self.subscription_list,
            "wamp.subscription.lookup": self.subscription_lookup,
            "wamp.subscription.match": self.subscription_match,
            "wamp.subscription.get": self.subscription_get,
            "wamp.subscription.list_subscribers": self.list_subscribers,
            "wamp.subscription.count_subscribers": self.count_subscribers,
            "wamp.registration.list": self.registration_list,
            "wamp.registration.lookup": self.registration_lookup,
            "wamp.registration.match": self.registration_match,
            "wamp.registration.get": self.registration_get,
            "wamp.registration.list_callees": self.list_callees,
            "wamp.registration.count_callees": self.count_callees,
        }

    # --- sessions -------------------------------------------------------------------------------

    async def _sessions(self, authroles: list[str] | None) -> list[SessionRecord]:
        records = await self.sessions.sessions()
        return [r for r in records if authroles is None or r.info.get("authrole") in authroles]

    async def session_count(self, caller: Session, authroles: list[str] | None = None) -> int:
        """How many sessions are joined in the cluster (of the given roles)."""
        return len(await self._sessions(authroles))

    async def session_list(self, caller: Session, authroles: list[str] | None = None) -> list[int]:
        """The IDs of the cluster's joined sessions (of the given roles), in join order."""
        return [record.id for record in await self._sessions(authroles)]

    async def session_get(self, caller: Session, session_id: int) -> dict[str, Any]:
        """One session's details, whichever node it is on."""
        for record in await self.sessions.sessions():
            if record.id == session_id:
                return record.info
        raise MetaError(NO_SUCH_SESSION, f"no session {session_id}")

    async def _kill(
        self, caller: Session, targets: list[SessionRecord], **fields: Any
    ) -> list[int]:
        nodes = {record.node for record in targets if record.id != caller.id}
        answers = await self.sessions.ask(nodes, "kill", spare=caller.id, **fields)
        return [killed for node in sorted(answers) for killed in answers[node]]

    async def session_kill(
        self,
        caller: Session,
        session_id: int,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """End one session, on any node, with GOODBYE ``reason`` (``wamp.close.killed``)."""
        targets = [r for r in await self.sessions.sessions() if r.id == session_id]
        killed = await self._kill(caller, targets, reason=reason, message=message, ids=[session_id])
        if session_id not in killed:
            raise MetaError(NO_SUCH_SESSION, f"no session {session_id} (other than the caller)")

    async def kill_by_authid(
        self, caller: Session, authid: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authid`` in the cluster but the caller's; their IDs."""
        targets = [r for r in await self.sessions.sessions() if r.info.get("authid") == authid]
        return await self._kill(caller, targets, reason=reason, message=message, authid=authid)

    async def kill_by_authrole(
        self, caller: Session, authrole: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authrole`` in the cluster but the caller's; their IDs."""
        records = await self.sessions.sessions()
        targets = [r for r in records if r.info.get("authrole") == authrole]
        return await self._kill(caller, targets, reason=reason, message=message, authrole=authrole)

    # --- subscriptions and registrations --------------------------------------------------------

    async def _state(self, kind: str) -> dict[int, dict[str, Any]]:
        """Every node's subscriptions or registrations, merged by ID (members in node order)."""
        nodes = {record.node for record in await self.sessions.sessions()}
        nodes.add(self.sessions.cluster.node.channel)
        answers = await self.sessions.ask(nodes, "state")
        merged: dict[int, dict[str, Any]] = {}
        for node in sorted(answers):
            for item in answers[node][kind]:
                *fields, members, created = item
                entry = merged.get(fields[0])
                if entry is None:
                    entry = merged[fields[0]] = {"fields": fields, "members": [], "created": None}
                entry["members"] += members
                if created is not None and (entry["created"] is None or created < entry["created"]):
                    entry["created"] = created  # the first node's: when the cluster had it first
        return merged

    @staticmethod
    def _listed(items: dict[int, dict[str, Any]]) -> dict[str, list[int]]:
        listed: dict[str, list[int]] = {"exact": [], "prefix": [], "wildcard": []}
        for item_id, item in sorted(items.items()):
            listed[item["fields"][2]].append(item_id)
        return listed

    @staticmethod
    def _lookup(
        items: dict[int, dict[str, Any]], uri: str, options: dict[str, Any] | None
    ) -> int | None:
        match = (options or {}).get("match", "exact")
        found = [i for i, item in items.items() if tuple(item["fields"][1:3]) == (uri, match)]
        return found[0] if found else None

    async def _subscription(self, subscription_id: int) -> dict[str, Any]:
        found = (await self._state("subscriptions")).get(subscription_id)
        if found is None:
            raise MetaError(NO_SUCH_SUBSCRIPTION, f"no subscription {subscription_id}")
        return found

    async def subscription_list(self, caller: Session) -> dict[str, list[int]]:
        """The cluster's subscription IDs by match policy."""
        return self._listed(await self._state("subscriptions"))

    async def subscription_lookup(
        self, caller: Session, topic: str, options: dict[str, Any] | None = None
    ) -> int | None:
        """The ID of the subscription on exactly ``(topic, match)``, or None."""
        return self._lookup(await self._state("subscriptions"), topic, options)

    async def subscription_match(self, caller: Session, topic: str) -> list[int] | None:
        """The IDs of the subscriptions an event on ``topic`` would reach, or None."""
        items = await self._state("subscriptions")
        found = [
            i
            for i, item in sorted(items.items())
            if uri_matches(item["fields"][1], item["fields"][2], topic)
        ]
        return found or None

    async def subscription_get(self, caller: Session, subscription_id: int) -> dict[str, Any]:
        """One subscription's details."""
        item = await self._subscription(subscription_id)
        _, uri, match = item["fields"]
        return {"id": subscription_id, "created": item["created"], "uri": uri, "match": match}

    async def list_subscribers(self, caller: Session, subscription_id: int) -> list[int]:
        """The subscription's subscribers on every node."""
        return list((await self._subscription(subscription_id))["members"])

    async def count_subscribers(self, caller: Session, subscription_id: int) -> int:
        """How many sessions of the cluster have the subscription."""
        return len((await self._subscription(subscription_id))["members"])

    async def _registration(self, registration_id: int) -> dict[str, Any]:
        found = (await self._state("registrations")).get(registration_id)
        if found is None:
            raise MetaError(NO_SUCH_REGISTRATION, f"no registration {registration_id}")
        return found

    async def registration_list(self, caller: Session) -> dict[str, list[int]]:
        """The cluster's registration IDs by match policy."""
        return self._listed(await self._state("registrations"))

    async def registration_lookup(
        self, caller: Session, procedure: str, options: dict[str, Any] | None = None
    ) -> int | None:
        """The ID of the registration on exactly ``(procedure, match)``, or None."""
        return self._lookup(await self._state("registrations"), procedure, options)

    async def registration_match(self, caller: Session, procedure: str) -> int | None:
        """The ID of the registration a call to ``procedure`` would go to, or None."""
        index = PatternIndex[int]()
        for registration_id, item in (await self._state("registrations")).items():
            index.add(item["fields"][1], item["fields"][2], registration_id)
        return index.best(procedure)

    async def registration_get(self, caller: Session, registration_id: int) -> dict[str, Any]:
        """One registration's details."""
        item = await self._registration(registration_id)
        _, uri, match, invoke = item["fields"]
        return {
            "id": registration_id,
            "created": item["created"],
            "uri": uri,
            "match": match,
            "invoke": invoke,
        }

    async def list_callees(self, caller: Session, registration_id: int) -> list[int]:
        """The registration's callees on every node."""
        return list((await self._registration(registration_id))["members"])

    async def count_callees(self, caller: Session, registration_id: int) -> int:
        """How many sessions of the cluster are callees of the registration."""
        return len((await self._registration(registration_id))["members"])
