"""Django's own task examples (from its Tasks documentation), plus an async and a failing one."""

from __future__ import annotations

from typing import Any

from django.core.mail import send_mail

try:
    from django.tasks import task  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # Django 5.2: the backport
    from django_tasks import task  # type: ignore[no-redef,unused-ignore]


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
