"""Who may do what, where: role permissions with their org scope.

A role's permissions apply everywhere (``scope=global``) or in the holder's own org subtree
(``scope=org``). ``Access`` answers "may this user use permission P on org O" and gives the query
filter for lists, so pages hide what a user may not use and views refuse it server-side.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.db.models import Q

from accounts.permissions import ALL_PERMS, CUSTOMER_CLOUD_ADMIN, SIGN_IN_PERMS  # never roles.py: no cycle


class Access:
    """Permissions of one user: ``perm -> None`` (everywhere) or a set of org paths (those subtrees)."""

    def __init__(self, user):
        self.user = user
        self.grants: dict[str, set[str] | None] = {}
        self.role_slugs: set[str] = set()
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return
        if user.is_superuser:
            self.grants = {perm: None for perm in ALL_PERMS}
            self.role_slugs = {CUSTOMER_CLOUD_ADMIN}
            return
        from accounts.models import Role, UserProfile

        # Two small queries per request (the org path; each held role's permissions), not five
        # (profile, org, roles, groups, permissions): every console page builds an Access.
        own_path = UserProfile.objects.filter(user=user).values_list("org__path", flat=True).first()
        rows = Role.objects.filter(group__user=user).values_list("slug", "scope", "group__permissions__codename")
        for slug, scope, codename in rows:
            self.role_slugs.add(slug)
            if codename is None:  # a role without permissions
                continue
            current = self.grants.get(codename, set())
            if scope == Role.Scope.GLOBAL or current is None:
                self.grants[codename] = None
            elif own_path:
                current.add(own_path)
                self.grants[codename] = current

    @classmethod
    def of(cls, user) -> Access:
        """The (per-request cached) access of ``user``."""
        cached = getattr(user, "_idm_access", None)
        if cached is None:
            cached = cls(user)
            try:
                user._idm_access = cached
            except AttributeError:  # AnonymousUser is fine to recompute
                pass
        return cached

    @property
    def is_cloud_admin(self) -> bool:
        return CUSTOMER_CLOUD_ADMIN in self.role_slugs

    def has(self, perm: str) -> bool:
        """May the user use ``perm`` anywhere at all (to show a menu entry)?"""
        return perm in self.grants

    def is_global(self, perm: str) -> bool:
        return perm in self.grants and self.grants[perm] is None

    def can(self, perm: str, org) -> bool:
        """May the user use ``perm`` on ``org`` (an Organization)?"""
        if perm not in self.grants:
            return False
        paths = self.grants[perm]
        return paths is None or any(org.path.startswith(p) for p in paths)

    def org_filter(self, perm: str, field: str = "path") -> Q:
        """A ``Q`` limiting a queryset to the orgs where ``perm`` applies (``field`` is the path lookup)."""
        if perm not in self.grants:
            return Q(pk__in=[])
        paths = self.grants[perm]
        if paths is None:
            return Q()
        return reduce(or_, (Q(**{f"{field}__startswith": p}) for p in paths))

    def can_assign_role(self, role) -> bool:
        """Roles an actor may grant: never more than they hold, and only Cloud Admins grant Cloud Admin."""
        if "assign_roles" not in self.grants:
            return False
        if self.is_cloud_admin:
            return True
        if role.slug == CUSTOMER_CLOUD_ADMIN:
            return False
        # Sign-in permissions carry no power over others: any role admin may hand out the
        # Console User / Desktop User roles even without holding them.
        role_perms = {p.codename for p in role.group.permissions.all()} - SIGN_IN_PERMS
        if not role_perms <= set(self.grants):
            return False
        # A global role acts in every org: only someone who holds all of its permissions
        # everywhere may hand it out (an Org Admin must not create a cross-org Help Desk).
        if role.scope == "global" and not all(self.is_global(p) for p in role_perms):
            return False
        return True
