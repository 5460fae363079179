"""The WebSocket endpoint: an ASGI application that carries WAMP sessions.

It negotiates the subprotocol from the client's list, refuses a handshake that offers none with a
400 (``websocket.http.response``; a plain close, i.e. 403, where the server lacks that extension),
decodes frames into messages for the sans-IO ``Session`` and writes what the session queues. Every
session ends through ``Session.lost()`` whatever the cause (GOODBYE, ABORT, TCP reset, a killed
client), so a vanished client leaves no routing state behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .auth.transport import transport_for
from .codec import SUBPROTOCOLS, Codec, Message, ProtocolError, choose_subprotocol
from .session import Session

if TYPE_CHECKING:
    from .router import Router

logger = logging.getLogger("consumers.wamp")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_REFUSAL = (
    "This is a WAMP endpoint: offer one of the WebSocket subprotocols "
    + ", ".join(SUBPROTOCOLS)
    + " (Sec-WebSocket-Protocol).\n"
).encode()


class WebSocketPeer:
    """A session's outgoing side on one WebSocket: a FIFO of encoded frames for the writer."""

    __slots__ = ("closing", "codec", "frames", "max_queue", "overflowed", "wakeup")

    def __init__(self, codec: Codec, max_queue: int) -> None:
        self.codec = codec
        self.max_queue = max_queue
        self.frames: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.closing = False
        self.overflowed = False

    def send(self, message: Message) -> None:
        """Encode (once per serializer, cached on the message) and queue for the writer."""
        if self.closing or self.overflowed:
            return
        if len(self.frames) >= self.max_queue:
            self.overflowed = True  # a client that does not read: cut it off, do not buffer
        else:
            self.frames.append(self.codec.encode(message))
        self.wakeup.set()

    def close(self) -> None:
        """Close the WebSocket after the queued frames."""
        self.closing = True
        self.wakeup.set()


async def _write(peer: WebSocketPeer, session: Session, send: Send) -> None:
    """Drain the peer's frames to the client, in order; close when the session ends."""
    key = "bytes" if peer.codec.binary else "text"
    binary = peer.codec.binary
    try:
        while True:
            await peer.wakeup.wait()
            peer.wakeup.clear()
            while peer.frames and not peer.overflowed:
                frame = peer.frames.popleft()
                await send({"type": "websocket.send", key: frame if binary else frame.decode()})
            if peer.overflowed:
                logger.warning("WAMP session %s closed: it read too slowly", session.id)
                session.lost()
                await send({"type": "websocket.close", "code": 1008, "reason": "too slow"})
                return
            if peer.closing:
                await send({"type": "websocket.close", "code": 1000})
                return
    except OSError:  # the client went away under a send: the reader sees the disconnect
        peer.closing = True


async def _refuse(scope: dict[str, Any], send: Send) -> None:
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "websocket.http.response.start", "status": 400, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": _REFUSAL})
    else:
        await send({"type": "websocket.close", "code": 1002})


class WampEndpoint:
    """The ASGI application ``Router.as_asgi()`` returns: one WAMP session per WebSocket."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            raise ValueError(f"the WAMP endpoint serves WebSocket only, not {scope['type']!r}")
        if (await receive())["type"] != "websocket.connect":
            return
        codec = choose_subprotocol(list(scope.get("subprotocols") or ()))
        if codec is None:
            await _refuse(scope, send)
            return
        self.router.bind()
        await self.router.joined()  # a no-op once the cluster is joined
        transport, headers = transport_for(scope, self.router.configs.values())
        accept = {"type": "websocket.accept", "subprotocol": codec.subprotocol}
        await send({**accept, "headers": headers} if headers else accept)
        peer = WebSocketPeer(codec, self.router.limits.max_outgoing_queue)
        session = Session(self.router, peer, transport=transport)
        writer = asyncio.get_running_loop().create_task(_write(peer, session, send))
        try:
            await self._read(session, codec, receive, send)
        except Exception:
            logger.exception("WAMP session %s failed; closing it", session.id)
            if not writer.done():
                await send({"type": "websocket.close", "code": 1011})
        finally:
            session.lost()
            writer.cancel()

    async def _read(self, session: Session, codec: Codec, receive: Receive, send: Send) -> None:
        max_size = self.router.limits.max_message_size
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return  # websocket.disconnect
            data = event.get("bytes")
            if data is None:
                data = event["text"].encode()
            if len(data) > max_size:
                logger.warning("WAMP session %s: a %d-byte message", session.id, len(data))
                session.lost()
                await send({"type": "websocket.close", "code": 1009, "reason": "too big"})
                continue
            try:
                decoded = codec.decode(data)
            except ProtocolError as exc:
                session.receive_malformed(str(exc))
                continue
            for message, raw in decoded:
                session.receive(message, raw)
