"""Router processes as one cluster (consumers/wamp/cluster.py): two routers on one in-memory
layer, then two real server processes (and --workers 2) on a private Redis with autobahn-python
clients on each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from channel_layers.memory import InMemoryChannelLayer
from consumers.wamp import Realm, Router
from tests.conftest import get_free_port, wait_until_accepting
from tests.wamp._autobahn import ApplicationError, SubscribeOptions
from tests.wamp.conftest import Wamp

pytestmark = pytest.mark.transports("asyncio")

REPO_ROOT = Path(__file__).resolve().parents[2]
HEARTBEAT = 1.0  # the layer's heartbeat_ttl in these tests: how soon a killed process is dead
SYNC = 0.3  # the routers' sync_interval
BOUND = HEARTBEAT + SYNC + 1.0  # plus scheduling slack on a busy 2-core machine


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``condition`` (a registry read on another node is eventual) until it is truthy."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "the cluster did not converge in time"
        await asyncio.sleep(0.01)
    return result


async def test_two_routers_on_one_memory_layer_share_calls_and_events() -> None:
    layer = InMemoryChannelLayer()
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    on_a, on_b = a.join("realm1"), b.join("realm1")

    async def add(x: int, y: int) -> int:
        return x + y

    on_b.register("com.add", add)
    realm_a = a.realm("realm1")
    assert realm_a is not None and realm_a.cluster is not None
    await until(lambda: realm_a.state.registration_for("com.add"))
    assert await on_a.call("com.add", 2, 3) == 5
    events: asyncio.Queue[Any] = asyncio.Queue()
    on_b.subscribe("com.topic", lambda *args: events.put_nowait(args))
    await until(
        lambda: realm_a.cluster is not None and realm_a.cluster.interest.matching("com.topic")
    )
    on_a.publish("com.topic", 1, 2)
    assert await asyncio.wait_for(events.get(), 2) == (1, 2)
    second = a.join("realm1")
    second.register("com.add", add)  # refused by the cluster: logged, never bound
    await asyncio.sleep(SYNC)
    assert realm_a.state.registration_for("com.add").callees == [on_b.id]  # type: ignore[union-attr]
    on_b.leave()
    await until(lambda: realm_a.state.registration_for("com.add") is None)
    for router in (a, b):
        assert router.node is not None
        router.node.stop()


async def test_a_cross_node_timeout_interrupts_the_remote_callee() -> None:
    layer = InMemoryChannelLayer()
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    on_a, on_b = a.join("realm1"), b.join("realm1")
    interrupted = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set()  # the INTERRUPT crossed the layer to the callee's node
            raise
        return "too late"

    on_b.register("com.slow", slow)
    realm_a, realm_b = a.realm("realm1"), b.realm("realm1")
    assert realm_a is not None and realm_b is not None
    await until(lambda: realm_a.state.registration_for("com.slow"))
    with pytest.raises(ApplicationError) as timed_out:
        await on_a.call("com.slow", timeout=0.2)
    assert timed_out.value.error == "wamp.error.timeout"
    await asyncio.wait_for(interrupted.wait(), 2)
    await until(lambda: not realm_a.dealer.pending and not realm_b.dealer.pending)
    for router in (a, b):
        assert router.node is not None
        router.node.stop()


# --- real server processes on Redis ---------------------------------------------------------


@contextlib.contextmanager
def router_process(
    redis_url: str, prefix: str, *args: str, **settings: str
) -> Iterator[tuple[int, Any]]:
    """``python -m asgi_server`` serving tests/wamp/apps/cluster_app.py on a free port;
    ``settings`` become WAMP_<NAME> environment variables (see the app)."""
    port = get_free_port()
    env = dict(os.environ)
    env.update({f"WAMP_{name.upper()}": value for name, value in settings.items()})
    query = (
        f"prefix={prefix}"
        if "+pubsub" in redis_url
        else f"prefix={prefix}&heartbeat_ttl={HEARTBEAT}"
    )
    env["CHANNEL_LAYERS_URL"] = f"{redis_url}?{query}"
    env["WAMP_SYNC_INTERVAL"] = str(SYNC)
    app = "tests.wamp.apps.cluster_app:application"
    command = [sys.executable, "-m", "asgi_server", app, "--port", str(port), *args]
    with tempfile.NamedTemporaryFile(prefix="crossway-wamp-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=log)
        try:
            wait_until_accepting("127.0.0.1", port, process)
            workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 0
            deadline = time.monotonic() + 20
            # The supervisor's socket accepts before its workers serve: wait for them.
            while Path(log.name).read_text().count("is serving") < workers:
                assert time.monotonic() < deadline, Path(log.name).read_text()
                time.sleep(0.05)
            yield port, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def wamp_at(port: int, serializer: str = "json") -> Wamp:
    return Wamp(None, f"ws://127.0.0.1:{port}/ws", "127.0.0.1", port, serializer)


async def call_when_known(client: Any, procedure: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``procedure`` once its registration has reached the caller's node."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return await client.call(procedure, *args, **kwargs)
        except ApplicationError as exc:
            if exc.error != "wamp.error.no_such_procedure" or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def receive_when_known(
    publish: Callable[[], None], events: asyncio.Queue[Any], timeout: float = 5.0
) -> Any:
    """Publish until the subscription has reached the publisher's node; the first event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish()
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(events.get(), 0.05)
    raise AssertionError("no event crossed the processes")


@pytest.fixture
def prefix() -> str:
    return f"wamp-{os.urandom(4).hex()}"


@pytest.mark.parametrize("scheme", ["redis", "redis+pubsub"])
@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_two_processes_share_events_calls_and_single_registrations(
    redis_url: str, prefix: str, serializer: str, scheme: str
) -> None:
    url = redis_url.replace("redis://", f"{scheme}://", 1)
    with (
        router_process(url, prefix) as (port_a, _),
        router_process(url, prefix) as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a, serializer), wamp_at(port_b, serializer)
        try:
            a, b = await wamp_a.connect(), await wamp_b.connect()
            to_b: asyncio.Queue[Any] = asyncio.Queue()
            to_a: asyncio.Queue[Any] = asyncio.Queue()
            await b.subscribe(lambda *args: to_b.put_nowait(args), "com.ab")
            await a.subscribe(lambda *args: to_a.put_nowait(args), "com.ba.", options=_prefix())
            assert await receive_when_known(lambda: a.publish("com.ab", "x"), to_b) == ("x",)
            assert await receive_when_known(lambda: b.publish("com.ba.y", 7), to_a) == (7,)

            await b.register(lambda x, y: x + y, "com.add")
            assert await call_when_known(a, "com.add", 2, 3) == 5
            other = await wamp_a.connect()
            with pytest.raises(ApplicationError) as refused:
                await other.register(lambda x, y: 0, "com.add")
            assert refused.value.error == "wamp.error.procedure_already_exists"
            pids = {await a.call("com.worker.pid") for _ in range(6)}
            assert len(pids) == 2  # a round-robin registration shared by both processes
        finally:
            await wamp_a.close()
            await wamp_b.close()


def _prefix() -> Any:
    return SubscribeOptions(match="prefix")


async def test_killing_the_callees_process_fails_the_call_and_drops_its_registrations(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, process_b),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            a, b = await wamp_a.connect(), await wamp_b.connect()
            started = asyncio.Event()

            async def slow() -> str:
                started.set()
                await asyncio.sleep(60)
                return "too late"

            await b.register(slow, "com.slow")
            await call_when_known(a, "com.worker.pid")
            pending = asyncio.ensure_future(call_when_known(a, "com.slow"))
            await asyncio.wait_for(started.wait(), 5)
            process_b.kill()
            killed = time.monotonic()
            with pytest.raises(ApplicationError) as failed:
                await asyncio.wait_for(pending, BOUND + 2)
            took = time.monotonic() - killed
            assert failed.value.error == "wamp.error.canceled"
            assert took < BOUND, f"the caller waited {took:.2f}s for a dead callee"
            await asyncio.sleep(0)
            with pytest.raises(ApplicationError) as gone:
                await a.call("com.slow")
            assert gone.value.error == "wamp.error.no_such_procedure"
            assert await a.register(lambda: "here", "com.slow")  # the name is free again
            assert await a.call("com.slow") == "here"
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_two_workers_on_one_port_are_one_router(redis_url: str, prefix: str) -> None:
    with router_process(redis_url, prefix, "--workers", "2") as (port, _):
        wamp = wamp_at(port)
        try:
            clients = [await wamp.connect() for _ in range(6)]
            pids = {await call_when_known(clients[0], "com.worker.pid") for _ in range(8)}
            for _ in range(50):
                if len(pids) == 2:
                    break
                pids.add(await clients[0].call("com.worker.pid"))
            assert len(pids) == 2, "both workers serve the shared registration"
            events: list[asyncio.Queue[Any]] = []
            for client in clients[1:]:
                queue: asyncio.Queue[Any] = asyncio.Queue()
                events.append(queue)
                await client.subscribe(lambda *args, queue=queue: queue.put_nowait(args), "com.all")
            for queue in events:
                await receive_when_known(lambda: clients[0].publish("com.all", 1), queue)
            await clients[5].register(lambda: "five", "com.five")
            for client in clients[:5]:
                assert await call_when_known(client, "com.five") == "five"
        finally:
            await wamp.close()
