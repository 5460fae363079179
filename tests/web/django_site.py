"""A Django site served through the wsgi path type: settings, views and the ASGI app.

``python -m asgi_server tests.web.django_site:application`` mounts Django's
``get_wsgi_application()`` at ``/django/`` beside a plain route, to check SCRIPT_NAME.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "consumers" / "test_django"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.web.django_site"

from testproject.settings import *  # type: ignore[import-not-found]  # noqa: F403

ROOT_URLCONF = "tests.web.django_site"
MIDDLEWARE: list[str] = []
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024  # bigger uploads go to a temporary file, in chunks

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]  # noqa: E402
from django.http import (  # type: ignore[import-untyped]  # noqa: E402
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # type: ignore[import-untyped]  # noqa: E402


def where(request: HttpRequest) -> JsonResponse:
    """Where Django thinks it is mounted."""
    meta = request.META
    return JsonResponse(
        {"path": request.path, "script_name": meta["SCRIPT_NAME"], "path_info": meta["PATH_INFO"]}
    )


def upload(request: HttpRequest) -> JsonResponse:
    """The size and SHA-256 of the uploaded file (Django streams it to a temporary file)."""
    uploaded = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in uploaded.chunks():
        digest.update(chunk)
    return JsonResponse({"size": uploaded.size, "sha256": digest.hexdigest()})


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """``count`` chunks of 64 KiB."""
    count = int(request.GET.get("count", "16"))

    def chunks() -> Iterator[bytes]:
        for index in range(count):
            yield bytes([index % 256]) * 65536

    return StreamingHttpResponse(chunks(), content_type="application/octet-stream")


def hello(request: HttpRequest) -> HttpResponse:
    """A plain page."""
    return HttpResponse("hello from django")


urlpatterns = [
    path("where/", where),
    path("upload/", upload),
    path("stream/", stream),
    path("", hello),
]

from consumers.routing import URLRouter  # noqa: E402
from consumers.routing import path as route  # noqa: E402
from consumers.web import WsgiApp  # noqa: E402

application = URLRouter([route("django/", WsgiApp(get_wsgi_application()))])
