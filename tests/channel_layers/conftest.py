"""The channel layer backends the contract suite (test_contract.py) runs on.

Every test that takes the ``layer`` or ``make_layer`` fixture runs once per entry of
``LAYER_BACKENDS``. Adding a backend is one line here::

    LAYER_BACKENDS["redis"] = LayerBackend(make_redis_layer)

where ``make_redis_layer(request, options)`` is an async function that builds the layer with
``options`` (Channels' constructor kwargs: expiry, group_expiry, capacity, channel_capacity)
and may use fixtures through ``request.getfixturevalue("redis_url")``. The fixtures flush and
close every layer they built.

A backend that cannot support a rule by design (a pub/sub layer stores nothing, so it has no
capacity or expiry) leaves the capability out of ``capabilities``; tests marked
``@pytest.mark.layer_needs("<capability>")`` are then not collected for it (deselected, like a
transport a test opts out of); the backend's own tests assert what it does instead. The memory
backend has every capability, so nothing is left out for it. ``time_unit`` is the shortest
expiry (in seconds) the backend honours reliably; expiry tests sleep a few of these.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from channel_layers.base import BaseChannelLayer
from channel_layers.memory import InMemoryChannelLayer

#: storage: messages wait in the layer until received (so capacity and ChannelFull apply, and
#:          one message on a shared channel reaches exactly one of several receivers);
#: expiry: messages older than ``expiry`` are dropped; group_expiry: stale memberships too.
ALL_CAPABILITIES = frozenset({"storage", "expiry", "group_expiry"})

LayerFactory = Callable[[pytest.FixtureRequest, Mapping[str, Any]], Awaitable[BaseChannelLayer]]


@dataclass(frozen=True)
class LayerBackend:
    """One backend under test: how to build it and what it can do."""

    factory: LayerFactory
    capabilities: frozenset[str] = ALL_CAPABILITIES
    time_unit: float = 0.05


async def make_memory_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """The in-memory layer with ``options``."""
    return InMemoryChannelLayer(**options)


# --- the Redis backends (tests/conftest.py starts the Redis; each layer gets its own prefix) ---


async def make_redis_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisChannelLayer on the shared test Redis, under a prefix no other test uses."""
    from channel_layers.redis import RedisChannelLayer

    prefix = f"test-{os.urandom(4).hex()}"
    return RedisChannelLayer(hosts=[request.getfixturevalue("redis_url")], prefix=prefix, **options)


#: Contract tests that send before anyone listens: pub/sub stores nothing, so that message is
#: lost by design (the module docstring of redis_pubsub says so).
async def make_redis_pubsub_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisPubSubChannelLayer on the shared test Redis, under a prefix no other test uses."""
    from channel_layers.redis_pubsub import RedisPubSubChannelLayer

    prefix = f"test-{os.urandom(4).hex()}"
    url = request.getfixturevalue("redis_url")
    layer = RedisPubSubChannelLayer(hosts=[url], prefix=prefix, **options)
    # Open the subscriber connection now, as a running process has: a test's first receive()
    # then subscribes in one round trip, before the send it races with.
    await layer.new_channel()
    return layer


LAYER_BACKENDS: dict[str, LayerBackend] = {
    "memory": LayerBackend(make_memory_layer),
    "redis": LayerBackend(make_redis_layer),
    "redis_pubsub": LayerBackend(make_redis_pubsub_layer, frozenset({"expiry", "group_expiry"})),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "layer_needs(*capabilities): not collected for layer backends without them"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out (deselect) each test on the backends that lack a capability it needs."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("layer_backend") if callspec else None
        needed = {cap for marker in item.iter_markers("layer_needs") for cap in marker.args}
        lacking = name is not None and not needed <= LAYER_BACKENDS[name].capabilities
        (drop if lacking else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=list(LAYER_BACKENDS))
def layer_backend(request: pytest.FixtureRequest) -> LayerBackend:
    """The backend this test runs on."""
    return LAYER_BACKENDS[request.param]


MakeLayer = Callable[..., Awaitable[BaseChannelLayer]]


@pytest.fixture
async def make_layer(
    request: pytest.FixtureRequest, layer_backend: LayerBackend
) -> AsyncIterator[MakeLayer]:
    """``await make_layer(capacity=3, ...)`` builds a layer of this backend with those options."""
    built: list[BaseChannelLayer] = []

    async def make(**options: Any) -> BaseChannelLayer:
        layer = await layer_backend.factory(request, options)
        built.append(layer)
        return layer

    yield make
    for layer in built:
        await layer.flush()
        await layer.close()


@pytest.fixture
async def layer(make_layer: MakeLayer) -> BaseChannelLayer:
    """A layer of this backend with the default options."""
    return await make_layer()


@pytest.fixture
def time_unit(layer_backend: LayerBackend) -> float:
    """The shortest expiry this backend honours reliably, in seconds."""
    return layer_backend.time_unit
