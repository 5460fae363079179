"""The chat pages."""

from django.urls import path, re_path

from chat import views
from chat.consumers import ROOM_PATTERN

urlpatterns = [
    path("", views.index, name="index"),
    re_path(rf"^chat/(?P<room_name>{ROOM_PATTERN})/$", views.room, name="room"),
]
