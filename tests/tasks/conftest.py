"""Worker processes for the consumers.tasks tests: ``python -m consumers.worker --tasks ...``
on the private Redis, each test under a layer prefix of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from channel_layers.redis import RedisChannelLayer

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"


@dataclass
class WorkerProcess:
    """One worker process and the log lines it printed so far."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read(self, marker: str) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if marker in line:
                self.ready.set()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no release: what a crash or a lost machine looks like."""
        self.process.kill()
        self.process.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM, then wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@dataclass
class TaskCluster:
    """Starts worker processes sharing one layer (URL) and gives the test that layer too."""

    url: str
    events: str
    layer: RedisChannelLayer
    workers: list[WorkerProcess] = field(default_factory=list)

    def environment(self, **env: str) -> dict[str, str]:
        """The environment of a process on this cluster's layer, with tests/tasks/apps."""
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(APPS), str(ROOT)]),
            "CHANNEL_LAYERS_URL": self.url,
            "TASK_EVENTS": self.events,
            **env,
        }

    def start(
        self,
        *args: str,
        ready: str = "Task worker on",
        tasks: str = "taskapp:videos",
        program: tuple[str, ...] = ("consumers.worker",),
        **env: str,
    ) -> WorkerProcess:
        """Start ``python -m consumers.worker --tasks taskapp:videos <args>`` (or another
        ``program``, e.g. ``("django", "runworker")``) and return it once it logged ``ready``."""
        environment = self.environment(**env)
        command = [sys.executable, "-m", *program, "--tasks", tasks, *args]
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stderr=subprocess.PIPE, text=True
        )
        worker = WorkerProcess(process)
        threading.Thread(target=worker.read, args=(ready,), daemon=True).start()
        self.workers.append(worker)
        if not worker.ready.wait(20):
            process.kill()
            raise RuntimeError("worker did not start:\n" + "".join(worker.lines))
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait(10)


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[TaskCluster]:
    """Worker processes on the test Redis under a fresh prefix; killed at teardown."""
    prefix = f"tasks-{os.urandom(4).hex()}"
    layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
    tasks = TaskCluster(f"{redis_url}/0?prefix={prefix}", "task-events", layer)
    try:
        yield tasks
    finally:
        tasks.stop_all()
        await layer.flush()
        await layer.close()
