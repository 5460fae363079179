"""The Redis serializers: rich values, clear errors, Fernet keys compatible with channels_redis."""

from __future__ import annotations

import base64
import datetime
import decimal
import hashlib
import uuid
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from channel_layers.base import InvalidMessage
from channel_layers.redis import RedisChannelLayer
from channel_layers.serializers import MessageDecodeError, MessageSerializer

RICH: dict[str, Any] = {
    "type": "rich",
    "when": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC),
    "naive": datetime.datetime(2024, 5, 6, 7, 8, 9),
    "day": datetime.date(2024, 2, 29),
    "at": datetime.time(23, 59, 1),
    "took": datetime.timedelta(days=1, seconds=2, microseconds=3),
    "price": decimal.Decimal("12.3400"),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "blob": b"\x00\xff",
    "nested": [{"deep": decimal.Decimal("-1E+3")}],
}


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_rich_values_round_trip(fmt: str) -> None:
    serializer = MessageSerializer(fmt)
    assert serializer.deserialize(serializer.serialize(RICH)) == RICH


def test_msgpack_keeps_int_dict_keys() -> None:
    serializer = MessageSerializer("msgpack")
    message = {"type": "scores", "by_user": {1: "a", 22: {3: "b"}}}
    assert serializer.deserialize(serializer.serialize(message)) == message


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_an_unsupported_value_is_named_with_its_path(fmt: str) -> None:
    message = {"type": "m", "user": {"tags": ["ok", {1, 2}]}}
    with pytest.raises(InvalidMessage) as caught:
        MessageSerializer(fmt).serialize(message)
    text = str(caught.value)
    assert "message['user']['tags'][1] has type set" in text
    assert "convert" in text


def test_an_int_beyond_64_bits_is_named() -> None:
    with pytest.raises(InvalidMessage, match=r"message\['n'\] has type int beyond 64 bits"):
        MessageSerializer().serialize({"type": "m", "n": 2**70})


def test_string_keys_are_derived_like_channels_redis() -> None:
    """A message encrypted by channels_redis (sha256-derived Fernet key) is readable here."""
    key = "my secret key"
    theirs = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))
    ours = MessageSerializer("msgpack", [key])
    token = theirs.encrypt(MessageSerializer("msgpack").serialize({"type": "x", "n": 1}))
    assert ours.deserialize(token) == {"type": "x", "n": 1}
    assert ours.serialize({"type": "x"}) != MessageSerializer().serialize({"type": "x"})


def test_key_rotation_reads_old_messages_and_writes_with_the_new_key() -> None:
    old = MessageSerializer("msgpack", ["old-key"])
    rotated = MessageSerializer("msgpack", ["new-key", "old-key"])
    new_only = MessageSerializer("msgpack", ["new-key"])
    assert rotated.deserialize(old.serialize({"type": "m"})) == {"type": "m"}
    assert new_only.deserialize(rotated.serialize({"type": "m"})) == {"type": "m"}
    with pytest.raises(MessageDecodeError, match="symmetric_encryption_keys"):
        old.deserialize(new_only.serialize({"type": "m"}))


def test_configuration_mistakes_are_explained() -> None:
    with pytest.raises(ValueError, match="list of keys"):
        MessageSerializer("msgpack", "one-key")  # a str is an Iterable: refused at runtime
    with pytest.raises(ValueError, match="use one of"):
        MessageSerializer("pickle")


async def test_encrypted_layer_stores_no_plaintext(redis_url: str) -> None:
    layer = RedisChannelLayer(
        hosts=[redis_url], prefix="enc-test", symmetric_encryption_keys=["k1"]
    )
    try:
        await layer.send("secret.channel", {"type": "m", "text": "plaintext-marker"})
        raw = redis.Redis.from_url(redis_url).lrange(layer.channel_key("secret.channel"), 0, -1)
        assert len(raw) == 1 and b"plaintext-marker" not in raw[0]
        received = await layer.receive("secret.channel")
        assert received == {"type": "m", "text": "plaintext-marker"}
    finally:
        await layer.flush()
        await layer.close()


async def test_layer_carries_rich_values_end_to_end(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix="rich-test")
    try:
        channel = await layer.new_channel()
        await layer.group_add("rich", channel)
        await layer.group_send("rich", RICH)
        assert await layer.receive(channel) == RICH
    finally:
        await layer.flush()
        await layer.close()


def test_a_shared_payload_is_decoded_once_and_each_caller_gets_a_copy() -> None:
    serializer = MessageSerializer()
    payload = serializer.serialize({"type": "m", "text": "a longer text " * 3, "items": [{"n": 1}]})
    first = serializer.deserialize_shared(payload)
    first["items"][0]["n"] = 2  # a receiver changing its message changes nobody else's
    second = serializer.deserialize_shared(payload)
    assert second == {"type": "m", "text": "a longer text " * 3, "items": [{"n": 1}]}
    assert second["text"] is first["text"]  # one decoding, shared immutable values
    again = serializer.deserialize_shared(bytes(bytearray(payload)))  # equal, another object
    assert again == second and again["text"] is not first["text"]
