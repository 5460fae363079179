"""Collect this Django project's tests only when pytest-django runs them with its settings.

The main test session (no Django settings) leaves them to tests/consumers/test_django_suite.py,
which runs them in subprocesses under Django's test runner and under pytest-django.
"""

import os

collect_ignore_glob = (
    [] if os.environ.get("DJANGO_SETTINGS_MODULE") == "testproject.settings" else ["*"]
)
