"""The same kind of test written the pytest-django way (Django's runner finds no tests here).

``transaction=True``: the consumer reaches the database from worker threads, so the data it reads
must be committed. Database calls from the test go through database_sync_to_async too, so that
no worker thread keeps a connection open when the test database is dropped.
"""

from typing import Any

import pytest
from django.contrib.auth.models import User

from consumers.db import database_sync_to_async
from testproject.tests import TIMEOUT, open_socket


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_logged_in_client_is_the_sockets_user(client: Any) -> None:
    user = await database_sync_to_async(User.objects.create)(username="carol")
    await database_sync_to_async(client.force_login)(user)
    key = client.cookies["sessionid"].value
    socket = await open_socket("/ws/whoami/", key)
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"user": "carol", "session_key": key}
    await socket.disconnect()
