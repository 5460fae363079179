"""Connection drivers: what both transport shells run for one connection.

``http.py`` (HTTP/1.1: core, request cycles, timers, flow control) and ``websocket.py`` (after an
upgrade: handshake, frames, pings, close); ``base.py`` is their seam to the server
(``ServerContext``) and to the shell's connection (``Connection``).
"""
