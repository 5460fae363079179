"""Settings of the monitoring demo: machines report their load over WAMP, staff watch a live page.

Environment: MONITORING_DB_PATH (SQLite file, default db.sqlite3 beside this file),
MONITORING_SECRET_KEY, MONITORING_DEBUG ("0" turns DEBUG off), MONITORING_ALLOWED_HOSTS
(comma-separated, added to the local names), REDIS_URL (a Redis channel layer instead of the
in-memory one), MONITORING_PUBLISHER_URL (publish the admin's changes by HTTP POST to the
publisher bridge, e.g. http://127.0.0.1:8000/notify, the tutorial's way, instead of in process).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
AUTOBAHN_DIR = BASE_DIR.parents[1] / "consumers/wamp/static/vendor/autobahn-browser"

SECRET_KEY = os.environ.get("MONITORING_SECRET_KEY", "monitoring-demo-only-not-a-secret")
DEBUG = os.environ.get("MONITORING_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"] + [
    host for host in os.environ.get("MONITORING_ALLOWED_HOSTS", "").split(",") if host
]

INSTALLED_APPS = [
    "asgi_server",
    "examples.monitoring.clients",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "examples.monitoring.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ASGI_APPLICATION = "examples.monitoring.asgi.application"
if os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channel_layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [os.environ["REDIS_URL"]], "prefix": "monitoring"},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channel_layers.memory.InMemoryChannelLayer"}}

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": Path(os.environ.get("MONITORING_DB_PATH", BASE_DIR / "db.sqlite3")),
    }
}

MONITORING_PUBLISHER_URL = os.environ.get("MONITORING_PUBLISHER_URL", "")

LOGIN_URL = "admin:login"
STATIC_URL = "/static/"
STATICFILES_DIRS = [("vendor", AUTOBAHN_DIR)]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
