"""The facts of a cluster realm for the meta procedures (``meta.MetaProcedures``): the same
answers on every node.

Sessions come from the registry's session space (one read), subscribers and callees from every
node holding a session of the realm (one question each, ``cluster_sessions.ClusterSessions.ask``,
which ``answer`` answers on each node), kills go to the nodes holding their targets. Members are
in node order, then arrival, so two nodes asked the same question answer alike.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from .meta import KINDS, Kill, Kind, Route, routes_here

if TYPE_CHECKING:
    from .cluster_sessions import ClusterSessions
    from .realm import RealmRouter


def route_to_wire(route: Route) -> list[Any]:
    """A route in a ``state`` answer: ``[id, uri, match, (invoke,) members, created]``."""
    invoke = [] if route.invoke is None else [route.invoke]
    return [route.id, route.uri, route.match, *invoke, route.members, route.created]


def route_from_wire(item: list[Any]) -> Route:
    """The route ``route_to_wire`` sent."""
    *fields, members, created = item
    invoke = fields[3] if len(fields) > 3 else None
    return Route(fields[0], fields[1], fields[2], members, created, invoke)


def answer(realm: RealmRouter, what: str, fields: dict[str, Any]) -> Any:
    """This node's answer to a meta question: ``kill`` (its sessions an order picks) or
    ``state`` (its subscriptions and registrations)."""
    if what == "kill":
        return Kill(**fields).carry_out(realm.sessions.values())
    return {kind: [route_to_wire(r) for r in routes_here(realm.observed, kind)] for kind in KINDS}


class ClusterFacts:
    """``meta.MetaFacts`` of the whole cluster (see the module docstring)."""

    def __init__(self, cluster_sessions: ClusterSessions) -> None:
        self.cluster_sessions = cluster_sessions

    async def sessions(self) -> list[dict[str, Any]]:
        return [record.info for record in await self.cluster_sessions.sessions()]

    async def routes(self, kind: Kind) -> list[Route]:
        nodes = {record.node for record in await self.cluster_sessions.sessions()}
        nodes.add(self.cluster_sessions.cluster.node.channel)
        answers = await self.cluster_sessions.ask(nodes, "state")
        merged: dict[int, Route] = {}
        for node in sorted(answers):
            for route in map(route_from_wire, answers[node][kind]):
                seen = merged.get(route.id)
                if seen is not None:  # the earliest creation: when the cluster first had it
                    created = min(filter(None, (seen.created, route.created)), default=None)
                    members = seen.members + route.members
                    route = dataclasses.replace(seen, members=members, created=created)
                merged[route.id] = route
        return list(merged.values())

    async def kill(self, order: Kill) -> list[int]:
        records = await self.cluster_sessions.sessions()
        nodes = {
            r.node
            for r in records
            if order.picks(r.id, r.info.get("authid"), r.info.get("authrole"))
        }
        answers = await self.cluster_sessions.ask(nodes, "kill", **dataclasses.asdict(order))
        return [killed for node in sorted(answers) for killed in answers[node]]
