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

import datetime
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channel_layers.base import BaseChannelLayer
from channel_layers.memory import InMemoryChannelLayer
from tests.conftest import RedisServers, get_free_port, redis_command

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


# --- one more private Redis: a unix socket, a TLS port, and AUTH required on every connection ---


@dataclass(frozen=True)
class SecureRedis:
    """A redis-server that wants a password: over TCP, a unix socket and TLS (self-signed)."""

    port: int
    tls_port: int
    unix_path: str
    ca_file: str
    user: str = "crossway"
    password: str = "acl-secret"
    default_password: str = "requirepass-secret"

    def unix_url(self) -> str:
        """An ACL user and password over the unix socket: the lean client's path."""
        return f"unix://{self.user}:{self.password}@{self.unix_path}"

    def tls_host(self) -> dict[str, Any]:
        """An ACL user and password over TLS, the certificate verified: redis-py's path."""
        url = f"rediss://{self.user}:{self.password}@localhost:{self.tls_port}"
        return {"address": url, "ssl_ca_certs": self.ca_file}

    def clients(self) -> int:
        """How many client connections the server holds now (this query's own included)."""
        info = self.command("INFO", "clients")
        line = next(x for x in info.split(b"\r\n") if x.startswith(b"connected_clients:"))
        return int(line.split(b":")[1])

    def command(self, *args: str) -> bytes:
        """AUTH as the ACL user, then send one command; its raw reply (one read: keep it small)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(_encode("AUTH", self.user, self.password))
            assert sock.recv(64) == b"+OK\r\n"
            sock.sendall(_encode(*args))
            return sock.recv(65536)


def _encode(*parts: str) -> bytes:
    out = b"*%d\r\n" % len(parts)
    for part in parts:
        out += b"$%d\r\n%s\r\n" % (len(part.encode()), part.encode())
    return out


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (it is its own CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "redis.crt", directory / "redis.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="session")
def secure_redis() -> Iterator[SecureRedis]:
    """The session's password-protected Redis on TCP, a unix socket and TLS."""
    servers = RedisServers()
    try:
        cert, key = make_certificate(servers.directory)
        unix_path = str(servers.directory / "redis.sock")
        tls_port = get_free_port()
        server = servers.start(
            *("--unixsocket", unix_path, "--unixsocketperm", "700"),
            *("--tls-port", str(tls_port), "--tls-auth-clients", "no"),
            *("--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(cert)),
        )
        redis = SecureRedis(server.port, tls_port, unix_path, str(cert))
        # An ACL user for the layers, and a password for the default user (requirepass): set
        # after the start, so that the fixtures' PING without AUTH saw the server come up.
        acl = ("ACL", "SETUSER", redis.user, "on", f">{redis.password}", "~*", "&*", "+@all")
        assert redis_command(server.port, *acl).startswith(b"+OK")
        setting = ("CONFIG", "SET", "requirepass", redis.default_password)
        assert redis_command(server.port, *setting).startswith(b"+OK")
        yield redis
    finally:
        servers.close()


async def make_redis_unix_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisChannelLayer on the lean client over a unix socket, as an ACL user."""
    from channel_layers.redis import RedisChannelLayer

    secure: SecureRedis = request.getfixturevalue("secure_redis")
    prefix = f"test-{os.urandom(4).hex()}"
    return RedisChannelLayer(hosts=[secure.unix_url()], prefix=prefix, **options)


async def make_redis_tls_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisChannelLayer on redis-py over TLS (rediss://, a verified self-signed certificate)."""
    from channel_layers.redis import RedisChannelLayer

    secure: SecureRedis = request.getfixturevalue("secure_redis")
    prefix = f"test-{os.urandom(4).hex()}"
    return RedisChannelLayer(hosts=[secure.tls_host()], prefix=prefix, **options)


async def make_redis_cluster_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisChannelLayer on redis-py's RedisCluster (the session's three-node cluster)."""
    from channel_layers.redis import RedisChannelLayer

    nodes = request.getfixturevalue("redis_cluster")
    prefix = f"test-{os.urandom(4).hex()}"
    host = {"address": nodes[0].url, "cluster": True}
    return RedisChannelLayer(hosts=[host], prefix=prefix, **options)


async def make_redis_pubsub_tls_layer(
    request: pytest.FixtureRequest, options: Mapping[str, Any]
) -> BaseChannelLayer:
    """RedisPubSubChannelLayer on redis-py over TLS."""
    from channel_layers.redis_pubsub import RedisPubSubChannelLayer

    secure: SecureRedis = request.getfixturevalue("secure_redis")
    prefix = f"test-{os.urandom(4).hex()}"
    layer = RedisPubSubChannelLayer(hosts=[secure.tls_host()], prefix=prefix, **options)
    await layer.new_channel()  # as make_redis_pubsub_layer
    return layer


PUBSUB_CAPABILITIES = frozenset({"expiry", "group_expiry"})

#: The Redis backends run on both clients: the lean one (redis://, unix://) and redis-py (TLS,
#: Cluster), so that neither client is tested only indirectly.
LAYER_BACKENDS: dict[str, LayerBackend] = {
    "memory": LayerBackend(make_memory_layer),
    "redis": LayerBackend(make_redis_layer),
    "redis_unix": LayerBackend(make_redis_unix_layer),
    # redis-py opens a connection per blocking pop, a TLS handshake each: an expiry of 50 ms
    # could pass before a loaded machine got the message back.
    "redis_tls": LayerBackend(make_redis_tls_layer, time_unit=0.25),
    "redis_cluster": LayerBackend(make_redis_cluster_layer, time_unit=0.25),
    "redis_pubsub": LayerBackend(make_redis_pubsub_layer, PUBSUB_CAPABILITIES),
    "redis_pubsub_tls": LayerBackend(
        make_redis_pubsub_tls_layer, PUBSUB_CAPABILITIES, time_unit=0.25
    ),
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
