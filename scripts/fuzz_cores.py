"""Coverage-guided fuzzing of the sans-IO cores with atheris (not a dependency; not run in CI).

    pip install atheris
    python scripts/fuzz_cores.py http -max_total_time=120 -max_len=300
    python scripts/fuzz_cores.py websocket -max_total_time=120 -max_len=400

``http`` feeds request bytes, split in two at a point the input chooses, to the HTTP/1.1 core
once per parser: nothing may raise, whole and split feeding must agree, and requests that both
parsers complete must be the same requests (no smuggling). ``websocket`` reads the input as
client frames (first byte, length byte, payload; masked here) for the WebSocket core, with and
without permessage-deflate: nothing may raise, no message may exceed the cap, nothing follows
the close. The first run of each (2026-11-21, ~400k and ~160k inputs) found one crash, fixed in
050a01b: h11 took an empty read for the end of the stream.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-not-found]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from asgi_server.protocols import websocket as ws
    from tests.protocols.test_http11_hostile import PARSERS, assert_same_framing, run

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\n"
WS_MAX_SIZE = 1024


def fuzz_http(data: bytes) -> None:
    """One input: the first byte picks the split point and whether to prefix a valid head."""
    if not data:
        return
    body = (HEAD if data[0] & 1 else b"") + data[1:]
    cut = data[0] % (len(body) + 1)
    results: dict[str, list[Any]] = {}
    for parser in PARSERS:
        results[parser] = run(parser, [body[:cut], body[cut:]])
        assert run(parser, [body]) == results[parser], (parser, body, cut)
    assert_same_framing(results)


def client_frames(data: bytes) -> bytes:
    """Read ``data`` as [first byte][length byte][payload]... and mask each frame."""
    out, index, key = bytearray(), 0, b"\x01\x02\x03\x04"
    while index + 2 <= len(data):
        first, length = data[index], data[index + 1] & 0x7F
        payload = data[index + 2 : index + 2 + length]
        index += 2 + length
        size = len(payload)
        out += bytes((first, 0x80 | size)) if size < 126 else struct.pack("!BBH", first, 254, size)
        out += key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes(out)


def fuzz_websocket(data: bytes) -> None:
    """One input: the first byte picks deflate and the split point; the rest are frames."""
    if not data:
        return
    deflate = ws.negotiate_deflate(["permessage-deflate"], WS_MAX_SIZE) if data[0] & 1 else None
    core = ws.WebSocketCore(WS_MAX_SIZE, deflate)
    stream = client_frames(data[1:])
    cut = (data[0] >> 1) % (len(stream) + 1)
    ended = False
    for part in (stream[:cut], stream[cut:]):
        for event in core.receive_data(part):
            if isinstance(event, ws.PongReceived):
                continue
            assert not ended, "an event after the close"
            if isinstance(event, ws.Message):
                raw = event.data.encode() if isinstance(event.data, str) else event.data
                assert len(raw) <= WS_MAX_SIZE, len(raw)
            else:
                assert isinstance(event, ws.CloseReceived | ws.ProtocolFailed), event
                ended = True
        core.take_output()


if __name__ == "__main__":
    targets = {"http": fuzz_http, "websocket": fuzz_websocket}
    if len(sys.argv) < 2 or sys.argv[1] not in targets:
        sys.exit("usage: fuzz_cores.py http|websocket [libFuzzer options]")
    target = targets[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
