"""``manage.py create_chat_user NAME PASSWORD``: create a user (or reset their password)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a chat user, or set the password of an existing one."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("password")

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_user_model()
        user, created = model.objects.get_or_create(username=options["username"])
        user.set_password(options["password"])
        user.save()
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} user {user.get_username()!r}")
