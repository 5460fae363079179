"""database_sync_to_async and SyncConsumer handlers close stale connections, as Django's request
cycle does (before and after), so a long-lived consumer never keeps a dead one."""

from typing import Any

from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth.models import User
from django.db import connection
from django.test import TransactionTestCase

from consumers.db import database_sync_to_async
from testproject.asgi import application
from testproject.tests import TIMEOUT


def open_and_make_obsolete() -> None:
    User.objects.exists()  # opens the connection
    connection.close_at = 0  # as if CONN_MAX_AGE had passed


def is_open() -> bool:
    return connection.connection is not None


class DatabaseSyncToAsyncTests(TransactionTestCase):
    async def test_an_obsolete_connection_is_closed_after_the_call(self) -> None:
        await sync_to_async(open_and_make_obsolete)()
        self.assertTrue(await sync_to_async(is_open)())  # plain sync_to_async leaves it open
        await database_sync_to_async(open_and_make_obsolete)()
        self.assertFalse(await sync_to_async(is_open)())

    async def test_an_obsolete_connection_is_closed_before_the_call(self) -> None:
        await sync_to_async(open_and_make_obsolete)()
        self.assertFalse(await database_sync_to_async(is_open)())

    async def test_sync_consumer_handlers_get_the_same_treatment(self) -> None:
        # asgiref's own communicator: those of consumers.testing keep connections open while
        # they drive an application (for Django's TestCase), as Channels' do.
        await sync_to_async(open_and_make_obsolete)()
        communicator: Any = ApplicationCommunicator(
            application, {"type": "channel", "channel": "probe"}
        )
        await communicator.send_input({"type": "probe"})
        reply = await communicator.receive_output(TIMEOUT)
        self.assertEqual(reply, {"type": "probed", "open_at_start": False})
        self.assertFalse(await sync_to_async(is_open)())
        communicator.stop()
