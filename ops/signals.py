"""Signal handlers of the ops app: metrics from audit events and uploads; scheduled-job runs from Celery.

Sign-ins, throttling and SAML failures are counted from the audit events the sign-in code already
writes, so the metric and the audit log can never disagree and no front door needs a second hook.
"""

from __future__ import annotations

import time

from celery import signals as celery_signals
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.bulk_upload.models import BulkUpload
from accounts.models import AuditEvent
from ops import logcontext, metrics

SIGN_IN_ACTIONS = {
    "auth.login_succeeded": None,  # method in new_value ("password" or "sso")
    "auth.login_failed": ("password", "failure"),
    "auth.mfa_succeeded": ("two_factor", "success"),
    "auth.mfa_failed": ("two_factor", "failure"),
    "auth.sso_login_failed": ("sso", "failure"),
}


def _sign_in_method(action: str) -> str:
    if action.startswith("auth.mfa_"):
        return "two_factor"
    if action.startswith("auth.sso_"):
        return "sso"
    return "password"


@receiver(pre_save, sender=AuditEvent, dispatch_uid="ops_sign_in_event_details")
def complete_sign_in_event(sender, instance: AuditEvent, **kwargs) -> None:
    """Every ``auth.*`` event says its method (password, two_factor, sso) and the client's user agent.

    Done here, once, rather than in each of the sign-in front doors (password, two-factor, SAML, sign-out);
    the IP address is already on the event (``ip_address``, from the actor)."""
    if not instance.action.startswith("auth.") or instance.pk is not None:
        return
    data = dict(instance.new_value) if isinstance(instance.new_value, dict) else (
        {} if instance.new_value is None else {"value": instance.new_value})
    data.setdefault("method", _sign_in_method(instance.action))
    agent = logcontext.user_agent.get()
    if agent:
        data.setdefault("user_agent", agent)
    instance.new_value = data


@receiver(post_save, sender=AuditEvent, dispatch_uid="ops_audit_metrics")
def count_audit_event(sender, instance: AuditEvent, created: bool, **kwargs) -> None:
    if not created:
        return
    action = instance.action
    if action in SIGN_IN_ACTIONS:
        pair = SIGN_IN_ACTIONS[action]
        if pair is None:
            method = (instance.new_value or {}).get("method", "password") if isinstance(instance.new_value, dict) else "password"
            pair = (str(method)[:20], "success")
        metrics.SIGN_INS.labels(method=pair[0], result=pair[1]).inc()
    if action == "auth.sso_login_failed":
        reason = (instance.new_value or {}).get("reason", "") if isinstance(instance.new_value, dict) else ""
        metrics.SAML_FAILURES.labels(reason=str(reason or "unknown")[:40]).inc()
    elif action == "auth.login_throttled":
        metrics.SIGN_IN_THROTTLED.inc()


_FINAL = {BulkUpload.Status.DONE, BulkUpload.Status.FAILED}


@receiver(pre_save, sender=BulkUpload, dispatch_uid="ops_upload_before")
def remember_upload_status(sender, instance: BulkUpload, **kwargs) -> None:
    # Only when this save finishes the upload: one query for the old status, so rows are counted once.
    if instance.status in _FINAL and not instance._state.adding:
        instance._ops_old_status = sender.objects.filter(pk=instance.pk).values_list("status", flat=True).first()


@receiver(post_save, sender=BulkUpload, dispatch_uid="ops_upload_rows")
def count_upload_rows(sender, instance: BulkUpload, **kwargs) -> None:
    old = getattr(instance, "_ops_old_status", None)
    if instance.status in _FINAL and old is not None and old not in _FINAL:
        for result, count in (("created", instance.created_count), ("updated", instance.updated_count),
                              ("unchanged", instance.unchanged_count), ("error", instance.error_count)):
            if count:
                metrics.UPLOAD_ROWS.labels(result=result).inc(count)
        instance._ops_old_status = instance.status


# --- Celery: durations, failures and the last run of each task (for /readyz and the dashboard) --------
_started: dict[str, float] = {}
_log_tokens: dict = {}


def _record_run(task_name: str, **fields) -> None:
    from ops.models import JobRun

    try:
        JobRun.objects.update_or_create(task=task_name[:200], defaults=fields)
    except Exception:  # noqa: BLE001 - bookkeeping must never fail the task itself
        import logging

        logging.getLogger("idm.ops").warning("could not record the run of %s", task_name, exc_info=True)


@celery_signals.task_prerun.connect(dispatch_uid="ops_task_prerun")
def task_started(sender=None, task_id=None, task=None, **kwargs) -> None:
    _started[task_id] = time.monotonic()
    _log_tokens[task_id] = logcontext.bind(job_id=task_id or "")
    _record_run(task.name, status="running", started_at=timezone.now(), finished_at=None)


@celery_signals.task_postrun.connect(dispatch_uid="ops_task_postrun")
def task_finished(sender=None, task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    token = _log_tokens.pop(task_id, None)
    if token is not None:
        try:
            logcontext.reset(token)
        except ValueError:  # bound in another context (eager tasks inside a request)
            pass
    duration = time.monotonic() - started if started is not None else None
    if duration is not None:
        metrics.TASK_DURATION.labels(task=task.name).observe(duration)
    now = timezone.now()
    if state == "SUCCESS":
        _record_run(task.name, status="ok", finished_at=now, last_success_at=now, duration_seconds=duration,
                    error="")
    elif state in ("FAILURE",):
        _record_run(task.name, status="failed", finished_at=now, duration_seconds=duration)


@celery_signals.task_failure.connect(dispatch_uid="ops_task_failure")
def task_failed(sender=None, task_id=None, exception=None, **kwargs) -> None:
    name = getattr(sender, "name", "unknown")
    metrics.TASK_FAILURES.labels(task=name).inc()
    # The exception class and message, never the task's arguments (they may hold secrets).
    _record_run(name, status="failed", finished_at=timezone.now(),
                error=f"{type(exception).__name__}: {exception}"[:500])
