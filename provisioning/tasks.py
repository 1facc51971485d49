"""Celery tasks of provisioning: thin wrappers that call the services and return counts."""

from __future__ import annotations

from celery import shared_task

from provisioning.lifecycle import deactivate_due


@shared_task(name="provisioning.tasks.deactivate_due_users")
def deactivate_due_users() -> dict[str, int]:
    """Beat sweep: deactivate users whose source block outlived the grace period."""
    return deactivate_due().as_dict()
