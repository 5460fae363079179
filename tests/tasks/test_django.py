"""Django's Tasks framework on consumers.tasks.django.ChannelLayerBackend: Django's own API
(enqueue, aenqueue, get_result, refresh, run_after, priority, queues, takes_context) in one
process, a real worker process running the tasks, on the private Redis. Django 6 runs its
built-in django.tasks; Django 5.2 the django-tasks backport."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.tasks.conftest import APPS, TaskCluster, WorkerProcess


@pytest.mark.parametrize(
    "program", [("consumers.worker",), ("django", "runworker")], ids=["worker", "runworker"]
)
async def test_django_task_examples_run_on_a_worker_process(
    cluster: TaskCluster, program: tuple[str, ...]
) -> None:
    settings = {"DJANGO_SETTINGS_MODULE": "djangotasks_settings"}
    tasks = "consumers.tasks.django:worker_queues"
    worker = cluster.start(tasks=tasks, program=program, **settings)
    client = subprocess.run(
        [sys.executable, str(APPS / "djangotasks_client.py")],
        env=cluster.environment(**settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert client.returncode == 0, client.stderr + "".join(worker.lines)
    report = json.loads(client.stdout)
    assert report["enqueued_status"] == "READY"
    assert report["mail"] == ["SUCCESSFUL", 1, 1]  # send_mail sent one message
    status, value, result_id = report["context"]
    assert status == "SUCCESSFUL" and result_id.startswith("emails:")
    assert value == {"label": "hi", "attempt": 1, "id": result_id}
    assert report["add"] == "5"
    assert report["explode"] == ["FAILED", "ValueError"]
    assert report["deferred"] == ["READY", True]
    assert any("Task worker on default" in line for line in worker.lines)
    # started_at, last_attempted_at and worker_ids: the worker process that took the job.
    mail_id, worker_ids, in_order = report["mail_run"]
    assert in_order and len(worker_ids) == 1 and worker_ids[0].split(":")[1] == str(worker.pid)
    # Django's task signals, sent in the worker as Django's own backends send them.
    signals = signals_of(worker, count=8)  # 4 jobs ran, each started and finished
    assert signals[mail_id] == [
        ("started", "ChannelLayerBackend", "RUNNING", worker_ids, []),
        ("finished", "ChannelLayerBackend", "SUCCESSFUL", worker_ids, []),
    ]
    assert [entry[:3] for entry in signals[report["explode_id"]]] == [
        ("started", "ChannelLayerBackend", "RUNNING"),
        ("finished", "ChannelLayerBackend", "FAILED"),
    ]
    assert signals[report["explode_id"]][1][4] == ["builtins.ValueError"]
    assert all(entry[0] != "enqueued" for runs in signals.values() for entry in runs)


def signals_of(worker: WorkerProcess, count: int) -> dict[str, list[tuple[Any, ...]]]:
    """The task signals the worker printed, by result id (waiting up to 5 s for ``count``:
    they are printed before each job is acknowledged, but read from the pipe by a thread)."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line.split(" ", 1)[1] for line in worker.lines if line.startswith("task-signal")]
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for line in lines:
        entry = json.loads(line)
        keys = ("signal", "sender", "status", "worker_ids", "errors")
        found.setdefault(entry["id"], []).append(tuple(entry[key] for key in keys))
    return found
