"""The permission codenames and the built-in role slugs: plain constants with no imports, so
``access.py`` (who may do what), ``roles.py`` (the catalogue and its seeding) and
``identity/orgs.py`` can all use them without importing one another in a cycle."""

from __future__ import annotations

CUSTOMER_CLOUD_ADMIN = "customer-cloud-admin"
CONSOLE_USER = "console-user"
DESKTOP_USER = "desktop-user"
DEFAULT_ROLE_SLUGS = (CONSOLE_USER, DESKTOP_USER)

ALL_PERMS = (
    "console_access",
    "desktop_access",
    "view_directory",
    "manage_users",
    "modify_user_profile",
    "assign_roles",
    "manage_orgs",
    "reset_passwords",
    "view_audit_log",
    "manage_identity",
    "manage_mfa",
)
# Permissions that only let the holder sign in: they carry no power over other users.
SIGN_IN_PERMS = frozenset({"console_access", "desktop_access"})
