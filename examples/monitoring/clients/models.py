"""A monitored machine and what its agent reports."""

from typing import Any

from django.db import models


class Client(models.Model):
    """One machine running the agent, known by its address (what the agent announces)."""

    name = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(unique=True)
    show_cpus = models.BooleanField("CPU", default=True)
    show_memory = models.BooleanField("memory", default=True)
    show_disk = models.BooleanField("disks", default=True)
    disabled = models.BooleanField(default=False)
    frequency = models.PositiveIntegerField("every (seconds)", default=1)

    def __str__(self) -> str:
        return self.name or self.ip

    def settings(self) -> dict[str, Any]:
        """What the agent and the dashboard need: published on save, answered on start."""
        return {
            "ip": self.ip,
            "name": str(self),
            "show_cpus": self.show_cpus,
            "show_memory": self.show_memory,
            "show_disk": self.show_disk,
            "disabled": self.disabled,
            "frequency": max(1, self.frequency),
        }
