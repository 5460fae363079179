"""The dealer, driven with raw messages through the sans-IO core and a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consumers.wamp.settings import LIMIT_EXCEEDED, Limits
from consumers.wamp.state import LocalRoutingState
from tests.wamp._core import CLIENT_ROLES, Core, Peer

ERROR, CALL, CANCEL, RESULT, REGISTERED, UNREGISTERED, INVOCATION, INTERRUPT = (
    8,
    48,
    49,
    50,
    65,
    67,
    68,
    69,
)

NO_CANCELING: dict[str, Any] = {"callee": {"features": {}}, "caller": {"features": {}}}


def register(client: Any, procedure: str, request: int = 1, **options: Any) -> int:
    [reply] = client.send(64, request, options, procedure)
    assert reply[0] == REGISTERED, reply
    return int(reply[2])


def invocation(callee: Peer) -> list[Any]:
    [message] = callee.take()
    assert message[0] == INVOCATION, message
    return message


def test_call_invocation_yield_result() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    registration = register(callee, "com.add")
    assert caller.send(48, 5, {}, "com.add", [2, 3], {"k": 1}) == []
    inv = invocation(callee)
    assert inv[2] == registration and inv[3] == {} and inv[4:] == [[2, 3], {"k": 1}]
    assert inv[1] == 1  # the router's request IDs are per session: 1, 2, ...
    callee.send(70, inv[1], {}, [5])
    assert caller.take() == [[RESULT, 5, {}, [5]]]
    assert core.realm.dealer.pending == set()


def test_callee_error_is_passed_to_the_caller() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.fail")
    caller.send(48, 1, {}, "com.fail")
    callee.send(8, 68, invocation(callee)[1], {}, "com.error.oops", ["why"], {"code": 7})
    assert caller.take() == [[ERROR, CALL, 1, {}, "com.error.oops", ["why"], {"code": 7}]]


def test_no_such_procedure_and_invalid_procedures() -> None:
    core = Core()
    caller = core.join()
    [error] = caller.send(48, 1, {}, "com.nothing")
    assert error[:5] == [ERROR, CALL, 1, {}, "wamp.error.no_such_procedure"]
    [error] = caller.send(64, 2, {}, "wamp.session.count")  # reserved for the router
    assert error[4] == "wamp.error.invalid_uri"
    [error] = caller.send(64, 3, {}, "Com.Upper")  # strict realm
    assert error[4] == "wamp.error.invalid_uri"
    [abort] = caller.send(64, 4, {"invoke": "everyone"}, "com.proc")  # autobahn's parser
    assert abort[:3:2] == [3, "wamp.error.protocol_violation"]


def test_single_registration_is_unique_and_policies_must_agree() -> None:
    core = Core()
    first, second = core.join(), core.join()
    register(first, "com.proc")
    [error] = second.send(64, 1, {}, "com.proc")
    assert error[:5] == [ERROR, 64, 1, {}, "wamp.error.procedure_already_exists"]
    [error] = second.send(64, 2, {"invoke": "roundrobin"}, "com.proc")
    assert error[4] == "wamp.error.procedure_already_exists"
    register(first, "com.shared", 3, invoke="roundrobin")
    [error] = second.send(64, 3, {"invoke": "random"}, "com.shared")
    assert error[4] == "wamp.error.procedure_exists_with_different_invocation_policy"
    [error] = second.send(64, 4, {"invoke": "single"}, "com.shared")
    assert error[4] == "wamp.error.procedure_already_exists"
    # The same procedure under another match policy is a different registration.
    register(second, "com.proc", 5, match="prefix")


@pytest.mark.parametrize(
    ("invoke", "expected"),
    [
        ("roundrobin", [0, 1, 2, 0, 1, 2]),
        ("first", [0] * 6),
        ("last", [2] * 6),
    ],
)
def test_shared_registration_invocation_policies(invoke: str, expected: list[int]) -> None:
    core = Core()
    callees = [core.join() for _ in range(3)]
    ids = {register(callee, "com.shared", invoke=invoke) for callee in callees}
    assert len(ids) == 1  # one registration, three callees
    caller = core.join()
    chosen = []
    for request in range(1, 7):
        caller.send(48, request, {}, "com.shared")
        chosen += [i for i, callee in enumerate(callees) if callee.take()]
    assert chosen == expected


def test_random_policy_spreads_over_callees() -> None:
    core = Core()
    callees = [core.join() for _ in range(3)]
    for callee in callees:
        register(callee, "com.shared", invoke="random")
    caller = core.join()
    chosen = set()
    for request in range(1, 61):
        caller.send(48, request, {}, "com.shared")
        chosen |= {i for i, callee in enumerate(callees) if callee.take()}
    assert chosen == {0, 1, 2}


def test_unregistering_one_of_shared_callees() -> None:
    core = Core()
    a, b = core.join(), core.join()
    registration = register(a, "com.shared", invoke="roundrobin")
    register(b, "com.shared", invoke="roundrobin")
    assert a.send(66, 2, registration) == [[UNREGISTERED, 2]]
    caller = core.join()
    for request in (1, 2):
        caller.send(48, request, {}, "com.shared")
        assert a.take() == [] and len(b.take()) == 1
    [error] = a.send(66, 3, registration)
    assert error[4] == "wamp.error.no_such_registration"


def test_most_specific_registration_wins() -> None:
    core = Core()
    exact, short_prefix, long_prefix, wild_early, wild_late = (core.join() for _ in range(5))
    register(exact, "com.app.obj.get")
    register(short_prefix, "com.app", match="prefix")
    register(long_prefix, "com.app.obj", match="prefix")
    register(wild_early, "com..obj.get", match="wildcard")
    register(wild_late, "com.app..get", match="wildcard")
    callees = {
        "exact": exact,
        "short": short_prefix,
        "long": long_prefix,
        "wild_early": wild_early,
        "wild_late": wild_late,
    }
    caller = core.join()

    def who(procedure: str) -> tuple[str, Any]:
        caller.send(48, 1, {}, procedure)
        [(name, inv)] = [(n, c.take()) for n, c in callees.items() if c.peer.sent]
        callees[name].send(70, inv[0][1], {})
        caller.take()
        return name, inv[0][3]

    assert who("com.app.obj.get") == ("exact", {})
    assert who("com.app.obj.put") == ("long", {"procedure": "com.app.obj.put"})
    assert who("com.app.other") == ("short", {"procedure": "com.app.other"})
    assert who("com.x.obj.get") == ("wild_early", {"procedure": "com.x.obj.get"})
    register(caller, "com.z.obj.get", 9)  # exact elsewhere changes nothing for these
    core2 = Core()
    early, late = core2.join(), core2.join()
    register(early, "com..obj.get", match="wildcard")
    register(late, "com.app..get", match="wildcard")
    other = core2.join()
    other.send(48, 1, {}, "com.app.obj.get")  # both match; the later wildcard is more specific
    assert early.take() == [] and len(late.take()) == 1


def test_caller_disclosure_on_request_and_by_realm_policy() -> None:
    core = Core()
    callee, caller = core.join(), core.join(authid="carl", authrole="user")
    register(callee, "com.proc")
    caller.send(48, 1, {"disclose_me": True}, "com.proc")
    details = invocation(callee)[3]
    assert details == {"caller": caller.id, "caller_authid": "carl", "caller_authrole": "user"}
    caller.send(48, 2, {}, "com.proc")
    assert invocation(callee)[3] == {}
    policy = Core(disclose_caller=True)
    callee, caller = policy.join(), policy.join()
    register(callee, "com.proc")
    caller.send(48, 1, {}, "com.proc")
    assert invocation(callee)[3]["caller"] == caller.id


def test_progressive_results() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {"receive_progress": True}, "com.slow")
    inv = invocation(callee)
    assert inv[3] == {"receive_progress": True}
    callee.send(70, inv[1], {"progress": True}, [1])
    callee.send(70, inv[1], {"progress": True}, [2])
    callee.send(70, inv[1], {}, [3])
    assert caller.take() == [
        [RESULT, 1, {"progress": True}, [1]],
        [RESULT, 1, {"progress": True}, [2]],
        [RESULT, 1, {}, [3]],
    ]
    # A caller that did not ask gets only the final result.
    caller.send(48, 2, {}, "com.slow")
    inv = invocation(callee)
    callee.send(70, inv[1], {"progress": True}, [1])
    callee.send(70, inv[1], {}, [2])
    assert caller.take() == [[RESULT, 2, {}, [2]]]


def test_call_timeout_is_enforced_by_the_router() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {"timeout": 300}, "com.slow")
    inv = invocation(callee)
    core.timers.advance(0.299)
    assert caller.take() == []
    core.timers.advance(0.002)
    [error] = caller.take()
    assert error[:5] == [ERROR, CALL, 1, {}, "wamp.error.timeout"]
    assert callee.take() == [
        [INTERRUPT, inv[1], {"mode": "killnowait", "reason": "wamp.error.timeout"}]
    ]
    callee.send(70, inv[1], {}, ["late"])  # a late result is dropped
    assert caller.take() == [] and core.realm.dealer.pending == set()
    # A call that finishes in time cancels its timer.
    caller.send(48, 2, {"timeout": 1000}, "com.slow")
    callee.send(70, invocation(callee)[1], {}, ["ok"])
    assert caller.take() == [[RESULT, 2, {}, ["ok"]]] and core.timers.active == 0


def test_cancel_skip() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {}, "com.slow")
    inv = invocation(callee)
    [error] = caller.send(49, 1, {"mode": "skip"})
    assert error[:5] == [ERROR, CALL, 1, {}, "wamp.error.canceled"]
    assert callee.take() == []  # skip: the callee is not told
    callee.send(70, inv[1], {}, ["late"])
    assert caller.take() == []


def test_cancel_modes() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    # killnowait: INTERRUPT, and the caller's error at once.
    caller.send(48, 1, {}, "com.slow")
    inv = invocation(callee)
    [error] = caller.send(49, 1, {"mode": "killnowait"})
    assert error[:5] == [ERROR, CALL, 1, {}, "wamp.error.canceled"]
    assert callee.take() == [[INTERRUPT, inv[1], {"mode": "killnowait"}]]
    # kill: INTERRUPT, and the caller's error once the callee answered.
    caller.send(48, 2, {}, "com.slow")
    inv = invocation(callee)
    assert caller.send(49, 2, {"mode": "kill"}) == []
    assert callee.take() == [[INTERRUPT, inv[1], {"mode": "kill"}]]
    assert caller.send(49, 2, {"mode": "kill"}) == []  # a second CANCEL is ignored
    callee.send(8, 68, inv[1], {}, "wamp.error.canceled")
    [error] = caller.take()
    assert error[:5] == [ERROR, CALL, 2, {}, "wamp.error.canceled"]
    # skip: the caller's error at once, the callee is not told, its late result dropped.
    caller.send(48, 3, {}, "com.slow")
    inv = invocation(callee)
    [error] = caller.send(49, 3, {"mode": "skip"})
    assert error[4] == "wamp.error.canceled" and callee.take() == []
    callee.send(70, inv[1], {}, ["late"])
    assert caller.take() == [] and core.realm.dealer.pending == set()
    assert caller.send(49, 99, {}) == []  # CANCEL of an unknown call: ignored


def test_callee_without_call_canceling_is_never_interrupted() -> None:
    core = Core()
    callee, caller = core.join(NO_CANCELING), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {}, "com.slow")
    invocation(callee)
    [error] = caller.send(49, 1, {"mode": "kill"})
    assert error[4] == "wamp.error.canceled" and callee.take() == []


def test_a_callee_that_leaves_fails_its_pending_calls_at_once() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {}, "com.slow")
    caller.send(48, 2, {"timeout": 5000}, "com.slow")
    callee.session.lost()
    errors = caller.take()
    assert sorted(e[2] for e in errors) == [1, 2]
    assert all(e[:2] == [ERROR, CALL] and e[4] == "wamp.error.canceled" for e in errors)
    assert core.timers.active == 0
    [error] = caller.send(48, 3, {}, "com.slow")
    assert error[4] == "wamp.error.no_such_procedure"


def test_a_caller_that_leaves_interrupts_its_invocations() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {}, "com.slow")
    inv = invocation(callee)
    caller.send(6, {}, "wamp.close.normal")
    assert callee.take() == [[INTERRUPT, inv[1], {"mode": "killnowait"}]]
    callee.send(8, 68, inv[1], {}, "wamp.error.canceled")  # the late answer goes nowhere
    assert core.realm.dealer.pending == set()
    callee.session.lost()
    assert core.realm.is_idle()


def test_limits_on_registrations_and_pending_calls() -> None:
    core = Core(limits=Limits(max_registrations_per_session=1, max_pending_calls_per_session=2))
    callee, caller = core.join(), core.join()
    register(callee, "com.a")
    [error] = callee.send(64, 2, {}, "com.b")
    assert error[4] == LIMIT_EXCEEDED
    caller.send(48, 1, {}, "com.a")
    caller.send(48, 2, {}, "com.a")
    [error] = caller.send(48, 3, {}, "com.a")
    assert error[:5] == [ERROR, CALL, 3, {}, LIMIT_EXCEEDED]
    first, _second = callee.take()
    callee.send(70, first[1], {})
    assert caller.take()[0][0] == RESULT
    assert caller.send(48, 4, {}, "com.a") == []  # room again


def test_a_request_id_reused_while_in_flight_is_a_protocol_violation() -> None:
    core = Core()
    callee, caller = core.join(), core.join()
    register(callee, "com.slow")
    caller.send(48, 1, {}, "com.slow")
    [abort] = caller.send(48, 1, {}, "com.slow")
    assert abort[:3:2] == [3, "wamp.error.protocol_violation"]
    assert len(callee.take()) == 2  # the INVOCATION, then the caller-left INTERRUPT


def test_yield_and_error_for_unknown_invocations_are_ignored() -> None:
    core = Core()
    callee = core.join(CLIENT_ROLES)
    assert callee.send(70, 42, {}) == []
    assert callee.send(8, 68, 42, {}, "com.error") == []


class DeferredClaims(LocalRoutingState):
    """A state whose registrations complete later, as a cluster-wide claim would."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[Callable[[], None]] = []

    def register(self, *args: Any, **kwargs: Any) -> None:
        self.claims.append(lambda: super(DeferredClaims, self).register(*args, **kwargs))


def test_registered_waits_for_the_claim_and_a_callee_gone_meanwhile_is_unregistered() -> None:
    core = Core()
    state = DeferredClaims()
    core.realm.state = state
    callee, leaver = core.join(), core.join()
    assert callee.send(64, 1, {}, "com.proc") == []  # the claim is still running
    assert leaver.send(64, 1, {}, "com.other") == []
    state.claims.pop(0)()
    assert callee.take()[0][0] == REGISTERED
    leaver.session.lost()
    state.claims.pop(0)()  # completes after its session left: undone, not leaked
    assert leaver.take() == [] and state.registration_for("com.other") is None
    callee.session.lost()
    assert core.realm.is_idle()
