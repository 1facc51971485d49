"""Celery tasks of provisioning: thin wrappers that call the services and return counts."""

from __future__ import annotations

from celery import shared_task

from provisioning.lifecycle import deactivate_due
from provisioning.models import ProvisioningRun, Source
from provisioning.reapply import reapply_rules


@shared_task(name="provisioning.tasks.deactivate_due_users")
def deactivate_due_users() -> dict[str, int]:
    """Beat sweep: deactivate users whose source block outlived the grace period."""
    return deactivate_due().as_dict()


@shared_task(name="provisioning.tasks.reapply_source_rules")
def reapply_source_rules(source_id: int, run_id: str) -> dict[str, int]:
    """Re-apply a source's rules to its users as the run the console created (progress on the run)."""
    run = ProvisioningRun.objects.get(run_id=run_id)
    return reapply_rules(source=Source.objects.get(pk=source_id), run=run, dry_run=run.dry_run).counts
