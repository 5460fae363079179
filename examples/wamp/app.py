"""A WAMP router inside an ASGI app: ``asgi-server examples.wamp.app:application``.

- ``/ws``: the WAMP endpoint (realm ``realm1``) for autobahn.js and autobahn-python clients.
- ``/``: a page that joins with autobahn.js (from a CDN), calls ``com.example.add`` and shows the
  events of ``com.example.notice``.
- ``POST /notify`` (body: text): publishes the body to ``com.example.notice`` from ordinary
  HTTP code, the way a Django view would with ``consumers.wamp.publish_sync``.
"""

from __future__ import annotations

import logging
from typing import Any

from consumers import AsyncHttpConsumer
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router, publish

logger = logging.getLogger(__name__)

# --8<-- [start:router]
router = Router(realms=[Realm("realm1")])


@router.register("realm1", "com.example.add")
async def add(a: int, b: int) -> int:
    """An in-process procedure any client may call."""
    return a + b


@router.subscribe("realm1", "com.example.notice")
def log_notice(text: str) -> None:
    """A sync handler: runs in the thread pool."""
    logger.info("notice: %s", text)


# --8<-- [end:router]


PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>Crossway WAMP</title>
<script src="https://cdn.jsdelivr.net/npm/autobahn-browser@22.11.1/autobahn.min.js"></script>
<p>2 + 3 = <span id="sum">?</span></p><ul id="notices"></ul>
<script>
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const connection = new autobahn.Connection({url, realm: "realm1"});
connection.onopen = async (session) => {
  document.getElementById("sum").textContent = await session.call("com.example.add", [2, 3]);
  session.subscribe("com.example.notice", ([text]) => {
    const item = document.createElement("li");
    item.textContent = text;
    document.getElementById("notices").append(item);
  });
};
connection.open();
</script>
"""


class Site(AsyncHttpConsumer):
    """The page, and POST /notify."""

    async def handle(self, body: bytes) -> None:
        """Serve ``/`` or publish the body of ``POST /notify``."""
        if self.scope["path"] == "/notify" and self.scope["method"] == "POST":
            publication = await publish("realm1", "com.example.notice", body.decode()[:1000])
            await self.send_response(200, str(publication).encode())
            return
        await self.send_response(200, PAGE, headers={"content-type": "text/html; charset=utf-8"})


# --8<-- [start:routes]
def _routes() -> Any:
    return ProtocolTypeRouter(
        {
            "http": URLRouter([path("", Site.as_asgi()), path("notify", Site.as_asgi())]),
            "websocket": URLRouter([path("ws", router.as_asgi())]),
        }
    )


application = _routes()
# --8<-- [end:routes]
