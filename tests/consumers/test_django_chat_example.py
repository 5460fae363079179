"""The Django chat demo's own tests (examples/django_chat/chat/tests.py), under Django's test
runner and under pytest-django, each in a subprocess (its settings must not leak into this
session): on SQLite, and on PostgreSQL when DATABASE_URL names one. They include a browser test
through CrosswayLiveServerTestCase. The two-process run over Redis is
tests/browser/test_django_chat.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.consumers.test_django_suite import DATABASES, skip_unless_database, sqlite_directory

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "django_chat"
EXPECTED_TESTS = 4
# Under pytest-django the browser test is left out: Django's runner has just run it (a browser
# costs seconds), and the live-server case is tested under both runners in test_django_suite.
BROWSER_TESTS = "ChatInBrowserTests"


def example_environment(database: str, tmp_path: Path) -> dict[str, str]:
    """SQLite in RAM (or PostgreSQL), and the in-memory layer: these tests use one process."""
    skip_unless_database(database)
    env = {**os.environ, "PYTHONPATH": str(EXAMPLE.parents[1]), "REDIS_URL": "memory"}
    env["CHAT_DB_PATH"] = str(Path(sqlite_directory(tmp_path)) / "chat.sqlite3")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if database == "sqlite":
        env.pop("DATABASE_URL", None)
    return env


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        database_dir = Path(env["CHAT_DB_PATH"]).parent
        if str(database_dir).startswith("/dev/shm/"):
            shutil.rmtree(database_dir, ignore_errors=True)


@pytest.mark.parametrize("database", DATABASES)
def test_example_under_djangos_test_runner(database: str, tmp_path: Path) -> None:
    env = example_environment(database, tmp_path)
    result = run([sys.executable, "manage.py", "test", "--noinput"], env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"Ran {EXPECTED_TESTS} tests" in result.stderr
    assert re.search(r"^OK$", result.stderr, re.MULTILINE), result.stderr[-2000:]


@pytest.mark.parametrize("database", DATABASES)
def test_example_under_pytest_django(database: str, tmp_path: Path) -> None:
    env = example_environment(database, tmp_path)
    result = run([sys.executable, "-m", "pytest", "-q", "-k", f"not {BROWSER_TESTS}"], env)
    assert result.returncode == 0, result.stdout[-5000:]
    expected = rf"\b{EXPECTED_TESTS - 1} passed, 1 deselected\b"
    assert re.search(expected, result.stdout), result.stdout[-2000:]
    assert "skipped" not in result.stdout
    assert "Error when trying to teardown" not in result.stdout, result.stdout[-3000:]
