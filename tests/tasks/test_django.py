"""Django's Tasks framework on consumers.tasks.django.ChannelLayerBackend: Django's own API
(enqueue, aenqueue, get_result, refresh, run_after, priority, queues, takes_context) in one
process, a real worker process running the tasks, on the private Redis. Django 6 runs its
built-in django.tasks; Django 5.2 the django-tasks backport."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.tasks.conftest import APPS, TaskCluster


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
