"""The player's QR code: the URL of its remote page, drawn server-side as SVG with ``qrcode``.

Served at ``/qr/?id=<player id>`` by the ASGI app (``app.py``) and, for the Crossbar.io-style
``config.json``, by the WSGI callable ``wsgi_app`` below (a ``wsgi`` path of that config).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

PLAYER_ID = re.compile(r"[a-z0-9]{1,32}")  # one URI component of the player's procedures


def remote_url(scheme: str, host: str, player_id: str) -> str:
    """The address of the remote page for ``player_id``, on the host the player was loaded from."""
    return f"{scheme}://{host}/remote.html?id={player_id}"


def qr_svg(text: str) -> bytes:
    """``text`` as a QR code: a standalone SVG document with a white background and quiet zone."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(
        text, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=4
    )
    svg: bytes = image.to_string()
    return svg


def answer(scheme: str, host: str, query: str) -> tuple[int, str, bytes]:
    """Status, content type and body for ``/qr/?<query>``: 400 unless ``id`` is a player id."""
    player_id = (parse_qs(query).get("id") or [""])[0]
    if not PLAYER_ID.fullmatch(player_id) or not host:
        return 400, "text/plain; charset=utf-8", b"expected ?id=<1-32 lowercase letters or digits>"
    return 200, "image/svg+xml", qr_svg(remote_url(scheme, host, player_id))


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The same answer as a WSGI application (for the ``wsgi`` path of ``config.json``)."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    status, content_type, body = answer(
        environ.get("wsgi.url_scheme", "http"), host, environ.get("QUERY_STRING", "")
    )
    reason = "OK" if status == 200 else "Bad Request"
    start_response(
        f"{status} {reason}", [("Content-Type", content_type), ("Cache-Control", "no-cache")]
    )
    return [body]
