"""The machines in Django's admin: unticking a box there changes the dashboard at once."""

from django.contrib import admin

from .models import Client


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Every setting in the list, and editable there too."""

    list_display = ("ip", "name", "show_cpus", "show_memory", "show_disk", "disabled", "frequency")
    list_editable = ("name", "show_cpus", "show_memory", "show_disk", "disabled", "frequency")
