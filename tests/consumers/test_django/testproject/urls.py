"""Django views of the test project: who the request's user is."""

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.urls import path


def whoami(request: HttpRequest) -> HttpResponse:
    """The user's name, or 'anonymous'."""
    user = request.user
    return HttpResponse(user.get_username() if user.is_authenticated else "anonymous")


def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out (the WAMP tests check that this ends the user's WAMP sessions)."""
    logout(request)
    return HttpResponse("logged out")


urlpatterns = [path("whoami/", whoami), path("logout/", logout_view)]
