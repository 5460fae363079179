"""An autobahn-python client of site.py (docs/tutorials/application.md):
``python -m examples.tutorial_app.client [URL]``.

It joins realm1, calls ``site.add``, publishes to ``site.greeted`` (the site's subscriber prints
it) and leaves. Exits 1 when anything fails (autobahn's Component reports why).
"""

from __future__ import annotations

import sys
from typing import Any

from autobahn.asyncio.component import Component, run
from autobahn.wamp.types import PublishOptions

URL = sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8000/ws"

# max_retries=0: fail at once when the site is not running.
component = Component(transports=[{"url": URL, "max_retries": 0}], realm="realm1")
finished: list[bool] = []  # autobahn's run() returns the same way whether it worked or not


@component.on_join
async def joined(session: Any, details: Any) -> None:
    """Call the procedure, publish to the topic (acknowledged), leave."""
    print("site.add(2, 3) =", await session.call("site.add", 2, 3))
    options = PublishOptions(acknowledge=True)
    await session.publish("site.greeted", "autobahn-python", options=options)
    finished.append(True)
    # Not awaited: once the session has left, run() stops the loop, and a task still
    # waiting here would be destroyed pending (a warning as the interpreter exits).
    session.leave()


if __name__ == "__main__":
    run([component], log_level="warn")
    sys.exit(0 if finished else 1)
