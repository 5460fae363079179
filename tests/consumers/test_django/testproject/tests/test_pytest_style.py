"""The same kind of test written the pytest-django way (Django's runner finds no tests here).

``transaction=True``: the consumer reaches the database from worker threads, so the data it reads
must be committed. The test's own database calls run in the same worker thread as the
consumer's (thread-sensitive), whose connections it closes at the end.
"""

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections

from consumers.db import database_sync_to_async
from testproject.tests import TIMEOUT, open_socket


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_logged_in_client_is_the_sockets_user(client: Any) -> None:
    try:
        user = await database_sync_to_async(User.objects.create)(username="carol")
        await database_sync_to_async(client.force_login)(user)
        key = client.cookies["sessionid"].value
        socket = await open_socket("/ws/whoami/", key)
        reply = await socket.receive_json_from(timeout=TIMEOUT)
        assert reply == {"user": "carol", "session_key": key}
        await socket.disconnect()
    finally:
        # The communicators keep connections open while they run (for Django's TestCase): close
        # the worker thread's, or dropping the test database fails ("being accessed by other
        # users" on PostgreSQL).
        await sync_to_async(connections.close_all)()
