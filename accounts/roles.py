"""The standard role catalogue (code42-features.md §3) and the default organization.

``seed_roles()`` is idempotent and runs after every ``migrate`` (see ``signals.py``), so a fresh
database, a test database and a production upgrade all have the same catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from accounts.permissions import (  # noqa: F401 - re-exported: the catalogue's names
    ALL_PERMS,
    CONSOLE_USER,
    CUSTOMER_CLOUD_ADMIN,
    DEFAULT_ROLE_SLUGS,
    DESKTOP_USER,
)

DEFAULT_ORG_NAME = "Default Organization"


@dataclass(frozen=True)
class RoleSpec:
    slug: str
    name: str
    scope: str
    perms: tuple[str, ...]
    description: str
    is_admin_role: bool = False


CATALOGUE: tuple[RoleSpec, ...] = (
    RoleSpec(CUSTOMER_CLOUD_ADMIN, "Customer Cloud Admin", "global", ALL_PERMS,
             "Every permission in every organization. Assign sparingly.", True),
    RoleSpec("identity-management-administrator", "Identity Management Administrator", "global",
             ("console_access", "view_directory", "manage_identity"),
             "Configures SSO identity providers, SCIM provisioning and directory sync.", True),
    RoleSpec("cross-org-admin", "Cross Org Admin", "global",
             ("console_access", "view_directory", "manage_users", "modify_user_profile", "assign_roles",
              "manage_orgs", "reset_passwords"),
             "Manages users, roles and organizations in all organizations.", True),
    RoleSpec("org-admin", "Org Admin", "org",
             ("console_access", "view_directory", "manage_users", "modify_user_profile", "assign_roles",
              "manage_orgs", "reset_passwords"),
             "Manages users, roles and sub-organizations in their own organization subtree.", True),
    RoleSpec("org-manager", "Org Manager", "org",
             ("console_access", "view_directory", "manage_users", "modify_user_profile"),
             "Manages users (not roles) in their own organization subtree.", True),
    RoleSpec("help-desk", "Help Desk", "global",
             ("console_access", "view_directory", "reset_passwords"),
             "Looks up users and sends password resets in all organizations."),
    RoleSpec("user-modify", "User Modify", "org",
             ("console_access", "view_directory", "modify_user_profile"),
             "Edits user profile fields (names, email, notes) in their own organization subtree."),
    RoleSpec("audit-log-viewer", "Audit Log Viewer", "global",
             ("console_access", "view_audit_log"),
             "Views and exports the audit log."),
    RoleSpec("multi-factor-auth-admin", "Multi-Factor Auth Admin", "global",
             ("console_access", "view_directory", "manage_mfa"),
             "Manages two-factor authentication settings."),
    RoleSpec(CONSOLE_USER, "Console User", "org", ("console_access",),
             "Signs in to the console to see their own account (default role)."),
    RoleSpec(DESKTOP_USER, "Desktop User", "org", ("desktop_access",),
             "Signs in to the desktop app (default role)."),
)


def _permissions() -> dict[str, Permission]:
    from accounts.models import Organization

    content_type = ContentType.objects.get_for_model(Organization)
    # Custom Meta.permissions are created by a post_migrate handler of auth; make sure they exist
    # even when this runs first.
    existing = {p.codename: p for p in Permission.objects.filter(content_type=content_type)}
    labels = dict(Organization._meta.permissions)
    for codename in ALL_PERMS:
        if codename not in existing:
            existing[codename] = Permission.objects.create(
                content_type=content_type, codename=codename, name=labels[codename]
            )
    return existing


def _audit_seeded_change(role, old: set[str], new: set[str]) -> None:
    from accounts.identity.audit import record_event
    from accounts.identity.types import Actor

    record_event(actor=Actor.system("seed_roles"), action="role.permissions_changed", target_type="role",
                 target_id=role.pk, target_label=role.name, field="permissions", old=sorted(old), new=sorted(new),
                 message=f"Built-in role updated to this release's catalogue: added {sorted(new - old) or 'none'}, "
                         f"removed {sorted(old - new) or 'none'}.")


@transaction.atomic
def seed_roles() -> None:
    """Create or refresh the built-in roles and the default organization (idempotent)."""
    from accounts.identity import orgs
    from accounts.models import Organization, Role

    perms = _permissions()
    for spec in CATALOGUE:
        role = Role.objects.filter(slug=spec.slug).select_related("group").first()
        if role is None:
            group, _ = Group.objects.get_or_create(name=f"role:{spec.slug}")
            role = Role.objects.create(
                slug=spec.slug, name=spec.name, scope=spec.scope, description=spec.description,
                is_admin_role=spec.is_admin_role, builtin=True, group=group,
            )
            role.group.permissions.set([perms[p] for p in spec.perms])
        elif role.builtin:
            # Keep built-in roles in line with the catalogue when it changes between releases, and
            # leave a record when that changes what a role may do (issue 7 §5).
            old = set(role.group.permissions.values_list("codename", flat=True))
            if old != set(spec.perms):
                role.group.permissions.set([perms[p] for p in spec.perms])
                _audit_seeded_change(role, old, set(spec.perms))

    if not Organization.objects.exists():
        root = orgs.create_root_org(name=DEFAULT_ORG_NAME)
        # The top-level org has no parent to inherit from: it starts with the catalogue defaults.
        root.default_roles.set(Role.objects.filter(slug__in=DEFAULT_ROLE_SLUGS))
