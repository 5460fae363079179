"""A WAMP router inside an ASGI app: ``asgi-server examples.wamp.app:application``.

- ``/ws``: the WAMP endpoint (realm ``realm1``) for autobahn.js and autobahn-python clients.
- ``/``: a page that joins with autobahn.js (the copy vendored in Crossway, served at
  ``/autobahn.min.js``: no internet needed), calls ``com.example.add`` and shows the events of
  ``com.example.notice``.
- ``POST /notify`` (body: text): publishes the body to ``com.example.notice`` from ordinary
  HTTP code, the way a Django view would with ``consumers.wamp.publish_sync``.
"""

from __future__ import annotations

from typing import Any

from consumers import AsyncHttpConsumer
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router, publish
from consumers.wamp.browser import autobahn_js

# --8<-- [start:router]
router = Router(realms=[Realm("realm1")])


@router.register("realm1", "com.example.add")
async def add(a: int, b: int) -> int:
    """An in-process procedure any client may call."""
    return a + b


@router.subscribe("realm1", "com.example.notice")
def log_notice(text: str) -> None:
    """A sync handler: runs in the thread pool."""
    print(f"notice: {text}", flush=True)  # to the server's output


# --8<-- [end:router]


PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>Crossway WAMP</title>
<script src="/autobahn.min.js"></script>
<p>2 + 3 = <span id="sum">?</span></p><ul id="notices"></ul>
<script>
const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
const connection = new autobahn.Connection({url, realm: "realm1"});
connection.onopen = async (session) => {
  await session.subscribe("com.example.notice", ([text]) => {
    const item = document.createElement("li");
    item.textContent = text;
    document.getElementById("notices").append(item);
  });
  // Shown once subscribed: from then on, every notice appears below.
  document.getElementById("sum").textContent = await session.call("com.example.add", [2, 3]);
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
            "http": URLRouter(
                [
                    path("", Site.as_asgi()),
                    path("notify", Site.as_asgi()),
                    path("autobahn.min.js", autobahn_js),  # the vendored autobahn.js
                ]
            ),
            "websocket": URLRouter([path("ws", router.as_asgi())]),
        }
    )


application = _routes()
# --8<-- [end:routes]
