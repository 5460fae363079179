"""The remote-controlled video player: ``python -m examples.video_remote`` (or
``asgi-server examples.video_remote.app:app``), written with the Application API.

Open ``/`` (the player: a ``<video>`` and a QR code of its remote's address), scan the code with
a phone or click it, and play, pause and turn the volume from the remote page. The pages talk
WAMP over autobahn.js through the app's router at ``/ws`` (realm ``realm1``):

- the player registers ``com.crossway.video.<id>.play``, ``.pause``, ``.volume`` and ``.status``
  and publishes ``com.crossway.video.<id>.state`` whenever its video plays, pauses or changes
  volume, so every remote of that player shows the real state;
- each player has its own random id (in its address, ``/?id=<id>``), so a remote moves only its
  own player.

The server side is three lines of routes: the QR code, the vendored autobahn.js and the static
folder. ``config.json`` runs the same pages the Crossbar.io way: ``asgi-server
--crossbar-config examples/video_remote/config.json``.

``static/video.webm`` (8 s, VP8 and Opus, 300 KB) was made once with ffmpeg's test sources:
``ffmpeg -f lavfi -i testsrc2=size=320x180:rate=25:duration=8 -f lavfi -i
sine=frequency=440:beep_factor=4:duration=8 -c:v libvpx -b:v 250k -c:a libopus -b:a 32k
-shortest video.webm``.
"""

from __future__ import annotations

from pathlib import Path

from consumers.app import Application, Request, Response
from consumers.wamp import Realm, Router
from consumers.wamp.roles import Permission, Role

from .qr import answer

AUTOBAHN = Path(__file__).parents[2] / "consumers/wamp/static/vendor/autobahn-browser"

# Anonymous browsers may use the player's URIs and nothing else (config.json's role, in Python).
PLAYERS = Permission(
    "com.crossway.video.", match="prefix", call=True, register=True, publish=True, subscribe=True
)
ROUTER = Router([Realm("realm1", roles=[Role("anonymous", permissions=[PLAYERS])])])

app = Application("video", router=ROUTER)  # WAMP realm "realm1" at /ws


@app.http.get("/qr")
@app.http.get("/qr/")
def qr_code(request: Request) -> Response:
    """``/qr/?id=<player id>``: the SVG QR code of that player's remote page (400 without an id)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    status, content_type, body = answer(
        request.scope.get("scheme", "http"), request.headers.get("host", ""), query
    )
    return Response(body, status, {"cache-control": "no-cache"}, content_type=content_type)


# Mounts are tried in order: autobahn.js first, then every page, script and the video.
app.http.serve("/vendor", str(AUTOBAHN))
app.http.serve("/", "static/")

if __name__ == "__main__":
    app.run()
