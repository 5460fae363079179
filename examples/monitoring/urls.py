"""``/``: the dashboard (staff), ``/admin/``, ``/clients/settings`` (the agents' POST)."""

from django.contrib import admin
from django.urls import path

from .clients import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("clients/settings", views.client_settings, name="client-settings"),
    path("admin/", admin.site.urls),
]
