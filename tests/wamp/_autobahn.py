"""autobahn-python's client classes, typed as ``Any`` (autobahn is only partly typed)."""

from __future__ import annotations

from typing import Any

import txaio

txaio.use_asyncio()  # type: ignore[no-untyped-call]

from autobahn.asyncio import wamp as _wamp  # noqa: E402
from autobahn.asyncio import websocket as _websocket  # noqa: E402
from autobahn.wamp import exception as _exception  # noqa: E402
from autobahn.wamp import serializer as _serializer  # noqa: E402
from autobahn.wamp import types as _types  # noqa: E402

ApplicationSession: Any = _wamp.ApplicationSession
WampWebSocketClientFactory: Any = _websocket.WampWebSocketClientFactory
ApplicationError: Any = _exception.ApplicationError
ComponentConfig: Any = _types.ComponentConfig
PublishOptions: Any = _types.PublishOptions
SubscribeOptions: Any = _types.SubscribeOptions
RegisterOptions: Any = _types.RegisterOptions
CallOptions: Any = _types.CallOptions
JsonSerializer: Any = _serializer.JsonSerializer
MsgPackSerializer: Any = _serializer.MsgPackSerializer
CBORSerializer: Any = _serializer.CBORSerializer
