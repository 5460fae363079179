"""The dealer: REGISTER, UNREGISTER, CALL, INVOCATION, YIELD, RESULT, ERROR, CANCEL, INTERRUPT.

A call is routed to the most specific registration (exact, then the longest prefix, then the
most specific wildcard) and, within a shared registration, to a callee by its invocation policy.
The router enforces ``CALL.Options.timeout`` itself (milliseconds; 0 or absent means none): when it
expires the callee is interrupted and the caller gets ``wamp.error.timeout``.

Cancel modes (the "Call Canceling" chapter): ``skip`` answers the caller at once and lets the
callee finish unheard; ``killnowait`` interrupts the callee and answers the caller at once;
``kill`` interrupts the callee and answers the caller when the callee has replied. A callee that
did not announce ``call_canceling`` is never interrupted (the mode becomes ``skip``). A callee that
leaves fails its pending calls at once; a caller that leaves interrupts its pending invocations.
Ordering: progressive results and the final result reach the caller in the order the callee sent
them; calls from one caller reach one callee in call order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .broker import INVALID_URI, error, option
from .codec import Message
from .codec import messages as m
from .session import ProtocolViolation
from .settings import LIMIT_EXCEEDED
from .state import INVOKE_POLICIES, Registration, RegistrationRefused
from .uris import MATCH_POLICIES, reserved, valid_uri

if TYPE_CHECKING:
    from .ids import SessionScopeIds
    from .realm import RealmRouter, TimerHandle
    from .session import Peer, Session


class Party(Protocol):
    """A call's caller or callee: a session here, or a stand-in for one on another node
    (``cluster.py``), which forwards what is sent to it over the channel layer."""

    id: int
    authid: str | None
    authrole: str
    peer: Peer
    pending_calls: dict[int, PendingCall]
    invocations: dict[int, PendingCall]
    request_ids: SessionScopeIds

    def supports(self, role: str, feature: str) -> bool:
        """Whether the peer announced ``feature`` for ``role`` in its HELLO."""
        ...


CANCELED = "wamp.error.canceled"
TIMEOUT = "wamp.error.timeout"
_CALL = m.Call.MESSAGE_TYPE


@dataclass(eq=False)
class PendingCall:
    """A call between its INVOCATION and the caller's final answer."""

    caller: Party
    call_request: int
    callee: Party
    invocation: int
    receive_progress: bool
    timer: TimerHandle | None = None
    killing: bool = False  # CANCEL mode "kill" sent: waiting for the callee's reply


def pick_callee(registration: Registration) -> int:
    """The callee session ID a call goes to, by the registration's invocation policy."""
    callees = registration.callees
    if registration.invoke == "last":
        return callees[-1]
    if registration.invoke == "random":
        return random.choice(callees)  # load spreading, not security: no need for secrets
    if registration.invoke == "roundrobin":
        index = registration.next_callee % len(callees)
        registration.next_callee = index + 1
        return callees[index]
    return callees[0]  # single, first


class Dealer:
    """Routed RPC for one realm."""

    def __init__(self, realm: RealmRouter) -> None:
        self.realm = realm
        self.pending: set[PendingCall] = set()

    def register(self, session: Session, request: Message) -> None:
        """REGISTER: answer REGISTERED or an ERROR (procedure_already_exists, invalid_uri, ...)."""
        realm = self.realm
        match = request.match or "exact"
        invoke = request.invoke or "single"
        procedure = request.procedure
        kind = m.Register.MESSAGE_TYPE
        if (
            match not in MATCH_POLICIES
            or not valid_uri(procedure, realm.config.uri_check, match)
            or reserved(procedure)
        ):
            error(session, kind, request.request, INVALID_URI, f"invalid procedure {procedure!r}")
            return
        if invoke not in INVOKE_POLICIES:
            error(session, kind, request.request, "wamp.error.invalid_argument", repr(invoke))
            return
        if len(session.registrations) >= realm.limits.max_registrations_per_session:
            limit = realm.limits.max_registrations_per_session
            error(session, kind, request.request, LIMIT_EXCEEDED, f"at most {limit} registrations")
            return

        def registered(outcome: Registration | RegistrationRefused) -> None:
            if isinstance(outcome, RegistrationRefused):
                error(session, kind, request.request, outcome.error, str(outcome))
            elif session.realm is not realm or session.id not in realm.sessions:
                realm.state.unregister(session.id, outcome.id)  # it left while the claim ran
            else:
                session.registrations.add(outcome.id)
                session.peer.send(m.Registered(request.request, outcome.id))

        realm.state.register(session.id, procedure, match, invoke, registered)

    def unregister(self, session: Session, request: Message) -> None:
        """UNREGISTER: answer UNREGISTERED or ERROR no_such_registration. Calls already
        invoked on this callee still get their answers."""
        if self.realm.state.unregister(session.id, request.registration) is None:
            error(
                session,
                m.Unregister.MESSAGE_TYPE,
                request.request,
                "wamp.error.no_such_registration",
                f"not registered: {request.registration}",
            )
            return
        session.registrations.discard(request.registration)
        session.peer.send(m.Unregistered(request.request))

    def call(self, caller: Session, request: Message, raw: list[Any] | None = None) -> None:
        """CALL: send an INVOCATION to the chosen callee, or answer the caller with an ERROR."""
        realm = self.realm
        procedure = request.procedure
        if not valid_uri(procedure, realm.config.uri_check):
            error(caller, _CALL, request.request, INVALID_URI, f"invalid procedure {procedure!r}")
            return
        if request.request in caller.pending_calls:
            raise ProtocolViolation(f"CALL request ID {request.request} is already in use")
        if len(caller.pending_calls) >= realm.limits.max_pending_calls_per_session:
            limit = realm.limits.max_pending_calls_per_session
            error(caller, _CALL, request.request, LIMIT_EXCEEDED, f"at most {limit} pending calls")
            return
        registration = realm.state.registration_for(procedure)
        callee: Party | None = None
        if registration is not None:
            chosen = pick_callee(registration)
            callee = realm.sessions.get(chosen)
            if callee is None and realm.cluster is not None:
                callee = realm.cluster.remote_callee(chosen, registration)
        if registration is None or callee is None:
            text = f"no callee registered procedure {procedure!r}"
            error(caller, _CALL, request.request, "wamp.error.no_such_procedure", text)
            return
        disclose = realm.config.disclose_caller or option(raw, 2, "disclose_me") is True
        call = self.invoke(
            caller,
            request.request,
            callee,
            registration,
            request,
            (caller.id, caller.authid, caller.authrole) if disclose else None,
        )
        if request.timeout:  # CALL.Options.timeout is in milliseconds; 0 means none
            call.timer = realm.timers.call_later(
                request.timeout / 1000, lambda: self._timeout(call)
            )

    def invoke(
        self,
        caller: Party,
        call_request: int,
        callee: Party,
        registration: Registration,
        request: Message,
        disclosed: tuple[int, str | None, str] | None,
    ) -> PendingCall:
        """Send the INVOCATION of ``request`` (a CALL, or one forwarded by another node) to
        ``callee`` and track the call until its answer."""
        invocation = callee.request_ids.next()
        call = PendingCall(caller, call_request, callee, invocation, bool(request.receive_progress))
        caller.pending_calls[call_request] = call
        callee.invocations[invocation] = call
        self.pending.add(call)
        callee.peer.send(
            m.Invocation(
                invocation,
                registration.id,
                args=request.args,
                kwargs=request.kwargs,
                receive_progress=True if call.receive_progress else None,
                caller=disclosed[0] if disclosed else None,
                caller_authid=disclosed[1] if disclosed else None,
                caller_authrole=disclosed[2] if disclosed else None,
                procedure=request.procedure if registration.match != "exact" else None,
            )
        )
        return call

    def yield_(self, callee: Party, reply: Message) -> None:
        """YIELD: a progressive or final result for the caller. A YIELD for a call that was
        canceled, timed out or whose caller left is dropped."""
        call = callee.invocations.get(reply.request)
        if call is None:
            return
        if reply.progress:
            if call.receive_progress and not call.killing:
                call.caller.peer.send(
                    m.Result(call.call_request, args=reply.args, kwargs=reply.kwargs, progress=True)
                )
            return
        self._finish(call)
        if call.killing:
            error(call.caller, _CALL, call.call_request, CANCELED, "the call was canceled")
        else:
            call.caller.peer.send(m.Result(call.call_request, args=reply.args, kwargs=reply.kwargs))

    def error(self, callee: Party, reply: Message) -> None:
        """ERROR in reply to an INVOCATION: passed on to the caller as the CALL's error."""
        call = callee.invocations.get(reply.request)
        if call is None:
            return
        self._finish(call)
        if call.killing:
            error(call.caller, _CALL, call.call_request, CANCELED, "the call was canceled")
            return
        call.caller.peer.send(
            m.Error(_CALL, call.call_request, reply.error, args=reply.args, kwargs=reply.kwargs)
        )

    def cancel(self, caller: Party, request: Message) -> None:
        """CANCEL (modes skip, kill, killnowait; see the module docstring)."""
        call = caller.pending_calls.get(request.request)
        if call is None or call.killing:
            return  # already answered: the spec says to ignore the CANCEL
        mode = request.mode or "killnowait"
        if not call.callee.supports("callee", "call_canceling"):
            mode = "skip"
        if mode == "kill":
            call.killing = True
            call.callee.peer.send(m.Interrupt(call.invocation, mode="kill"))
            return
        if mode == "killnowait":
            call.callee.peer.send(m.Interrupt(call.invocation, mode="killnowait"))
        self._finish(call)
        error(caller, _CALL, call.call_request, CANCELED, "the call was canceled")

    def _timeout(self, call: PendingCall) -> None:
        if call not in self.pending:
            return
        call.timer = None
        if call.callee.supports("callee", "call_canceling"):
            call.callee.peer.send(m.Interrupt(call.invocation, mode="killnowait", reason=TIMEOUT))
        self._finish(call)
        error(call.caller, _CALL, call.call_request, TIMEOUT, "the call timed out in the router")

    def session_left(self, session: Party) -> None:
        """Fail the calls waiting on ``session`` as callee; interrupt its own calls' callees."""
        for call in list(session.invocations.values()):
            self._finish(call)
            error(call.caller, _CALL, call.call_request, CANCELED, "the callee left")
        for call in list(session.pending_calls.values()):
            self._finish(call)
            if call.callee.supports("callee", "call_canceling"):
                call.callee.peer.send(m.Interrupt(call.invocation, mode="killnowait"))

    def _finish(self, call: PendingCall) -> None:
        self.pending.discard(call)
        call.caller.pending_calls.pop(call.call_request, None)
        call.callee.invocations.pop(call.invocation, None)
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
