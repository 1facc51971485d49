"""Read paths for the console: users, orgs, roles and audit events, scoped to what the viewer may see."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.access import Access
from accounts.models import AuditEvent, Organization, Role

USER_SORTS = {
    "username": "username",
    "-username": "-username",
    "name": "last_name",
    "-name": "-last_name",
    "email": "email",
    "-email": "-email",
    "created": "profile__created_at",
    "-created": "-profile__created_at",
    "org": "profile__org__name",
    "-org": "-profile__org__name",
}


def user_list(
    *, viewer: User, q: str = "", org: Organization | None = None, role: Role | None = None,
    source: str = "", state: str = "", sort: str = "username",
) -> QuerySet[User]:
    """Users the viewer may see, filtered and sorted. Sub-orgs are included in the org filter.

    Search is a prefix match on username, email, first and last name (indexable), which stays fast
    at 100k users; sorting always ends with the primary key so pagination is stable.
    """
    access = Access.of(viewer)
    # Users without a profile (made by ``createsuperuser``) are listed too: not joining profiles
    # unless a filter needs them lets PostgreSQL walk the username index for the default order.
    qs = User.objects.filter(access.org_filter("view_directory", "profile__org__path"))
    if q:
        q = q.strip()
        qs = qs.filter(
            Q(username__istartswith=q) | Q(email__istartswith=q) | Q(first_name__istartswith=q)
            | Q(last_name__istartswith=q)
        )
    if org is not None:
        qs = qs.filter(profile__org__path__startswith=org.path)
    if role is not None:
        qs = qs.filter(groups=role.group_id)
    if source:
        qs = qs.filter(profile__source=source)
    if state == "locked":  # locked by sign-in throttling (accounts/throttle.py), whatever the state
        from accounts.credentials.service import locked_users

        qs = locked_users(qs)
    elif state:
        qs = qs.filter(profile__state=state)
    order = USER_SORTS.get(sort, "username")
    return qs.select_related("profile", "profile__org").order_by(order, "pk")


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
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
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
