"""Shared fixtures for the console view tests: a small directory with scoped admins.

Import the fixtures by name in a test module (``from tests.accounts.console_support import directory``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User

from accounts.models import Organization


@pytest.fixture(autouse=False)
def fast_hasher(settings):
    """Hash passwords quickly: most view tests create several users with passwords."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Directory:
    acme: Organization
    engineering: Organization
    platform: Organization
    sales: Organization
    admin: User
    eng_admin: User
    auditor: User
    member: User
    eng_user: User
    platform_user: User
    sales_user: User


@pytest.fixture
def directory(fast_hasher, org_factory, user_factory, admin_user) -> Directory:
    """Acme > Engineering > Platform, Acme > Sales; an Org Admin of Engineering, an auditor, plain users."""
    acme = org_factory("Acme")
    engineering = org_factory("Engineering", parent=acme)
    platform = org_factory("Platform", parent=engineering)
    sales = org_factory("Sales", parent=acme)
    return Directory(
        acme=acme, engineering=engineering, platform=platform, sales=sales, admin=admin_user,
        eng_admin=user_factory("eng.admin", org=engineering, roles=["org-admin"]),
        auditor=user_factory("auditor", org=acme, roles=["audit-log-viewer"]),
        member=user_factory("member", org=acme),
        eng_user=user_factory("eng.user", org=engineering, first_name="Erin", last_name="Engineer"),
        platform_user=user_factory("plat.user", org=platform),
        sales_user=user_factory("sales.user", org=sales, first_name="Sam", last_name="Seller"),
    )


def login(client, user) -> None:
    client.force_login(user)


def error_codes(response, field: str | None = None) -> set[str]:
    """Error codes of the form in the response context (``None``: all fields)."""
    form = response.context["form"]
    data = form.errors.as_data()
    out = set()
    for name, errors in data.items():
        if field is None or name == field:
            out |= {e.code for e in errors}
    return out


def messages_of(response) -> list[str]:
    """Message texts, each followed by its error code in brackets when it has one (the page shows the
    code only as ``data-code``, not to people)."""
    if not response.context:
        return []
    return [f"{m} ({m.extra_tags[5:]})" if m.extra_tags.startswith("code:") else str(m)
            for m in response.context["messages"]]


@pytest.fixture
def role_personas(directory, user_factory) -> dict:
    """One signed-in user per kind of access (plus ``anonymous``), for the route sweeps."""
    d = directory
    return {
        "anonymous": None,
        "console_user": d.member,  # the org's default roles: Console User + Desktop User
        "desktop_user": user_factory("desk.only", org=d.acme, roles=["desktop-user"]),
        "audit_viewer": d.auditor,
        "help_desk": user_factory("helpdesk", org=d.acme, roles=["help-desk"]),
        "org_admin": d.eng_admin,  # Org Admin of the Engineering sub-org
        "org_manager": user_factory("eng.manager", org=d.engineering, roles=["org-manager"]),
        "identity_admin": user_factory("idm.admin", org=d.acme, roles=["identity-management-administrator"]),
        "cloud_admin": d.admin,
    }
