"""Email about a directory sync that needs a person: held deactivations (the safety valve) or a failure.

Sent once per run, when the run ends ``held`` or ``failed`` (dry runs never alert), through Django's
mail path — the SMTP server when one is configured, else the console's Outbox (``ops.mail``) — to
``IDM_DIRECTORY_ALERT_EMAILS`` or, without it, every active Customer Cloud Admin. The message names
the directory, the counts and the run's error (the same words the console shows; never a bind DN
or password) and links the run's journal, where the held users are listed, and the directory page
with "Apply anyway". The console alert is ``ops.dashboard.directory_sync_alerts``. A failure to send
is logged and audited (``alert.send_failed``); it never changes the run.

The subject is fixed text chosen by idm ("idm: directory sync held" / "idm: directory sync failed"):
the directory's name is chosen by an admin, and a name such as "ACTION REQUIRED - verify admin login
at https://..." in the subject of a mail from idm's own sender is a ready-made phishing message
(second review, N7). In the plain-text body the name, the run's error and the starter are quoted as
data by ``ops.mail.mail_data`` (URL-like text is defanged so mail clients do not turn it into a
link); the only links are idm's own pages under ``IDM_BASE_URL``.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse

from accounts.identity.audit import record_event
from accounts.identity.types import Actor
from ops.mail import mail_data
from provisioning.app_settings import app_settings
from provisioning.models import ProvisioningRun

log = logging.getLogger("idm.provisioning.alerts")
ALERT_STATUSES = (ProvisioningRun.Status.HELD, ProvisioningRun.Status.FAILED)


def alert_recipients() -> list[str]:
    """The configured addresses, or every active Customer Cloud Admin's."""
    from ops.alerts import cloud_admin_emails

    return app_settings.directory_alert_emails or cloud_admin_emails()


def alert_message(run: ProvisioningRun) -> tuple[str, str]:
    """(subject, body) of the alert for ``run``."""
    from provisioning.ldap.sync import count_line

    name = f"the directory {mail_data(run.source.name)}" if run.source else "a directory"
    run_url = settings.IDM_BASE_URL + reverse("provisioning:run_detail", args=[run.run_id])
    if run.status == ProvisioningRun.Status.HELD:
        subject = "idm: directory sync held"
        opening = (f"The sync of {name} held {run.counts.get('held', 0)} deactivations for review: it applied "
                   "every change except the deactivations above its safety threshold; nobody was blocked.")
        review = (f"Review the held users in the run's journal: {run_url}\n"
                  "If the directory really lost them, press \"Apply anyway\" on the directory page")
    else:
        subject = "idm: directory sync failed"
        opening = f"The sync of {name} failed; nobody was blocked or deactivated because of the failure."
        review = f"The run's journal: {run_url}\nFix the cause and press \"Sync now\" on the directory page"
    source_url = settings.IDM_BASE_URL + reverse("provisioning:source_detail", args=[run.source_id]) \
        if run.source_id else ""
    started_by = mail_data(run.started_by_label) if run.started_by_label else "schedule"
    body = (f"{opening}\n\n{mail_data(run.error, quote=False)}\n\nCounts: {count_line(run.counts)}\n"
            f"Started {run.started_at:%Y-%m-%d %H:%M %Z} by {started_by}.\n\n"
            f"{review}{': ' + source_url if source_url else ''}.\n\n"
            "You get this email because you are a Customer Cloud Admin or the directory alert address.\n")
    return subject, body


def alert_run(run: ProvisioningRun) -> int:
    """Email about ``run`` if it is a held or failed real sync (after the surrounding transaction
    commits); the number of messages queued to send (0 when there is nothing to say)."""
    if run.dry_run or run.kind != ProvisioningRun.Kind.SYNC or run.status not in ALERT_STATUSES:
        return 0
    recipients = alert_recipients()
    if not recipients:
        log.warning("directory sync %s %s but nobody has an email address to alert", run.run_id, run.status)
        return 0
    subject, body = alert_message(run)
    transaction.on_commit(lambda: _send(run, subject, body, recipients))
    return len(recipients)


def _send(run: ProvisioningRun, subject: str, body: str, recipients: list[str]) -> None:
    actor = Actor.system("directory alerts", job_id=run.run_id)
    try:
        sent = get_connection().send_messages(
            [EmailMessage(subject=subject, body=body, to=[address]) for address in recipients]) or 0
    except Exception as exc:  # noqa: BLE001 - the run stands; the failure is logged and audited
        log.warning("directory sync alert not sent: %s", type(exc).__name__)
        record_event(actor=actor, action="alert.send_failed", target_type="email",
                     new={"recipients": len(recipients), "error": type(exc).__name__}, message=subject)
        return
    record_event(actor=actor, action="directory_sync_alert_sent", target_type="source", target_id=run.source_id,
                 target_label=run.source.name if run.source else "", new={"run": run.run_id, "messages": sent},
                 message=subject)
