"""Settings of the test project: SQLite by default, PostgreSQL when DATABASE_URL names one, and the
Redis channel layer when REDIS_URL is set (else the in-memory one)."""

import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "crossway-test-project-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True

INSTALLED_APPS = [
    "asgi_server",  # before staticfiles: its runserver must win
    "consumers",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    "testproject",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "testproject.urls"
STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for tests only
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if not os.environ.get("CROSSWAY_TEST_NO_ASGI_APPLICATION"):
    ASGI_APPLICATION = "testproject.asgi.application"


def database_from_url(url: str) -> dict[str, object]:
    """A DATABASES entry from 'postgres://user:password@host:port/name' or 'sqlite:///path'."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # One test database per process: parallel runs must not drop each other's.
            "TEST": {"NAME": f"test_crossway_{os.getpid()}"},
        }
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": parts.path}
    raise ValueError(f"DATABASE_URL {url!r}: use postgres://user@host:port/name or sqlite:///path")


_sqlite_dir = os.environ.get("CROSSWAY_TEST_SQLITE_DIR", tempfile.gettempdir())
DATABASES = {
    "default": (
        database_from_url(os.environ["DATABASE_URL"])
        if os.environ.get("DATABASE_URL")
        else {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(_sqlite_dir, "crossway-testproject.sqlite3"),
            # A file, not Django's in-memory default: closing a connection must really close
            # it (the database_sync_to_async tests check that), and other processes can open it.
            "TEST": {"NAME": os.path.join(_sqlite_dir, f"crossway-test-{os.getpid()}.sqlite3")},
        }
    )
}

if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channel_layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [os.environ["REDIS_URL"]],
                "prefix": os.environ.get("CROSSWAY_TEST_LAYER_PREFIX", "testproject"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}}
