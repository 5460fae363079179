"""WebSocket routes: one socket per open room page."""

from django.urls import re_path

from chat.consumers import ROOM_PATTERN, ChatConsumer

websocket_urlpatterns = [
    re_path(rf"^ws/chat/(?P<room_name>{ROOM_PATTERN})/$", ChatConsumer.as_asgi()),
]
