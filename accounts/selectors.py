"""Read paths for the console: users, orgs, roles and audit events, scoped to what the viewer may see."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import CharField, Count, F, Func, Q, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.access import Access
from accounts.identity.validators import normalize_username, username_key
from accounts.models import AuditEvent, Organization, Role

USER_SORTS = {
    "username": "username",
    "-username": "-username",
    "name": "last_name",
    "-name": "-last_name",
    "email": "email",
    "-email": "-email",
    # The user's creation time on auth_user itself (indexed, migration 0010): sorting by the profile's
    # created_at outer-joins every profile and sorts them all.
    "created": "date_joined",
    "-created": "-date_joined",
    "org": "profile__org__name",
    "-org": "-profile__org__name",
}


def user_list(
    *, viewer: User, q: str = "", org: Organization | None = None, role: Role | None = None,
    source: str = "", state: str = "", sort: str = "username",
) -> QuerySet[User]:
    """Users the viewer may see, filtered and sorted. Sub-orgs are included in the org filter.

    Search finds each typed word anywhere in username, email, first or last name ("sales", "acme",
    part of an email; "sam sel" finds Sam Seller). On PostgreSQL one trigram GIN index over the
    fields' joined text (``UserSearchText``, migration ``accounts/0011``) keeps it fast at 100k
    users; SQLite scans. ``source`` is a value of ``user_source_choices``. Sorting always ends with
    the primary key so pagination is stable.
    """
    # Users without a profile (made by ``createsuperuser``) are listed too: not joining profiles
    # unless a filter needs them lets PostgreSQL walk the username index for the default order.
    conditions, _ = _user_conditions(viewer=viewer, q=q, org=org, role=role, source=source, state=state,
                                     user="", profile="profile__")
    order = USER_SORTS.get(sort, "username")
    return (User.objects.filter(*conditions).select_related("profile", "profile__org")
            .order_by(order, "pk"))


def user_list_count(
    *, viewer: User, q: str = "", org: Organization | None = None, role: Role | None = None,
    source: str = "", state: str = "",
) -> int:
    """How many users ``user_list`` gives for the same filters, counted the cheapest way.

    When a filter (the viewer's org scope, the org, state or source filter) already needs the
    user's profile, only users with a profile can match, so the profiles are counted instead:
    PostgreSQL then answers from the profile indexes without joining all of ``auth_user``
    (an org-scoped count at 100k users: ~4 ms instead of ~140 ms). Otherwise users are counted.
    """
    from accounts.models import UserProfile

    conditions, needs_profile = _user_conditions(viewer=viewer, q=q, org=org, role=role, source=source,
                                                 state=state, user="user__", profile="")
    if needs_profile:
        return UserProfile.objects.filter(*conditions).order_by().count()
    return user_list(viewer=viewer, q=q, org=org, role=role, source=source, state=state).order_by().count()


def _user_conditions(*, viewer: User, q: str, org: Organization | None, role: Role | None, source: str,
                     state: str, user: str, profile: str) -> tuple[list, bool]:
    """The users list's filters, for a query on users (``user=""``, ``profile="profile__"``) or on
    profiles (``user="user__"``, ``profile=""``): one definition, so a count over profiles
    matches the list. Returns the conditions and whether any of them needs the profile."""
    from django.db.models.functions import Lower
    from django.db.models.lookups import IContains, In

    access = Access.of(viewer)
    scope = access.org_filter("view_directory", f"{profile}org__path")
    conditions: list = [scope]
    needs_profile = bool(scope) or org is not None or bool(source) or (bool(state) and state != "locked")
    if q:
        text = UserSearchText(prefix=user)
        for term in search_terms(q):
            conditions.append(Q(IContains(text, term)))
    if org is not None:
        conditions.append(Q(**{f"{profile}org__path__startswith": org.path}))
    if role is not None:
        conditions.append(Q(**{f"{user}groups": role.group_id}))
    if source:
        kind, _, provider = source.partition(":")
        conditions.append(Q(**{f"{profile}source": kind, f"{profile}source_provider": provider}))
    if state == "locked":  # locked by sign-in throttling (accounts/throttle.py), whatever the state
        from accounts.credentials.service import locked_usernames

        conditions.append(In(Lower(f"{user}username"), locked_usernames()))
    elif state:
        conditions.append(Q(**{f"{profile}state": state}))
    return conditions, needs_profile


MAX_SEARCH_TERMS = 5

# The fields a search word is looked for in, in the order of the search expression (migration
# accounts/0011 indexes exactly this expression; change both together).
SEARCH_FIELDS = ("username", "email", "first_name", "last_name")


class UserSearchText(Func):
    """A user's searchable text: ``SEARCH_FIELDS`` joined by a space, as
    ``username::text || ' ' || email::text || ...`` (on SQLite the same without the casts).

    One trigram GIN index over ``UPPER()`` of this expression (migration ``accounts/0011``) serves
    the users-list search instead of one index per field, which made every user insert maintain
    four GIN indexes (issue 7). A search word never holds whitespace (``search_terms`` splits on
    it), so it can only match inside one field, never across the space between two: matching the
    joined text gives exactly the users that matching any single field gives. The separator is in
    the SQL text, not a parameter, so the query's expression is the index's expression.
    """

    arg_joiner = " || ' ' || "
    template = "(%(expressions)s)"
    output_field = CharField()

    def __init__(self, *, prefix: str = "") -> None:
        super().__init__(*(_AsText(F(f"{prefix}{name}")) for name in SEARCH_FIELDS))


class _AsText(Func):
    """``column::text`` (what the index expression says; a plain column on SQLite)."""

    template = "%(expressions)s::text"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return compiler.compile(self.source_expressions[0])


def search_terms(q: str) -> list[str]:
    """The words of a search box, at most ``MAX_SEARCH_TERMS`` (each must match), duplicates dropped."""
    out: list[str] = []
    for word in (q or "").split():
        if word.lower() not in (w.lower() for w in out):
            out.append(word)
    return out[:MAX_SEARCH_TERMS]


def user_source_choices() -> list[tuple[str, str]]:
    """Sources that own users, as users-list filter choices: the local directory, then each provider
    (a SCIM provider, a directory, an SSO provider creating users) that owns at least one user.

    Sources that own nobody are not offered: a filter that can never match is a dead end.
    """
    from accounts.identity.types import Source
    from accounts.models import UserProfile

    # ``IN`` (not ``<> 'local'``) so the index on source answers it without reading every profile.
    owners = (UserProfile.objects.filter(source__in=[s for s in Source.values if s != Source.LOCAL]).order_by()
              .values_list("source", "source_provider").distinct())
    labels = dict(Source.choices)
    extra = sorted(
        (f"{kind}:{provider}", f"{labels.get(kind, kind)}: {provider}" if provider else labels.get(kind, kind))
        for kind, provider in owners
    )
    return [(Source.LOCAL.value, "Local directory"), *extra]


def user_get(*, viewer: User, user_id: int) -> User | None:
    """One user (with a directory profile) if the viewer may see them."""
    return user_list(viewer=viewer).filter(pk=user_id, profile__isnull=False).first()


def user_roles(user: User) -> list[Role]:
    return list(Role.objects.filter(group__user=user).order_by("name"))


def org_tree(*, viewer: User) -> list[Organization]:
    """Orgs the viewer may see, in tree (path) order, annotated with active user counts."""
    access = Access.of(viewer)
    return list(
        Organization.objects.filter(access.org_filter("view_directory"))
        .annotate(user_count=Count("profiles", filter=Q(profiles__state="active")))
        .order_by("path")
    )


def org_subtree_user_counts(org: Organization) -> dict[str, int]:
    """Users in ``org`` and its sub-orgs by state (plus "total", "here" and "suborgs"), for confirmations."""
    from accounts.models import UserProfile

    by_state = dict(UserProfile.objects.filter(org__path__startswith=org.path).order_by()
                    .values_list("state").annotate(n=Count("pk")))
    counts = {state: by_state.get(state, 0) for state in ("active", "invited", "blocked", "deactivated")}
    counts["total"] = sum(by_state.values())
    counts["not_deactivated"] = counts["total"] - counts["deactivated"]
    counts["here"] = org.profiles.count()
    counts["suborgs"] = Organization.objects.filter(path__startswith=org.path).exclude(pk=org.pk).count()
    return counts


def role_list() -> QuerySet[Role]:
    return Role.objects.select_related("group").prefetch_related("group__permissions").annotate(
        holder_count=Count("group__user")
    )


def audit_event_list(
    *, actor: str = "", action: str = "", target: str = "", date_from: date | None = None,
    date_to: date | None = None, target_type: str = "", target_id: Any = None,
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered."""
    qs = AuditEvent.objects.all()
    if actor:  # a username, or a job / provisioning run id (every event of that run)
        qs = qs.filter(Q(actor_label__icontains=actor) | Q(job_id=actor))
    if action:
        qs = qs.filter(action__startswith=action)
    if target:
        qs = qs.filter(target_label__icontains=target)
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id is not None:
        qs = qs.filter(target_id=str(target_id))
    tz = timezone.get_current_timezone()
    if date_from:
        qs = qs.filter(created_at__gte=timezone.make_aware(datetime.combine(date_from, time.min), tz))
    if date_to:
        qs = qs.filter(created_at__lte=timezone.make_aware(datetime.combine(date_to, time.max), tz))
    return qs.order_by("-created_at", "-id")


SIGN_IN_ACTIONS = ("auth.login_succeeded", "auth.sso_login_succeeded")


def sign_in_history(user: User, *, limit: int = 5) -> list[AuditEvent]:
    """The user's latest successful sign-ins (password or SSO), newest first, from the audit log."""
    return list(AuditEvent.objects.filter(target_type="user", target_id=str(user.pk), action__in=SIGN_IN_ACTIONS)
                .order_by("-created_at", "-id")[:limit])


def audit_target_links(*, viewer: User, events) -> list[AuditEvent]:
    """The events, each with ``target_url``: the page of its user or org when the viewer may open it,
    else ``None`` (shown as plain text: an Audit Log Viewer never follows a link into a 403 or 404);
    and ``run_url``: the provisioning run the event was written in (its ``job_id``), likewise."""
    from django.urls import reverse

    events = list(events)
    access = Access.of(viewer)
    user_ids = {int(e.target_id) for e in events if e.target_type == "user" and str(e.target_id).isdigit()}
    org_ids = {int(e.target_id) for e in events if e.target_type == "org" and str(e.target_id).isdigit()}
    users: set[int] = set()
    orgs: set[int] = set()
    if access.has("view_directory"):
        if user_ids:
            users = set(user_list(viewer=viewer).filter(pk__in=user_ids, profile__isnull=False)
                        .values_list("pk", flat=True))
        if org_ids:
            orgs = set(Organization.objects.filter(access.org_filter("view_directory"), pk__in=org_ids)
                       .values_list("pk", flat=True))
    runs: set[str] = set()
    job_ids = {e.job_id for e in events if e.job_id}
    if job_ids and access.has("manage_identity"):  # the run page needs it
        from provisioning.models import ProvisioningRun

        runs = set(ProvisioningRun.objects.filter(run_id__in=job_ids).values_list("run_id", flat=True))
    for e in events:
        # Events written during a provisioning run link back to the run's journal.
        e.run_url = reverse("provisioning:run_detail", args=[e.job_id]) if e.job_id in runs else None
        pk = int(e.target_id) if str(e.target_id).isdigit() else None
        e.target_url = None
        if e.target_type == "user" and pk in users:
            e.target_url = reverse("accounts:user_detail", args=[pk])
        elif e.target_type == "org" and pk in orgs:
            e.target_url = reverse("accounts:org_detail", args=[pk])
    return events


def users_named(username: str, *, limit: int = 2) -> list[User]:
    """Users whose name is ``username`` once both are compared by ``username_key`` (NFKC, lower case),
    at most ``limit``. More than one means legacy rows made before names were normalised (review F9;
    ``manage.py check --database default`` reports them as idm.W030): callers refuse rather than pick one."""
    if not isinstance(username, str) or not username or "\x00" in username:
        return []  # no username holds NUL, and PostgreSQL refuses one in a query
    key = username_key(username)
    # lower() finds case variants (Unicode on PostgreSQL); PostgreSQL's upper() also pairs "ſam" and
    # "alıce" with "sam" and "alice" (indexed, migration 0002), so such legacy rows are seen too.
    rows = User.objects.select_related("profile__org").annotate(_lu=Lower("username")).filter(
        Q(_lu=key) | Q(username__iexact=normalize_username(username)))
    found = {u.pk: u for u in rows.order_by("pk")[:limit + 3]}
    if not key.isascii() and connection.vendor == "sqlite":  # SQLite's lower() and LIKE fold ASCII only
        found.update((u.pk, u) for u in User.objects.select_related("profile__org")
                     .filter(username__regex=f"(?i)^{re.escape(key)}$").order_by("pk")[:limit + 3])
    return [u for pk, u in sorted(found.items()) if username_key(u.username) == key][:limit]


def user_by_username(username: str) -> User | None:
    """The one user ``username`` names for sign-in and SSO, or ``None`` when nobody or several do."""
    matches = users_named(username)
    return matches[0] if len(matches) == 1 else None
