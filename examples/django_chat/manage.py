#!/usr/bin/env python
"""The Django chat demo's manage.py: ``python manage.py runserver`` serves it through Crossway.

It works from any directory: ``.venv/bin/python examples/django_chat/manage.py migrate`` from the
repository root puts this directory first on sys.path, so ``django_chat.settings`` is found."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_chat.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
