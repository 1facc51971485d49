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


@shared_task(name="provisioning.tasks.sync_directory")
def sync_directory_task(directory_id: int, *, dry_run: bool = False, force: bool = False,
                        started_by: str = "schedule") -> dict:
    """One sync run of a directory; "already running" is an answer, not a failure."""
    from provisioning.ldap.client import DirectoryError
    from provisioning.ldap.sync import sync_directory
    from provisioning.models import Directory

    directory = Directory.objects.select_related("source").get(pk=directory_id)
    try:
        run = sync_directory(directory, dry_run=dry_run, force=force, started_by=started_by)
    except DirectoryError as exc:
        if exc.code != "already_running":
            raise
        return {"status": "already_running"}
    return {"status": run.status, "run_id": run.run_id, **run.counts}


@shared_task(name="provisioning.tasks.dispatch_due_directories")
def dispatch_due_directories() -> list[int]:
    """Beat: queue a sync for every enabled directory whose interval has passed and that is not running."""
    from provisioning.ldap.sync import due_directories

    ids = [directory.pk for directory in due_directories()]
    for directory_id in ids:
        sync_directory_task.delay(directory_id)
    return ids
