#!/usr/bin/env python
"""The Django chat demo's manage.py: ``python manage.py runserver`` serves it through Crossway."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_chat.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
