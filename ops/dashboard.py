"""The console dashboard's numbers (reads only): users, orgs, uploads, sign-ins and changes per day, alerts.

Per-day series cover the last 30 days. Days before today never change (events are append-only), so each
finished day is counted once into ``ops.DailyCount`` (by the ``ops.dashboard_warm`` beat task, or by the
first visitor after midnight) and only today's events are counted, at most once a minute: at a million
audit events the page reads 29 stored days and one day of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.identity.types import Source, UserState

DAYS = 30
SIGN_IN_OK = ("auth.login_succeeded",)
SIGN_IN_FAILED = ("auth.login_failed", "auth.mfa_failed", "auth.sso_login_failed", "auth.login_throttled")
CHANGE_PREFIXES = ("user.", "org.", "group.")
CACHE_VERSION = 1


@dataclass
class Alert:
    """Something an administrator should look at: ``level`` is warn or fail; ``url`` where to fix it."""

    code: str
    level: str
    message: str
    url: str = ""


@dataclass
class Series:
    """One chart: day labels, and per series name a list of counts (one per day)."""

    days: list[date]
    values: dict[str, list[int]] = field(default_factory=dict)

    @property
    def maximum(self) -> int:
        return max([max(v) for v in self.values.values() if v] + [0])

    @property
    def rows(self) -> list[tuple[date, list[int]]]:
        """(day, counts in series order) rows for the table version of the chart."""
        names = list(self.values)
        return [(day, [self.values[n][i] for n in names]) for i, day in enumerate(self.days)]


def _day_range(today: date) -> list[date]:
    return [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]


def _bounds(day: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    start = datetime.combine(day, time.min, tzinfo=tz)
    return start, start + timedelta(days=1)


def _sign_in_query(start: datetime, end: datetime) -> dict[tuple[date, str], int]:
    from accounts.models import AuditEvent

    rows = (AuditEvent.objects.filter(created_at__gte=start, created_at__lt=end,
                                      action__in=SIGN_IN_OK + SIGN_IN_FAILED)
            .order_by().annotate(day=TruncDate("created_at")).values_list("day", "action").annotate(n=Count("id")))
    out: dict[tuple[date, str], int] = {}
    for day, action, n in rows:
        key = (day, "succeeded" if action in SIGN_IN_OK else "failed")
        out[key] = out.get(key, 0) + n
    return out


def _change_query(start: datetime, end: datetime) -> dict[tuple[date, str], int]:
    from django.db.models import Q

    from accounts.models import AuditEvent

    prefix = Q()
    for p in CHANGE_PREFIXES:
        prefix |= Q(action__startswith=p)
    rows = (AuditEvent.objects.filter(prefix, created_at__gte=start, created_at__lt=end)
            .order_by().annotate(day=TruncDate("created_at")).values_list("day", "source").annotate(n=Count("id")))
    return {(day, source): n for day, source, n in rows}


TODAY_TTL = 60  # seconds: today's counts may lag a minute; past days are final


def _rolled_up(kind: str, days: list[date]) -> tuple[list[tuple[date, str, int]], list[date]]:
    """Stored rows for ``days`` and the days not rolled up yet."""
    from ops.models import DailyCount

    rows = list(DailyCount.objects.filter(series=kind, day__gte=days[0], day__lte=days[-1])
                .values_list("day", "key", "n"))
    done = {day for day, _, _ in rows}
    return rows, [d for d in days if d not in done]


def _store(kind: str, missing: list[date], counted: dict[tuple[date, str], int]) -> None:
    from django.db import IntegrityError, transaction

    from ops.models import DailyCount

    new = [DailyCount(day=d, series=kind, key="", n=0) for d in missing]
    new += [DailyCount(day=d, series=kind, key=str(k)[:40], n=n) for (d, k), n in counted.items() if d in missing]
    try:
        with transaction.atomic():
            DailyCount.objects.bulk_create(new, ignore_conflicts=True)
    except IntegrityError:  # a concurrent visitor stored them first: theirs are the same counts
        pass


def _daily(kind: str, query, today: date) -> dict[tuple[date, str], int]:
    """Buckets for the window: finished days from the ``DailyCount`` rollup, today's counted at most once a
    minute. Days not rolled up yet (usually yesterday, right after midnight, before the beat task ran) are
    counted in the same query as today."""
    days = _day_range(today)
    rows, missing = _rolled_up(kind, days[:-1])
    today_key = f"idm:dashboard:{kind}:today:{today.isoformat()}"
    current = cache.get(today_key, version=CACHE_VERSION)
    if missing:
        counted = query(_bounds(missing[0])[0], _bounds(today if current is None else missing[-1])[1])
        _store(kind, missing, counted)
        rows += [(d, k, n) for (d, k), n in counted.items() if d in missing]
        if current is None:
            current = {(d, k): n for (d, k), n in counted.items() if d == today}
            cache.set(today_key, current, TODAY_TTL, version=CACHE_VERSION)
    elif current is None:
        current = query(*_bounds(today))
        cache.set(today_key, current, TODAY_TTL, version=CACHE_VERSION)
    return {**{(day, key): n for day, key, n in rows if key}, **current}


def warm() -> None:
    """Roll up finished days (the beat task runs this, so no visitor pays for counting them)."""
    sign_ins_per_day()
    changes_per_day()


def sign_ins_per_day(today: date | None = None) -> Series:
    today = today or timezone.localdate()
    buckets = _daily("signins", _sign_in_query, today)
    days = _day_range(today)
    return Series(days, {name: [buckets.get((d, name), 0) for d in days] for name in ("succeeded", "failed")})


def changes_per_day(today: date | None = None) -> Series:
    today = today or timezone.localdate()
    buckets = _daily("changes", _change_query, today)
    days = _day_range(today)
    sources = [s for s in Source.values if any(buckets.get((d, s)) for d in days)]
    return Series(days, {s: [buckets.get((d, s), 0) for d in days] for s in sources})


def user_counts(*, access, users) -> tuple[dict[str, int], dict[str, int]]:
    """Users by state and by source in one pass. A viewer who sees every user is counted on the profile
    table alone (no join to auth_user: a third of the time at 100k users); others through ``users``."""
    from accounts.models import UserProfile

    if access.is_global("view_directory"):
        rows = UserProfile.objects.order_by().values_list("state", "source").annotate(n=Count("id"))
    else:
        rows = users.order_by().values_list("profile__state", "profile__source").annotate(n=Count("pk"))
    by_state: dict[str, int] = {}
    by_source: dict[str, int] = {}
    for state, source, n in rows:
        by_state[state] = by_state.get(state, 0) + n
        by_source[source] = by_source.get(source, 0) + n
    if access.is_global("view_directory"):
        from django.contrib.auth.models import User

        # Users without a profile (``createsuperuser``) count in the total, like the users list shows them.
        missing = User.objects.count() - sum(by_state.values())
        if missing > 0:
            by_state[None] = by_source[None] = missing  # type: ignore[index]
    return by_state, by_source


def backup_status() -> dict:
    """The last backup for the console: time, size, result, and whether it is missing or stale."""
    from ops.app_settings import ops_settings
    from ops.models import BackupRecord

    last = BackupRecord.objects.first()
    if last is None:
        return {"state": "missing", "last": None}
    age_hours = (timezone.now() - last.created_at).total_seconds() / 3600
    state = "failed" if not last.ok else "stale" if age_hours > ops_settings.backup_max_age_hours else "ok"
    return {"state": state, "last": last, "age_hours": round(age_hours, 1)}


def alerts(*, throttle_window: timedelta = timedelta(minutes=15)) -> list[Alert]:
    """Open alerts: backups, failed scheduled jobs, IdP certificates or metadata, throttled accounts."""
    from django.conf import settings
    from django.urls import reverse

    from accounts.models import AuditEvent
    from ops.models import JobRun
    from sso.metadata import expiring_certs, metadata_warnings
    from sso.models import IdentityProvider

    out: list[Alert] = []
    backup = backup_status()
    if backup["state"] == "missing":
        out.append(Alert("backup_missing", "warn", "No backup has been made yet: run `manage.py backup_now` "
                                                   "or check that Celery beat runs."))
    elif backup["state"] == "failed":
        out.append(Alert("backup_failed", "fail", f"The last backup failed: {backup['last'].error[:200]}"))
    elif backup["state"] == "stale":
        out.append(Alert("backup_stale", "fail", f"The last backup is {backup['age_hours']:.0f} hours old."))
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for run in JobRun.objects.filter(task__in=scheduled, status=JobRun.Status.FAILED):
        out.append(Alert("job_failed", "fail", f"Scheduled job {run.task} failed at "
                                               f"{timezone.localtime(run.finished_at or run.started_at):%Y-%m-%d %H:%M}: {run.error[:200]}"))
    for provider in IdentityProvider.objects.only("pk", "name", "metadata_summary", "metadata_xml"):
        url = reverse("sso:provider_detail", args=[provider.pk])
        for cert in expiring_certs(provider.metadata_summary):
            verb = "has expired" if cert["expired"] else f"expires in {cert['days_left']} days"
            out.append(Alert("idp_cert_expiring", "fail" if cert["expired"] else "warn",
                             f"{provider.name}: a signing certificate {verb}.", url))
        for warning in metadata_warnings(provider.metadata_summary, provider.metadata_xml):
            out.append(Alert(warning["code"], "warn", f"{provider.name}: {warning['summary']}", url))
    out += directory_sync_alerts()
    since = timezone.now() - throttle_window
    throttled = (AuditEvent.objects.filter(action="auth.login_throttled", created_at__gte=since)
                 .order_by().values_list("target_label", flat=True).distinct()[:5])
    for username in throttled:
        out.append(Alert("account_throttled", "warn", f"Sign-in for {username} is being throttled after repeated "
                                                      "failures.", f"{reverse('accounts:audit_list')}?target={username}"))
    return out


def directory_sync_alerts() -> list[Alert]:
    """A directory whose last sync failed, or held deactivations for review ("apply anyway")."""
    from django.urls import reverse

    from provisioning.models import ProvisioningRun, Source

    out: list[Alert] = []
    for source in Source.objects.filter(kind=Source.Kind.LDAP, enabled=True).only("pk", "name"):
        last = (ProvisioningRun.objects.filter(source=source, kind=ProvisioningRun.Kind.SYNC, dry_run=False)
                .exclude(status=ProvisioningRun.Status.RUNNING).order_by("-started_at", "-id").first())
        if last is None or last.status == ProvisioningRun.Status.SUCCEEDED:
            continue
        url = reverse("provisioning:run_detail", args=[last.run_id])
        if last.status == ProvisioningRun.Status.HELD:
            out.append(Alert("directory_sync_held", "fail", f"{source.name}: {last.error[:300]}", url))
        else:
            out.append(Alert("directory_sync_failed", "fail", f"{source.name}: the last sync failed: "
                                                              f"{last.error[:300]}", url))
    return out


def recent_uploads(limit: int = 5):
    from accounts.bulk_upload.models import BulkUpload

    return list(BulkUpload.objects.order_by("-created_at")[:limit])


def state_labels() -> dict[str, str]:
    return {s.value: s.label for s in UserState}


def dashboard_context(*, access, by_source: dict[str, int]) -> dict:
    """What the home page adds for ``access`` (the viewer's permissions) over ``users`` (their scope).

    Audit-derived charts need the global audit-log permission; alerts, backups and uploads are for
    Customer Cloud Admins: an Org Admin sees their own subtree only, never instance-wide figures."""
    labels = dict(Source.choices)
    context: dict = {"by_source": [{"source": s, "label": labels.get(s, s), "count": n}
                                   for s, n in sorted(by_source.items(), key=lambda kv: -kv[1])]}
    if access.is_global("view_audit_log"):
        context["sign_ins"] = sign_ins_per_day()
        context["changes"] = changes_per_day()
        context["change_labels"] = [labels.get(s, s) for s in context["changes"].values]
    if access.is_cloud_admin:
        context["alerts"] = alerts()
        context["backup"] = backup_status()
        context["uploads"] = recent_uploads()
    return context
