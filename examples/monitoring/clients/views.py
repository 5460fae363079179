"""The agents' settings endpoint and the staff dashboard."""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Client


@csrf_exempt  # called by agents, not by browsers holding a session
@require_POST
def client_settings(request: HttpRequest) -> HttpResponse:
    """POST ``{"ip": ..., "name": ...}``: the machine's settings (a new machine is added)."""
    try:
        body = json.loads(request.body)
        ip = str(body["ip"])
        validate_ipv46_address(ip)
    except (ValueError, KeyError, TypeError, ValidationError):
        return JsonResponse({"error": 'expected {"ip": "<address>", "name": "..."}'}, status=400)
    client, _ = Client.objects.get_or_create(ip=ip, defaults={"name": str(body.get("name", ""))})
    return JsonResponse(client.settings())


@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live page (staff only): the known machines, then their stats over WAMP."""
    clients = [client.settings() for client in Client.objects.order_by("ip")]
    return render(request, "clients/dashboard.html", {"clients": clients})
