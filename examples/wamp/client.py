"""An autobahn-python client of examples/wamp/app.py: ``python -m examples.wamp.client [URL]``.

It joins realm1, calls ``com.example.add``, subscribes to ``com.example.notice``, publishes
to it (asking for its own event back) and leaves once that event has arrived. Exits 1 when
anything fails (autobahn's Component reports why).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from autobahn.asyncio.component import Component, run
from autobahn.wamp.types import PublishOptions

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8000/ws"

# max_retries=0: a tutorial should fail at once when the server is not there.
component = Component(transports=[{"url": URL, "max_retries": 0}], realm="realm1")
finished: list[bool] = []  # autobahn's run() returns the same way whether it worked or not


@component.on_join
async def joined(session: Any, details: Any) -> None:
    """Call, subscribe, publish, wait for the event, leave."""
    print("com.example.add(2, 3) =", await session.call("com.example.add", 2, 3))
    notices: asyncio.Queue[str] = asyncio.Queue()
    await session.subscribe(notices.put_nowait, "com.example.notice")
    options = PublishOptions(acknowledge=True, exclude_me=False)
    await session.publish("com.example.notice", "hello from autobahn-python", options=options)
    print("event:", await asyncio.wait_for(notices.get(), timeout=5))
    finished.append(True)
    # Not awaited: once the session has left, run() stops the loop, and a task still
    # waiting here would be destroyed pending (a warning as the interpreter exits).
    session.leave()


if __name__ == "__main__":
    run([component], log_level="warn")
    sys.exit(0 if finished else 1)
