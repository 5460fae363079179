"""Pages: pick a room, and a room. Both need a signed-in user (Django's login view)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def index(request: HttpRequest) -> HttpResponse:
    """Choose a room to join."""
    return render(request, "chat/index.html")


@login_required
def room(request: HttpRequest, room_name: str) -> HttpResponse:
    """A room: its messages arrive over a WebSocket."""
    return render(request, "chat/room.html", {"room_name": room_name})
