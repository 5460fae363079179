"""The ASGI lifespan protocol: startup before serving, shutdown after the last request.

In ``auto`` mode an app that raises before answering the first lifespan event is taken not to
support lifespan (many simple apps raise on unknown scope types), and the server goes on. In
``on`` mode that is a startup failure. ``lifespan.startup.failed`` always is one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgi_server.config import LifespanMode

_SPEC = {"version": "3.0", "spec_version": "2.0"}


class Lifespan:
    """Runs one app instance with a ``lifespan`` scope for the whole life of the server."""

    def __init__(
        self, app: Any, mode: LifespanMode, logger: logging.Logger, state: dict[str, Any]
    ) -> None:
        self.app = app
        self.mode = mode
        self.logger = logger
        self.state = state
        self.error: str | None = None  # why startup failed, for the exit message
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._answered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsupported = False
        self._started = False
        self._failed = False
        self._shutdown_done = False

    async def startup(self) -> bool:
        """Send lifespan.startup and wait for the answer; False means: do not serve."""
        if self.mode == "off":
            return True
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._answered.wait()
        if self._failed:
            self.logger.error("Application startup failed: %s. Exiting.", self.error)
            return False
        if self._unsupported:
            return self.mode != "on"
        self.logger.info("Application startup complete.")
        return True

    async def shutdown(self) -> None:
        """Send lifespan.shutdown and wait for the answer (if the app took part in lifespan)."""
        if self._task is None or self._unsupported or self._failed or self._task.done():
            return
        self._answered.clear()
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._answered.wait()
        if self._failed:
            self.logger.error("Application shutdown failed: %s", self.error)
        else:
            self.logger.info("Application shutdown complete.")

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _SPEC, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            if not self._started and self.mode == "auto":
                self._unsupported = True
                self.logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                self._failed = True
                self.error = self.error or f"{type(exc).__name__}: {exc}"
                self.logger.exception("Exception in the lifespan handler")
                if not self._started and self.mode == "on":
                    self.logger.error("The app does not support lifespan; use --lifespan off.")
        finally:
            self._answered.set()

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        self._started = True
        if kind in ("lifespan.startup.failed", "lifespan.shutdown.failed"):
            self._failed = True
            self.error = message.get("message", "") or kind
        elif kind not in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
            raise RuntimeError(f"Unexpected lifespan message {kind!r}.")
        self._answered.set()
