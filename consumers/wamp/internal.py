"""The router's own caller session in a realm: how WAMP-procedure authenticators and authorizers
are called. It is an ordinary ``Session`` (role ``trusted``) whose peer resolves futures."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from autobahn.wamp import role as _role

from .codec import Message
from .codec import messages as m
from .ids import SessionScopeIds
from .session import Session, State

if TYPE_CHECKING:
    from .realm import RealmRouter


class ProcedureError(Exception):
    """A procedure the router called answered with an ERROR."""


class _Lookup:
    def __init__(self, realm: RealmRouter) -> None:
        self._realm = realm

    def realm(self, name: str) -> RealmRouter | None:
        return self._realm if name == self._realm.name else None


class InternalCaller:
    """Joins ``realm`` as ``crossway-auth`` and calls procedures."""

    def __init__(self, realm: RealmRouter) -> None:
        self._requests = SessionScopeIds()
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self.session = Session(_Lookup(realm), self, authid="crossway-auth", authrole="trusted")
        roles: Any = _role  # autobahn's role classes are untyped
        self.session.receive(m.Hello(realm.name, {"caller": roles.RoleCallerFeatures()}))

    @property
    def attached(self) -> bool:
        """Whether its session is still in the realm."""
        return self.session.state is State.ESTABLISHED

    def call(self, procedure: str, args: list[Any]) -> asyncio.Future[Any]:
        """CALL ``procedure``; the future resolves to the first result argument (or None)."""
        request = self._requests.next()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[request] = future
        self.session.receive(m.Call(request, procedure, args=args))
        return future

    def send(self, message: Message) -> None:
        """``Peer``: a RESULT or ERROR resolves its call."""
        future = self._calls.pop(getattr(message, "request", 0), None)
        if future is None or future.done():
            return
        if isinstance(message, m.Result):
            future.set_result(message.args[0] if message.args else None)
        elif isinstance(message, m.Error):
            future.set_exception(ProcedureError(f"{message.error}: {message.args}"))

    def close(self) -> None:
        """``Peer``: the session ended; fail what is still waiting."""
        for future in self._calls.values():
            if not future.done():
                future.set_exception(ProcedureError("the router's session left"))
        self._calls.clear()
