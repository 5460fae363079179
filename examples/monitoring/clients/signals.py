"""Saving a Client publishes its settings on ``clientconfig.<ip>``: its agent and every dashboard
react at once. Sync code (a Django signal) publishes through ``consumers.wamp.publish_sync`` in
the server's process, or, with the MONITORING_PUBLISHER_URL setting, by an HTTP POST with
``httpx`` to the publisher bridge (the tutorial's way with ``requests``, which also works from
another process or machine)."""

import logging
from typing import Any

import httpx
from django.conf import settings as django_settings
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from consumers.wamp import publish_sync

from .models import Client

REALM = "realm1"
logger = logging.getLogger(__name__)


def post_to_publisher(url: str, topic: str, settings: dict[str, Any]) -> None:
    """POST one event to the publisher bridge; it answers ``{"id": <publication id>}``."""
    response = httpx.post(url, json={"topic": topic, "args": [settings]}, timeout=10)
    response.raise_for_status()


def publish_settings(settings: dict[str, Any]) -> None:
    """Publish one machine's settings; outside the server (``manage.py shell``) only log."""
    topic = f"clientconfig.{settings['ip']}"
    try:
        if django_settings.MONITORING_PUBLISHER_URL:
            post_to_publisher(django_settings.MONITORING_PUBLISHER_URL, topic, settings)
        else:
            publish_sync(REALM, topic, settings)
    except (RuntimeError, httpx.HTTPError) as exc:  # no router in this process; bridge refused
        logger.warning("settings of %s not published: %s", settings["ip"], exc)


@receiver(post_save, sender=Client)
def client_saved(sender: type[Client], instance: Client, **kwargs: Any) -> None:
    """Publish after the transaction commits, so readers never see settings that roll back."""
    settings = instance.settings()
    transaction.on_commit(lambda: publish_settings(settings))
