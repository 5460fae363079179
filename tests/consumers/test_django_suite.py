"""The Django integration suite (tests/consumers/test_django/) under both test runners.

Its tests need Django configured with the test project's settings, which must not leak into this
session (other tests check behaviour without Django settings), so each run is a subprocess:
Django's ``manage.py test`` and pytest with pytest-django, on SQLite, and again on PostgreSQL when
DATABASE_URL names one (e.g. postgres://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent / "test_django"
REPO_ROOT = PROJECT.parents[2]
# Every test of the suite must run: a skipped or vanished test would pass silently otherwise.
EXPECTED_TESTS = 28
# pytest-django also runs the pytest-style tests, which Django's runner does not see.
EXPECTED_PYTEST_ONLY = 1

DATABASES = ["sqlite", "postgresql"]


def sqlite_directory(tmp_path: Path) -> str:
    """Where the SQLite test database goes: in RAM when the system has /dev/shm, because the
    fsyncs of a file on disk make the suite several times slower."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return tempfile.mkdtemp(prefix="crossway-django-", dir=shm)
    return str(tmp_path)


def suite_environment(database: str, tmp_path: Path) -> dict[str, str]:
    """The subprocess's environment: the chosen database, no Redis (in-memory layer)."""
    skip_unless_database(database)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env["CROSSWAY_TEST_SQLITE_DIR"] = sqlite_directory(tmp_path)
    env.pop("REDIS_URL", None)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if database == "sqlite":
        env.pop("DATABASE_URL", None)
    return env


def skip_unless_database(database: str) -> None:
    """Skip the PostgreSQL runs unless DATABASE_URL names a PostgreSQL database."""
    if database == "sqlite":
        return
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pytest.skip("set DATABASE_URL=postgres://user@host:port/name to run on PostgreSQL too")


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240
        )
    finally:
        if env["CROSSWAY_TEST_SQLITE_DIR"].startswith("/dev/shm/"):
            shutil.rmtree(env["CROSSWAY_TEST_SQLITE_DIR"], ignore_errors=True)


# Each test runs the whole Django project suite in a subprocess (up to 240 s, its own bound):
# the global 60 s pytest-timeout is for single tests, not suites (it fired on a loaded machine).
pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("database", DATABASES)
def test_suite_under_djangos_test_runner(database: str, tmp_path: Path) -> None:
    env = suite_environment(database, tmp_path)
    result = run([sys.executable, "manage.py", "test", "--noinput"], env)
    assert result.returncode == 0, result.stderr[-5000:]
    assert f"Ran {EXPECTED_TESTS} tests" in result.stderr
    assert re.search(r"^OK$", result.stderr, re.MULTILINE), result.stderr[-2000:]


@pytest.mark.parametrize("database", DATABASES)
def test_suite_under_pytest_django(database: str, tmp_path: Path) -> None:
    env = suite_environment(database, tmp_path)
    result = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
        ],
        env,
    )
    assert result.returncode == 0, result.stdout[-5000:]
    passed = EXPECTED_TESTS + EXPECTED_PYTEST_ONLY
    assert re.search(rf"\b{passed} passed\b", result.stdout), result.stdout[-2000:]
    assert "skipped" not in result.stdout
    # pytest-django only warns when it cannot drop the test database (a connection left open).
    assert "Error when trying to teardown" not in result.stdout, result.stdout[-3000:]
