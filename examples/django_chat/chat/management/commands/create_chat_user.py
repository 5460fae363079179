"""``manage.py create_chat_user NAME:PASSWORD [...]``: create users (or reset their passwords)."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create chat users, or set the passwords of existing ones."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("users", nargs="+", metavar="NAME:PASSWORD")

    def handle(self, *args: Any, **options: Any) -> None:
        model = get_user_model()
        for pair in options["users"]:
            username, separator, password = pair.partition(":")
            if not separator or not username or not password:
                raise CommandError(f"{pair!r}: give each user as NAME:PASSWORD, e.g. alice:secret")
            user, created = model.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            self.stdout.write(f"{'Created' if created else 'Updated'} user {username!r}")
