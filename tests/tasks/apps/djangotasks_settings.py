"""Settings of the Django Tasks test project (the layer comes from CHANNEL_LAYERS_URL)."""

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["consumers"]  # for manage.py runworker
DATABASES: dict[str, dict[str, str]] = {}
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
TASKS = {
    "default": {
        "BACKEND": "consumers.tasks.django.ChannelLayerBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"LEASE": 10, "RESULT_TTL": 600},
    }
}
