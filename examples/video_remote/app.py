"""The remote-controlled video player: ``asgi-server examples.video_remote.app:application``.

Open ``/`` (the player: a ``<video>`` and a QR code of its remote's address), scan the code with
a phone or click it, and play, pause and turn the volume from the remote page. The pages talk
WAMP over autobahn.js through the router at ``/ws`` (realm ``realm1``):

- the player registers ``com.crossway.video.<id>.play``, ``.pause``, ``.volume`` and ``.status``
  and publishes ``com.crossway.video.<id>.state`` whenever its video plays, pauses or changes
  volume, so every remote of that player shows the real state;
- each player has its own random id (in its address, ``/?id=<id>``), so a remote moves only its
  own player.

Composed with ``ProtocolTypeRouter``/``URLRouter`` (the ``Application`` object had not landed
when this was written). ``config.json`` runs the same pages with ``asgi-server
--crossbar-config examples/video_remote/config.json``.

``static/video.webm`` (8 s, VP8 and Opus, 300 KB) was made once with ffmpeg's test sources:
``ffmpeg -f lavfi -i testsrc2=size=320x180:rate=25:duration=8 -f lavfi -i
sine=frequency=440:beep_factor=4:duration=8 -c:v libvpx -b:v 250k -c:a libopus -b:a 32k
-shortest video.webm``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from consumers import AsyncHttpConsumer
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.wamp import Realm, Router

from .qr import answer

STATIC_DIR = Path(__file__).parent / "static"
AUTOBAHN = Path(__file__).parents[2] / "consumers/wamp/static/vendor/autobahn-browser"

router = Router(realms=[Realm("realm1")])


def _files() -> dict[str, Path]:
    """Every file the pages may fetch, by name: the static folder and the vendored autobahn.js."""
    files = {entry.name: entry for entry in STATIC_DIR.iterdir() if entry.is_file()}
    files["vendor/autobahn.min.js"] = AUTOBAHN / "autobahn.min.js"
    return files


FILES = _files()


class Pages(AsyncHttpConsumer):
    """``/`` (the player), ``/<file>`` from ``static/``, ``/vendor/autobahn.min.js`` and
    ``/qr/?id=<player id>``."""

    async def handle(self, body: bytes) -> None:
        """Answer GET/HEAD for one file or the QR code."""
        if self.scope["method"] not in ("GET", "HEAD"):
            await self.send_response(405, b"Method Not Allowed", headers={"allow": "GET, HEAD"})
            return
        kwargs = self.scope["url_route"]["kwargs"]
        if "vendored" in kwargs:
            name = f"vendor/{kwargs['vendored']}"
        else:
            name = kwargs.get("name") or "index.html"
        if "qr" in kwargs:
            host = dict(self.scope["headers"]).get(b"host", b"").decode("latin-1")
            query = self.scope["query_string"].decode("latin-1")
            status, content_type, data = answer(self.scope["scheme"], host, query)
        elif name in FILES:
            status, data = 200, FILES[name].read_bytes()
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if content_type.startswith("text/") or content_type.endswith("javascript"):
                content_type += "; charset=utf-8"
        else:
            status, content_type, data = 404, "text/plain", b"Not Found"
        headers = {"content-type": content_type, "cache-control": "no-cache"}
        await self.send_response(
            status, b"" if self.scope["method"] == "HEAD" else data, headers=headers
        )


def _routes() -> Any:
    pages = Pages.as_asgi()
    return ProtocolTypeRouter(
        {
            "http": URLRouter(
                [
                    path("", pages),
                    path("qr/", pages, kwargs={"qr": True}),
                    path("vendor/<str:vendored>", pages),
                    path("<str:name>", pages),
                ]
            ),
            "websocket": URLRouter([path("ws", router.as_asgi())]),
        }
    )


application = _routes()
