"""URLs: Django's login and logout views, and the chat pages."""

from django.urls import include, path

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("chat.urls")),
]
