"""The Redis channel layers, one module per concern.

```
durable.py     RedisChannelLayer: durable queues in Redis lists, sharded over several servers
pubsub.py      RedisPubSubChannelLayer: PUBLISH/SUBSCRIBE, lowest latency, nothing stored
local.py       the durable layer's receiving side in one process: local queues and pop loops
scripts.py     the durable layer's Lua scripts (one EVALSHA per send, drain, group_send shard)
queues.py      the durable layer's work queues (channel_layers/queues.py): leases, acks, claims
queue_scripts.py  their Lua scripts (one EVALSHA per enqueue, take, renew, ack...)
connection.py  host settings, one client per event loop per shard, sharding, errors
client.py      RedisClient: what the layers need from a client; the adapter over redis-py
lean.py        the lean client (RedisClient) for plain redis:// and unix:// servers
resp.py        its wire format and pipelined connection
resp_push.py   its subscriber connection (replies pushed to a callback)
subscriber.py  the pub/sub layer's subscriber: subscribe, read, reconnect, hooks
```

The public paths are ``channel_layers.redis.RedisChannelLayer`` and
``channel_layers.redis_pubsub.RedisPubSubChannelLayer`` (Channels' backend paths map to them).
"""

from __future__ import annotations

from channel_layers.redis.durable import RedisChannelLayer
from channel_layers.redis.pubsub import RedisPubSubChannelLayer

# Their public home (what settings name and reprs show), not the module that defines them.
RedisChannelLayer.__module__ = __name__
RedisPubSubChannelLayer.__module__ = "channel_layers.redis_pubsub"

__all__ = ["RedisChannelLayer", "RedisPubSubChannelLayer"]
