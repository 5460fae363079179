"""A Twisted autobahn-python client, run as its own process by test_twisted_client.py (txaio
picks one networking flavour per process, and the test process uses asyncio).

Usage: python _twisted_client.py URL SERIALIZER. Joins realm1, registers, calls, subscribes,
publishes and checks a router-enforced timeout, then prints one JSON line with what it saw.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import txaio

txaio.use_twisted()  # type: ignore[no-untyped-call]

from autobahn.twisted import wamp as _wamp  # noqa: E402
from autobahn.twisted import websocket as _websocket  # noqa: E402
from autobahn.wamp import exception as _exception  # noqa: E402
from autobahn.wamp import serializer as _serializer  # noqa: E402
from autobahn.wamp import types as _autobahn_types  # noqa: E402
from twisted.internet import defer, task  # noqa: E402
from twisted.internet import reactor as _reactor  # noqa: E402

ApplicationSession: Any = _wamp.ApplicationSession
reactor: Any = _reactor  # Twisted's reactor is a module-level object of no useful static type
inline_callbacks: Any = defer.inlineCallbacks
_types: Any = _autobahn_types  # autobahn's option classes are untyped
client_factory: Any = _websocket.WampWebSocketClientFactory
SERIALIZERS: dict[str, Any] = {
    "json": _serializer.JsonSerializer,
    "msgpack": _serializer.MsgPackSerializer,
    "cbor": _serializer.CBORSerializer,
}
report: dict[str, Any] = {}


class Client(ApplicationSession):  # type: ignore[misc]
    @inline_callbacks  # type: ignore[untyped-decorator]
    def onJoin(self, details: Any) -> Any:
        report["joined"] = details.realm
        yield self.register(lambda a, b: a + b, "com.twisted.add")
        report["sum"] = yield self.call("com.twisted.add", 20, 22)
        report["local"] = yield self.call("com.local.add", 1, 2)
        got: list[Any] = []
        yield self.subscribe(lambda *args: got.append(list(args)), "com.twisted.news")
        yield self.publish(
            "com.twisted.news",
            "hi",
            options=_types.PublishOptions(acknowledge=True, exclude_me=False),
        )
        yield task.deferLater(reactor, 0.2, lambda: None)
        report["events"] = got
        yield self.register(lambda: task.deferLater(reactor, 2, lambda: "late"), "com.twisted.slow")
        try:
            yield self.call("com.twisted.slow", options=_types.CallOptions(timeout=300))
        except _exception.ApplicationError as exc:
            report["timeout"] = exc.error
        self.leave()

    def onDisconnect(self) -> None:
        print(json.dumps(report), flush=True)
        reactor.stop()


def main() -> None:
    url, serializer = sys.argv[1], sys.argv[2]
    factory = client_factory(
        lambda: Client(_types.ComponentConfig("realm1")),
        url=url,
        serializers=[SERIALIZERS[serializer]()],
    )
    host, port = url.split("//")[1].split("/")[0].split(":")
    reactor.connectTCP(host, int(port), factory)
    reactor.callLater(10, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
