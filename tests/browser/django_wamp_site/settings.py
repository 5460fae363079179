"""A small Django site whose logged-in users are its WAMP sessions, for the browser tests:
Django's own login view and session cookie, and the router behind ``AuthMiddlewareStack``
(see ``asgi.py``). SQLite in ``WAMP_SITE_DB_PATH``; the channel layer ``WAMP_SITE_LAYER_URL``
(several processes on Redis) when set, else the in-memory one."""

import os
from pathlib import Path

SECRET_KEY = "crossway-browser-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
ROOT_URLCONF = "tests.browser.django_wamp_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, for tests only
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["WAMP_SITE_DB_PATH"]}
}

if os.environ.get("WAMP_SITE_LAYER_URL"):
    from channel_layers import layer_config_from_url

    CHANNEL_LAYERS = {"default": layer_config_from_url(os.environ["WAMP_SITE_LAYER_URL"])}
