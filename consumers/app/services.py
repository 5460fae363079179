"""Supervised external processes of an Application (``app.service([...])``).

Each starts after "app.ready", has its output logged line by line with a ``[name]`` prefix, is
restarted with exponential backoff when it exits (``restart="on-failure"``: only on a non-zero
exit; ``"always"``; ``"no"``), and at shutdown gets SIGTERM, then SIGKILL after ``stop_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence

logger = logging.getLogger("consumers.app.services")

RESTART_POLICIES = ("on-failure", "always", "no")
_INTERPRETERS = ("python", "node", "ruby", "perl", "bash", "sh", "deno", "bun", "php")


class Service:
    """One supervised external program."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str | None = None,
        restart: str = "on-failure",
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        stop_timeout: float = 10.0,
        max_backoff: float = 30.0,
    ) -> None:
        if restart not in RESTART_POLICIES:
            raise ValueError(f"restart={restart!r}: use one of {', '.join(RESTART_POLICIES)}")
        self.command = list(command)
        program = self.command[0]
        if os.path.basename(program).startswith(_INTERPRETERS) and len(self.command) > 1:
            program = self.command[1]  # a script: name it, not the interpreter
        self.name = name or os.path.basename(program)
        self.restart = restart
        self.cwd = cwd
        self.env = env
        self.stop_timeout = stop_timeout
        self.max_backoff = max_backoff
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start supervising (in the running loop)."""
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        delay = min(0.5, self.max_backoff)
        while not self._stopping:
            code = await self._run_once()
            if self._stopping:
                return
            if self.restart == "no" or (self.restart == "on-failure" and code == 0):
                logger.info("[%s] exited with code %s; not restarted", self.name, code)
                return
            logger.warning("[%s] exited with code %s; restarting in %.1f s", self.name, code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _run_once(self) -> int | None:
        environment = {**os.environ, **(self.env or {})}
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self.cwd,
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:
            logger.error("[%s] could not start %s: %s", self.name, self.command[0], exc)
            return None
        self.starts += 1
        logger.info("[%s] started (pid %s)", self.name, self.process.pid)
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            logger.info("[%s] %s", self.name, line.decode(errors="replace").rstrip())
        return await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM the program, SIGKILL it after ``stop_timeout``; stop supervising."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.stop_timeout)
            except TimeoutError:
                logger.warning(
                    "[%s] did not stop in %.0f s; killing it", self.name, self.stop_timeout
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
