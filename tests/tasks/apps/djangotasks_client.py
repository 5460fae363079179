"""Enqueues the example tasks through Django's API and prints what Django reports, as JSON.

Run with DJANGO_SETTINGS_MODULE=djangotasks_settings while a worker runs
``--tasks consumers.tasks.django:worker_queues``.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import django

django.setup()

from asgiref.sync import async_to_sync  # noqa: E402
from djangotasks_tasks import add, email_users, email_with_context, explode  # noqa: E402

from consumers.tasks.django import ChannelLayerBackend  # noqa: E402


def finished(result: Any) -> Any:
    """Wait (on the queue's notify list, not by polling) and refresh the result."""
    backend = result.task.get_backend()
    assert isinstance(backend, ChannelLayerBackend)
    queue_name, _, job_id = result.id.partition(":")
    handle = backend.queue(queue_name).handle(job_id)
    async_to_sync(handle.queue.store.wait)(queue_name, job_id, 30)
    result.refresh()
    return result


def main() -> None:
    report: dict[str, Any] = {}
    mail = email_users.enqueue(
        emails=["user@example.com"], subject="You have a message", message="Hello there!"
    )
    report["enqueued_status"] = str(mail.status)
    mail = finished(mail)
    report["mail"] = [str(mail.status), mail.return_value, mail.attempts]
    in_order = mail.enqueued_at <= mail.started_at <= mail.last_attempted_at <= mail.finished_at
    report["mail_run"] = [mail.id, mail.worker_ids, in_order]
    context = finished(email_with_context.enqueue("hi"))
    report["context"] = [str(context.status), context.return_value, context.id]
    summed = asyncio.run(add.aenqueue(2, 3))
    report["add"] = str(finished(summed).return_value)
    failed = finished(explode.enqueue())
    report["explode"] = [str(failed.status), failed.errors[0].exception_class.__name__]
    report["explode_id"] = failed.id
    later = email_users.using(
        run_after=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    ).enqueue(emails=[], subject="s", message="m")
    again = email_users.get_result(later.id)
    report["deferred"] = [str(again.status), again.id == later.id]
    print(json.dumps(report))


main()
