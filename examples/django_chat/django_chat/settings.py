"""Settings of the Django chat demo: the Channels tutorial chat, with Django's login.

Environment:
- REDIS_URL (default redis://127.0.0.1:6379/0): the channel layer every server process shares;
  "memory" for the in-memory layer (one process only).
- DATABASE_URL: postgres://user:password@host:port/name; without it, SQLite at CHAT_DB_PATH
  (default: db.sqlite3 next to manage.py).
- CHAT_SECRET_KEY, CHAT_DEBUG ("0" to turn DEBUG off), CHAT_ALLOWED_HOSTS (comma-separated).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("CHAT_SECRET_KEY", "django-chat-demo-only-not-a-secret")
DEBUG = os.environ.get("CHAT_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    host for host in os.environ.get("CHAT_ALLOWED_HOSTS", "").split(",") if host
]

INSTALLED_APPS = [
    "asgi_server",  # first: its runserver serves ASGI_APPLICATION through Crossway
    "consumers",  # manage.py runworker
    "chat",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "django_chat.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

# Crossway reads these two, in Channels' format.
ASGI_APPLICATION = "django_chat.asgi.application"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if REDIS_URL == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channel_layers.redis.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": os.environ.get("CHAT_LAYER_PREFIX", "django_chat"),
            },
        }
    }


def database_from_url(url: str) -> dict[str, object]:
    """A DATABASES entry from postgres://user:password@host:port/name."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL {url!r}: use postgres://user:password@host:port/name")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "TEST": {"NAME": f"test_django_chat_{os.getpid()}"},  # parallel runs stay apart
    }


_sqlite = Path(os.environ.get("CHAT_DB_PATH", BASE_DIR / "db.sqlite3"))
DATABASES = {
    "default": (
        database_from_url(os.environ["DATABASE_URL"])
        if os.environ.get("DATABASE_URL")
        else {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _sqlite,
            # A file (not memory): the live-server tests' server process opens it too.
            "TEST": {"NAME": _sqlite.with_name(f"test-{os.getpid()}-{_sqlite.name}")},
        }
    )
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "index"
LOGOUT_REDIRECT_URL = "login"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
