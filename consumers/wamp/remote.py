"""Stand-ins for sessions on other router processes, and the layer messages between nodes.

The dealer tracks a call between a caller and a callee (``dealer.Party``). When one of them lives
on another node, a stand-in takes its place here: whatever the dealer sends it (an INVOCATION, a
RESULT, an ERROR, an INTERRUPT) becomes one channel layer message to that node, which feeds it to
its own dealer. So a cross-process call runs through the same code as a local one: timeouts and
cancellation are decided on the caller's node, the INTERRUPT and the callee's answer on the
callee's node.

Messages (``type``, then fields; every one carries ``realm`` and ``src``, the sender's channel):

- ``wamp.event``: ``topic``, ``publication``, ``args``, ``kwargs``, ``publisher`` (a triple),
  ``rules`` (the publish filter as lists): the receiving node delivers to its own subscribers;
- ``wamp.invoke``: ``request`` (the caller node's invocation ID), ``callee``, ``uri``, ``match``,
  ``procedure``, ``args``, ``kwargs``, ``progress``, ``caller`` (a disclosed triple or None);
- ``wamp.yield`` / ``wamp.error``: the callee's answer to ``request`` (``progress``; ``error``);
- ``wamp.interrupt``: ``request``, ``mode``: cancel the call on the callee's node;
- ``wamp.changed``: the sender changed the realm's registry: read it again.
- ``wamp.meta.ask``: ``ask`` (the sender's number for it), ``what``, ``fields``: a meta API
  question (``cluster_sessions.py``); ``wamp.meta.answer``: ``ask``, ``answer``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

from .codec import Message
from .codec import messages as m
from .dealer import PendingCall
from .filter import PublishFilter
from .ids import SessionScopeIds
from .session import Peer
from .state import Registration

logger = logging.getLogger("consumers.wamp")

Send = Callable[[str, dict[str, Any]], None]


def rules_to_wire(rules: PublishFilter) -> list[list[Any] | None]:
    """A publish filter as plain lists (the layer carries no sets)."""
    return [None if values is None else list(values) for values in astuple(rules)]


def rules_from_wire(wire: list[list[Any] | None]) -> PublishFilter:
    """The publish filter ``rules_to_wire`` made."""
    sets = [None if values is None else frozenset(values) for values in wire]
    return PublishFilter(*sets)  # type: ignore[arg-type]


class NodeLink:
    """Another node as the dealer sees it, for one realm: the caller of the calls it forwards
    here (``pending_calls``, keyed by its invocation IDs) and the callee side of the calls sent
    there (``invocations``, keyed by ours)."""

    authid: str | None = None
    authrole: str = ""

    def __init__(self, realm: str, node: str, own: str, send: Send) -> None:
        self.id = 0
        self.realm = realm
        self.node = node
        self.own = own
        self.send = send
        self.peer: Peer = _LinkPeer(self)
        self.pending_calls: dict[int, PendingCall] = {}
        self.invocations: dict[int, PendingCall] = {}
        self.request_ids = SessionScopeIds()

    def supports(self, role: str, feature: str) -> bool:
        """True: the real session's node decides (it knows what its client announced)."""
        return True

    def forward(self, kind: str, **fields: Any) -> None:
        """Send one node message of ``kind`` to the other node."""
        self.send(self.node, {"type": kind, "realm": self.realm, "src": self.own, **fields})

    def is_idle(self) -> bool:
        """No call runs through this link."""
        return not self.pending_calls and not self.invocations


class _LinkPeer:
    def __init__(self, link: NodeLink) -> None:
        self.link = link

    def send(self, message: Message) -> None:
        link = self.link
        kind = type(message)
        if kind is m.Result:
            link.forward(
                "wamp.yield",
                request=message.request,
                args=message.args,
                kwargs=message.kwargs,
                progress=bool(message.progress),
            )
        elif kind is m.Error:
            link.forward(
                "wamp.error",
                request=message.request,
                error=message.error,
                args=message.args,
                kwargs=message.kwargs,
            )
        elif kind is m.Interrupt:
            link.forward("wamp.interrupt", request=message.request, mode=message.mode)
        else:
            logger.warning("a %s has no way to another node; dropped", kind.__name__)

    def close(self) -> None:
        """Nothing to close: the link lives as long as the other node."""


class RemoteCallee:
    """A callee session on another node, for one call: its INVOCATION goes to that node."""

    authid: str | None = None
    authrole: str = ""

    def __init__(self, link: NodeLink, session_id: int, registration: Registration) -> None:
        self.id = session_id
        self.link = link
        self.registration = registration
        self.peer: Peer = _CalleePeer(self)
        self.pending_calls = link.pending_calls
        self.invocations = link.invocations
        self.request_ids = link.request_ids  # one counter per node: answers name only the ID

    def supports(self, role: str, feature: str) -> bool:
        """True: the callee's node checks what its client announced."""
        return True


class _CalleePeer:
    def __init__(self, callee: RemoteCallee) -> None:
        self.callee = callee

    def send(self, message: Message) -> None:
        callee = self.callee
        if type(message) is not m.Invocation:
            callee.link.peer.send(message)
            return
        registration = callee.registration
        disclosed = None
        if message.caller is not None:
            disclosed = [message.caller, message.caller_authid, message.caller_authrole]
        callee.link.forward(
            "wamp.invoke",
            request=message.request,
            callee=callee.id,
            uri=registration.uri,
            match=registration.match,
            procedure=message.procedure or registration.uri,
            args=message.args,
            kwargs=message.kwargs,
            progress=bool(message.receive_progress),
            caller=disclosed,
        )

    def close(self) -> None:
        """Nothing to close."""
