"""Routed RPC through the real server with autobahn-python clients, on json, msgpack and cbor."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from consumers.wamp import Realm, Router
from tests.wamp._autobahn import ApplicationError, CallOptions, RegisterOptions

pytestmark = pytest.mark.transports("asyncio")


def interruptible(started: asyncio.Event, interrupted: asyncio.Event) -> Any:
    """A procedure that sets ``started``, then waits until it is cancelled (INTERRUPT), which
    sets ``interrupted``."""

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            interrupted.set()
            raise

    return slow


async def test_call_register_and_errors(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()

        def add(a: int, b: int) -> int:
            return a + b

        def fail(reason: str) -> None:
            raise ApplicationError("com.example.error.failed", reason, hint="try again")

        await callee.register(add, "com.example.add")
        await callee.register(fail, "com.example.fail")
        assert await caller.call("com.example.add", 2, 40) == 42
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.example.fail", "because")
        assert info.value.error == "com.example.error.failed"
        assert info.value.args == ("because",) and info.value.kwargs == {"hint": "try again"}
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.example.nothing")
        assert info.value.error == "wamp.error.no_such_procedure"
        with pytest.raises(ApplicationError) as info:
            await caller.register(add, "com.example.add")
        assert info.value.error == "wamp.error.procedure_already_exists"


async def test_shared_registration_roundrobin(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callees = [await wamp.connect() for _ in range(3)]
        for index, callee in enumerate(callees):
            await callee.register(
                lambda index=index: index,
                "com.shared",
                options=RegisterOptions(invoke="roundrobin"),
            )
        caller = await wamp.connect()
        assert [await caller.call("com.shared") for _ in range(6)] == [0, 1, 2, 0, 1, 2]
        await callees[0].leave()
        await asyncio.wait_for(callees[0].closed.wait(), 2)
        assert sorted([await caller.call("com.shared") for _ in range(4)]) == [1, 1, 2, 2]


async def test_pattern_registration_and_caller_disclosure(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1", disclose_caller=True)])
    async with wamp_server(router) as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()

        def where(*args: Any, details: Any) -> list[Any]:
            return [details.procedure, details.caller, details.caller_authid]

        await callee.register(
            where, "com.obj", options=RegisterOptions(match="prefix", details_arg="details")
        )
        await callee.register(lambda: "exact", "com.obj.special")
        assert await caller.call("com.obj.42.get") == [
            "com.obj.42.get",
            caller._session_id,
            caller._authid,
        ]
        assert await caller.call("com.obj.special") == "exact"


async def test_progressive_results(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()

        async def count(n: int, details: Any) -> str:
            for i in range(n):
                details.progress(i)
            return "done"

        await callee.register(count, "com.count", options=RegisterOptions(details_arg="details"))
        progress: list[int] = []
        result = await caller.call("com.count", 3, options=CallOptions(on_progress=progress.append))
        assert result == "done" and progress == [0, 1, 2]


async def test_call_timeout_is_enforced_by_the_router(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        interrupted = asyncio.Event()

        async def slow() -> str:
            try:
                await asyncio.sleep(2)
            except asyncio.CancelledError:
                interrupted.set()
                raise
            return "too late"

        await callee.register(slow, "com.slow")
        started = time.monotonic()
        with pytest.raises(ApplicationError) as info:
            await caller.call("com.slow", options=CallOptions(timeout=300))
        elapsed = time.monotonic() - started
        assert info.value.error == "wamp.error.timeout"
        assert 0.29 <= elapsed < 1.5, elapsed
        await asyncio.wait_for(interrupted.wait(), 2)  # the callee got INTERRUPT
        assert await wamp.idle_calls()


async def test_cancel_interrupts_the_callee(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        started, interrupted = asyncio.Event(), asyncio.Event()
        slow = interruptible(started, interrupted)
        await callee.register(slow, "com.slow")
        call = asyncio.ensure_future(caller.call("com.slow"))
        await asyncio.wait_for(started.wait(), 2)
        call.cancel()  # autobahn sends CANCEL (default mode: killnowait)
        await asyncio.wait_for(interrupted.wait(), 2)
        assert await wamp.idle_calls()


async def test_callee_leaving_fails_pending_calls_at_once(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        started = asyncio.Event()

        async def hang() -> None:
            started.set()
            await asyncio.sleep(30)

        await callee.register(hang, "com.hang")
        call = asyncio.ensure_future(caller.call("com.hang"))
        await asyncio.wait_for(started.wait(), 2)
        begun = time.monotonic()
        callee._transport.transport.abort()  # the callee's TCP connection vanishes
        with pytest.raises(ApplicationError) as info:
            await asyncio.wait_for(call, 2)
        assert info.value.error == "wamp.error.canceled"
        assert time.monotonic() - begun < 1.0
        assert await wamp.idle_calls()


async def test_caller_leaving_interrupts_the_invocation(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        callee, caller = await wamp.connect(), await wamp.connect()
        started, interrupted = asyncio.Event(), asyncio.Event()
        slow = interruptible(started, interrupted)
        await callee.register(slow, "com.slow")
        asyncio.ensure_future(caller.call("com.slow")).add_done_callback(lambda f: f.exception())
        await asyncio.wait_for(started.wait(), 2)
        caller.leave()
        await asyncio.wait_for(interrupted.wait(), 2)
        assert await wamp.idle_calls()
