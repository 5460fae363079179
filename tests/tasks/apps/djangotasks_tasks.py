"""Django's own task examples (from its Tasks documentation), plus an async and a failing one."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.mail import send_mail

try:
    from django.tasks import signals, task  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 5.2: the backport
    from django_tasks import signals, task  # type: ignore[no-redef,unused-ignore]


def print_signal(sender: Any, task_result: Any, signal: Any, **kwargs: Any) -> None:
    """Print each task signal on stderr (the test reads the worker's) as a JSON line."""
    names = {signals.task_started: "started", signals.task_finished: "finished"}
    line = {
        "signal": names.get(signal, "enqueued"),
        "sender": sender.__name__,
        "id": task_result.id,
        "status": str(task_result.status),
        "worker_ids": task_result.worker_ids,
        "errors": [error.exception_class_path for error in task_result.errors],
    }
    print("task-signal", json.dumps(line), file=sys.stderr, flush=True)


for _signal in (signals.task_enqueued, signals.task_started, signals.task_finished):
    _signal.connect(print_signal)


@task
def email_users(emails: list[str], subject: str, message: str) -> int:
    """The documentation's first example."""
    return send_mail(subject=subject, message=message, from_email=None, recipient_list=emails)


@task(takes_context=True, queue_name="emails", priority=10)
def email_with_context(context: Any, label: str) -> dict[str, Any]:
    """The documentation's context example: the attempt number and the result's id."""
    return {"label": label, "attempt": context.attempt, "id": context.task_result.id}


@task
async def add(a: int, b: int) -> int:
    """An async task."""
    return a + b


@task
def explode() -> None:
    """Always fails."""
    raise ValueError("boom")
