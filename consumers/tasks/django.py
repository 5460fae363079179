"""A backend for Django's Tasks framework that runs tasks on the channel layer's work queues.

::

    TASKS = {
        "default": {
            "BACKEND": "consumers.tasks.django.ChannelLayerBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"LAYER": "default", "LEASE": 30, "RESULT_TTL": 86400},
        }
    }

Django 6 ships the framework as ``django.tasks``; Django 5.2 needs its backport, the
``django-tasks`` package. Workers: ``python -m consumers.worker --tasks
consumers.tasks.django:worker_queues`` (with ``DJANGO_SETTINGS_MODULE`` set) runs every queue
of every backend of this class. Statuses map as: scheduled or pending -> READY, running ->
RUNNING, done -> SUCCESSFUL, failed or cancelled -> FAILED. The store keeps the last error's
``module.Class: message`` line, which becomes the result's one ``TaskError``. Results carry
``started_at``, ``last_attempted_at`` and ``worker_ids`` as the store recorded them; workers
send ``task_started`` before a run and ``task_finished`` after its last attempt (sender: the
backend's class), as Django's own backends do.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import time
import traceback
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async

from channel_layers.base import InvalidMessage
from channel_layers.queues import JobInfo, NewJob, require_portable

from .context import TaskContext
from .queue import Queue, Task

__all__ = ["ChannelLayerBackend", "DjangoQueue", "worker_queues"]


def _tasks_module(name: str) -> Any:
    """``django.tasks.<name>`` on Django 6, else the backport's ``django_tasks.<name>``."""
    try:
        return importlib.import_module(f"django.tasks.{name}")
    except ImportError:
        return importlib.import_module(f"django_tasks.{name}")


_base = _tasks_module("base")
_BaseTaskBackend: Any = _tasks_module("backends.base").BaseTaskBackend
_STATUS = {
    "scheduled": "READY",
    "pending": "READY",
    "running": "RUNNING",
    "done": "SUCCESSFUL",
    "failed": "FAILED",
    "cancelled": "FAILED",
}


def _moment(timestamp: float | None) -> datetime.datetime | None:
    return None if timestamp is None else datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


class DjangoQueue(Queue):
    """A queue whose jobs name Django task functions by module path (imported on demand)."""

    def __init__(self, name: str, backend_alias: str, **options: Any) -> None:
        super().__init__(name, **options)
        self.backend_alias = backend_alias

    def find_task(self, name: str) -> Task | None:
        """Import the Django task ``name`` and wrap it for the worker."""
        task = self.tasks.get(name)
        if task is not None:
            return task
        module_name, _, attribute = name.rpartition(".")
        try:
            django_task = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError, ValueError):
            return None
        if not isinstance(django_task, _base.Task):
            return None
        task = self.tasks[name] = Task(self, name, _runner(self, django_task))
        return task


def _runner(queue: DjangoQueue, django_task: Any) -> Any:
    """The consumers.tasks function that runs ``django_task`` (with Django's context)."""

    async def run(ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:
        info = await queue.store.job(queue.name, ctx.job_id)
        result = _result(django_task, queue, info) if info else None
        signals = _tasks_module("signals")
        sender = type(_backend(queue.backend_alias))
        if result is not None:
            await signals.task_started.asend(sender, task_result=result)
        if django_task.takes_context:
            args = (_base.TaskContext(task_result=result), *args)
        try:
            if inspect.iscoroutinefunction(django_task.func):
                value = _normalize(await django_task.func(*args, **kwargs))
            else:
                call = sync_to_async(django_task.func, thread_sensitive=False)
                value = _normalize(await call(*args, **kwargs))
        except BaseException as exc:
            if result is not None and ctx.is_last_attempt:
                _finish(result, _base.TaskResultStatus.FAILED, exc=exc)
                await signals.task_finished.asend(sender, task_result=result)
            raise
        if result is not None:
            _finish(result, _base.TaskResultStatus.SUCCESSFUL, value=value)
            await signals.task_finished.asend(sender, task_result=result)
        return value

    return run


def _finish(result: Any, status: Any, value: Any = None, exc: BaseException | None = None) -> None:
    """Give ``result`` its outcome before the store has it, as Django's own backends do
    for ``task_finished`` receivers (the stored result matches once the job is acknowledged)."""
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", datetime.datetime.now(datetime.UTC))
    if exc is None:
        object.__setattr__(result, "_return_value", value)
    else:
        kind = type(exc)
        text = "".join(traceback.format_exception(exc))
        path = f"{kind.__module__}.{kind.__qualname__}"
        result.errors.append(_base.TaskError(exception_class_path=path, traceback=text))


def _normalize(value: Any) -> Any:
    """The return value as Django stores it (JSON types: tuples become lists...)."""
    try:
        normalize = importlib.import_module("django.utils.json").normalize_json  # Django 6
    except (ImportError, AttributeError):
        normalize = _tasks_module("utils").normalize_json
    return normalize(value)


def _result(django_task: Any, queue: Queue, info: JobInfo) -> Any:
    """A Django TaskResult for the job ``info`` describes."""
    status = _base.TaskResultStatus[_STATUS[info.state]]
    errors = []
    if info.error and status == _base.TaskResultStatus.FAILED:
        kind = info.error.split(":", 1)[0].strip()
        path = kind if "." in kind else f"builtins.{kind}"
        errors.append(_base.TaskError(exception_class_path=path, traceback=info.error))
    result = _base.TaskResult(
        task=django_task,
        id=f"{queue.name}:{info.job_id}",
        status=status,
        enqueued_at=_moment(info.enqueued_at),
        started_at=_moment(info.started_at),
        finished_at=_moment(info.finished_at),
        last_attempted_at=_moment(info.last_attempted_at),
        args=info.payload.get("args", []),
        kwargs=info.payload.get("kwargs", {}),
        backend=getattr(queue, "backend_alias", "default"),
        errors=errors,
        worker_ids=list(info.worker_ids),
    )
    if info.state == "done":
        object.__setattr__(result, "_return_value", info.result)
    return result


class ChannelLayerBackend(_BaseTaskBackend):  # type: ignore[misc]  # Django is untyped
    """Django Tasks on the channel layer: priorities, ``run_after``, results from any process."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = {key.upper(): value for key, value in self.options.items()}
        self.layer_alias = options.get("LAYER", "default")
        self.queue_options = {
            "layer": self.layer_alias,
            "lease": float(options.get("LEASE", 30)),
            "result_ttl": float(options.get("RESULT_TTL", 86400)),
        }
        self._queues: dict[str, DjangoQueue] = {}

    def queue(self, name: str) -> DjangoQueue:
        """The consumers.tasks queue behind Django queue ``name``."""
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = DjangoQueue(name, self.alias, **self.queue_options)
        return queue

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Django's enqueue(): store the job, return its READY result."""
        return async_to_sync(self.aenqueue)(task, args, kwargs)

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Django's aenqueue(), without a thread hop."""
        self.validate_task(task)
        queue = self.queue(task.queue_name)
        run_at = task.run_after.timestamp() if task.run_after is not None else None
        payload = {"args": list(args), "kwargs": dict(kwargs)}
        try:
            require_portable(payload, "the task's arguments")
        except InvalidMessage as exc:
            raise InvalidMessage(f"cannot enqueue {task.module_path!r}: {exc}") from None
        job = NewJob(task.module_path, payload, priority=task.priority, run_at=run_at)
        enqueued = await queue.store.enqueue(queue.name, job)
        now = time.time()
        # Built here, not read back: a worker may have started the job already.
        info = JobInfo(
            job_id=enqueued.job_id,
            queue=queue.name,
            name=job.name,
            state="scheduled" if run_at is not None and run_at > now else "pending",
            attempts=0,
            priority=job.priority,
            enqueued_at=now,
            run_at=run_at or now,
            payload=payload,
        )
        result = _result(task, queue, info)
        signals = _tasks_module("signals")
        await signals.task_enqueued.asend(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        """Django's get_result(): ResultDoesNotExist when unknown or expired."""
        return async_to_sync(self.aget_result)(result_id)

    async def aget_result(self, result_id: str) -> Any:
        """Django's aget_result()."""
        missing = _tasks_module("exceptions").TaskResultDoesNotExist
        queue_name, _, job_id = str(result_id).partition(":")
        if not job_id or (self.queues and queue_name not in self.queues):
            raise missing(result_id)
        queue = self.queue(queue_name)
        info = await queue.store.job(queue_name, job_id)
        if info is None:
            raise missing(result_id)
        django_task = queue.find_task(info.name)
        if django_task is None:
            raise missing(f"{result_id}: its task {info.name!r} cannot be imported")
        module_name, _, attribute = info.name.rpartition(".")
        original = getattr(importlib.import_module(module_name), attribute)
        return _result(original, queue, info)


def worker_queues() -> list[Queue]:
    """Every queue of every ChannelLayerBackend in Django's TASKS (for ``--tasks``)."""
    django = importlib.import_module("django")
    apps = importlib.import_module("django.apps").apps
    if not apps.ready:
        django.setup()
    queues: list[Queue] = []
    for backend in _backends():
        if isinstance(backend, ChannelLayerBackend):
            queues.extend(backend.queue(name) for name in sorted(backend.queues))
    if not queues:
        raise SystemExit(
            "no TASKS backend is consumers.tasks.django.ChannelLayerBackend (or none has QUEUES)"
        )
    return queues


def _handler() -> Any:
    try:
        return importlib.import_module("django.tasks").task_backends
    except ImportError:
        return importlib.import_module("django_tasks").task_backends


def _backend(alias: str) -> Any:
    """The TASKS backend ``alias`` (its class is the sender of Django's task signals)."""
    return _handler()[alias]


def _backends() -> list[Any]:
    return list(_handler().all())
