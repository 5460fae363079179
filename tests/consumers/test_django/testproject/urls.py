"""Django views of the test project: who the request's user is."""

from django.http import HttpRequest, HttpResponse
from django.urls import path


def whoami(request: HttpRequest) -> HttpResponse:
    """The user's name, or 'anonymous'."""
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


urlpatterns = [path("whoami/", whoami)]
