"""AUTH and TLS on a live redis-server (conftest's ``secure_redis``), on both Redis clients.

The whole contract suite also runs over these paths (conftest: ``redis_unix`` with an ACL user
on the lean client, ``redis_tls`` on redis-py); these tests pin what the suite cannot show: which
client serves which URL, each way of giving a password, and a certificate that is not trusted.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from channel_layers.base import BaseChannelLayer, LayerUnavailable
from channel_layers.redis import RedisChannelLayer
from channel_layers.redis.client import RedisPyClient
from channel_layers.redis.lean import LeanClient
from channel_layers.redis_pubsub import RedisPubSubChannelLayer
from tests.channel_layers.conftest import SecureRedis


async def round_trip(layer: BaseChannelLayer) -> None:
    """A message goes through ``layer`` (a process-local channel: receive first, pub/sub too)."""
    try:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "hello", "n": 1})
        assert await layer.receive(channel) == {"type": "hello", "n": 1}
    finally:
        await layer.flush()
        await layer.close()


def prefix() -> str:
    return f"test-{os.urandom(4).hex()}"


@pytest.mark.parametrize(
    ("host", "client_class"),
    [
        (lambda r: r.unix_url(), LeanClient),
        (lambda r: f"redis://{r.user}:{r.password}@127.0.0.1:{r.port}", LeanClient),
        (lambda r: r.tls_host(), RedisPyClient),
    ],
    ids=["unix-lean", "tcp-lean", "tls-redis-py"],
)
async def test_an_acl_user_and_password_work_on_the_client_that_serves_the_url(
    secure_redis: SecureRedis, host: Any, client_class: type
) -> None:
    layer = RedisChannelLayer(hosts=[host(secure_redis)], prefix=prefix())
    channel = await layer.new_channel()
    assert type(layer.shards[0].client()) is client_class
    await layer.send(channel, {"type": "acl"})
    assert await layer.receive(channel) == {"type": "acl"}
    await layer.flush()
    await layer.close()


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
@pytest.mark.parametrize("tls", [False, True], ids=["lean", "tls-redis-py"])
async def test_requirepass_a_password_without_a_user(
    secure_redis: SecureRedis, layer_class: type[BaseChannelLayer], tls: bool
) -> None:
    password = secure_redis.default_password
    if tls:
        url = f"rediss://:{password}@localhost:{secure_redis.tls_port}"
        host: Any = {"address": url, "ssl_ca_certs": secure_redis.ca_file}
    else:
        host = f"redis://:{password}@127.0.0.1:{secure_redis.port}"
    await round_trip(layer_class(hosts=[host], prefix=prefix()))  # type: ignore[call-arg]


async def test_tls_refuses_a_certificate_it_cannot_verify(secure_redis: SecureRedis) -> None:
    # No ssl_ca_certs: the self-signed certificate is not in the system's trust store.
    url = f"rediss://{secure_redis.user}:{secure_redis.password}@localhost:{secure_redis.tls_port}"
    layer = RedisChannelLayer(hosts=[url], prefix=prefix())
    with pytest.raises(LayerUnavailable, match="certificate verify failed"):
        await layer.send("plain", {"type": "x"})
    await layer.close()


async def test_a_plain_connection_to_the_tls_port_fails_cleanly(secure_redis: SecureRedis) -> None:
    url = f"redis://{secure_redis.user}:{secure_redis.password}@127.0.0.1:{secure_redis.tls_port}"
    layer = RedisChannelLayer(hosts=[{"address": url, "socket_timeout": 1}], prefix=prefix())
    with pytest.raises(LayerUnavailable, match=r"127\.0\.0\.1"):
        await layer.send("plain", {"type": "x"})
    await layer.close()


@pytest.mark.parametrize("tls", [False, True], ids=["lean", "tls-redis-py"])
@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_a_wrong_password_leaves_no_connection_open_and_says_why(
    secure_redis: SecureRedis, layer_class: type[BaseChannelLayer], tls: bool
) -> None:
    # Issue 21: each failed send left one more socket open on the server, and the caller got
    # a bare ResponseError: WRONGPASS.
    password = "not-the-password"
    if tls:
        url = f"rediss://{secure_redis.user}:{password}@localhost:{secure_redis.tls_port}"
        host: Any = {"address": url, "ssl_ca_certs": secure_redis.ca_file}
    else:
        url = f"redis://{secure_redis.user}:{password}@127.0.0.1:{secure_redis.port}"
        host = url
    layer = layer_class(hosts=[host], prefix=prefix())  # type: ignore[call-arg]
    before = secure_redis.clients()
    for _ in range(5):
        with pytest.raises(LayerUnavailable) as raised:
            await layer.send("plain", {"type": "x"})
        layer.shards[0]._down_until = 0.0  # type: ignore[attr-defined]  # no cooldown: 5 tries
    message = str(raised.value)
    assert "AuthenticationError" in message
    assert "invalid username-password pair" in message
    assert url.replace(f"{secure_redis.user}:{password}@", "") in message
    assert password not in message
    assert "username and password" in message
    # The server sees a close a moment after the client made it: poll (bounded), then compare.
    deadline = time.monotonic() + 2
    while secure_redis.clients() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert secure_redis.clients() == before
    await layer.close()
