"""Connection drivers: what both transport shells run for one connection.

``http.py`` (HTTP/1.1: core, request cycles, timers, flow control), ``websocket.py`` (after an
upgrade: handshake, frames, pings, close) and ``http2.py`` (HTTP/2: streams, flow control, GOAWAY;
``http2_stream.py`` is the ASGI side of one stream); ``base.py`` is their seam to the server
(``ServerContext``) and to the shell's connection (``Connection``).
"""
