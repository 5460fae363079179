"""The node's backend, unchanged from Crossbar.io: an autobahn-python component that registers
``com.example.add`` and stays: ``python -m examples.crossbar_node.backend [URL]``."""

from __future__ import annotations

import sys
from typing import Any

from autobahn.asyncio.component import Component, run

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws"

component = Component(transports=[{"url": URL, "max_retries": 0}], realm="realm1")


@component.register("com.example.add")
def add(a: int, b: int) -> int:
    """The procedure the clients call."""
    return a + b


@component.on_join
async def joined(session: Any, details: Any) -> None:
    """Say when the procedure is there (the tutorial waits for this line)."""
    print("backend ready: com.example.add registered", flush=True)


if __name__ == "__main__":
    run([component], log_level="warn")
