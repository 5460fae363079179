"""``channel_layers.redis_pubsub.RedisPubSubChannelLayer``: the pub/sub layer's public path
(settings and Channels' backend alias name it); the code is in ``channel_layers.redis.pubsub``."""

from __future__ import annotations

from channel_layers.redis.pubsub import RedisPubSubChannelLayer

__all__ = ["RedisPubSubChannelLayer"]
