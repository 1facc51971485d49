"""Adversarial sweep of every console and bulk-upload route: each persona, GET and POST, with empty,
garbage, oversized and wrong-type input.

For every request: never a 500, never a traceback in the body; anonymous users are sent to sign-in;
a persona without the page's permission (or outside its org scope) gets 403/404/405, never a page.
One test per persona walks all routes (building the small directory once per persona keeps it fast).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.access import Access
from accounts.models import Organization
from tests.accounts.bulk_support import media, upload_text  # noqa: F401

pytestmark = pytest.mark.django_db

NAMESPACES = ("accounts", "bulk")
# Routes anyone may open (the invite page checks its token itself; the two-factor sign-in steps need the
# pending sign-in in the session and send everyone else back to sign-in).
PUBLIC = {"accounts:login", "bulk:invite", "accounts:mfa_verify", "accounts:mfa_enrol",
          "accounts:password_forgot", "accounts:password_reset_confirm", "accounts:invitation_accept"}
# The permission each route needs (``None``: any signed-in console user). ``user_edit`` and
# ``user_confirm_email`` also accept ``modify_user_profile``; see ``expected_allowed``.
PERMS = {
    "accounts:home": None, "accounts:account": None, "accounts:password_change": None,
    "accounts:logout": None, "accounts:mfa_setup": None, "accounts:mfa_disable": None,
    "accounts:user_mfa_reset": "manage_mfa",
    "accounts:user_list": "view_directory", "accounts:user_detail": "view_directory",
    "accounts:user_create": "manage_users", "accounts:user_bulk_state": "manage_users",
    "accounts:user_edit": "manage_users", "accounts:user_confirm_email": "manage_users",
    "accounts:user_move": "manage_users",
    "accounts:user_roles": "assign_roles", "accounts:user_state": "manage_users",
    "accounts:org_list": "view_directory", "accounts:org_detail": "view_directory",
    "accounts:org_create": "manage_orgs", "accounts:org_edit": "manage_orgs", "accounts:org_move": "manage_orgs",
    "accounts:org_settings": "manage_orgs", "accounts:org_action": "manage_orgs",
    "accounts:role_list": "view_directory", "accounts:role_detail": "view_directory",
    "accounts:audit_list": "view_audit_log", "accounts:audit_export": "view_audit_log",
    "bulk:start": "manage_users", "bulk:export": "view_directory", "bulk:template": "manage_users",
    "bulk:detail": "manage_users", "bulk:confirm": "manage_users", "bulk:cancel": "manage_users",
    "bulk:status": "manage_users", "bulk:report": "manage_users", "bulk:invitations_csv": "manage_users",
    "bulk:invitations_send": "manage_users",
    "accounts:required_password": None, "accounts:recovery_codes": None,
    # Credential actions: reset_passwords or manage_users (see CREDENTIAL_ROUTES).
    "accounts:user_reset_link": "reset_passwords", "accounts:user_temporary_password": "reset_passwords",
    "accounts:user_invitation": "reset_passwords", "accounts:user_required_actions": "reset_passwords",
    "accounts:user_unlock": "reset_passwords",
    # Sessions: oneself, or reset_passwords / manage_users on the user (see SESSION_ROUTES).
    "accounts:user_session_end": "reset_passwords", "accounts:user_sessions_end_all": "reset_passwords",
}
CREDENTIAL_ROUTES = {name for name, perm in PERMS.items() if perm == "reset_passwords"}
# Routes whose object belongs to the upload's creator (everyone else but global managers gets 404).
UPLOAD_ROUTES = {"bulk:detail", "bulk:confirm", "bulk:cancel", "bulk:status", "bulk:report",
                 "bulk:invitations_csv", "bulk:invitations_send"}
# POSTs that change the session or the sweep itself; tested on their own.
SKIP_POST = {"accounts:logout", "accounts:login"}

HUGE = "x" * 20_000
NUL = "a\x00b"
UNICODE = "Zoë 💥 \u202e١٢ ²"
# Query strings that must not break any page (each alone: one bad value must not hide another).
GARBAGE_QUERIES = [
    {"page": "-1"}, {"page": "abc"}, {"page": "999999"}, {"page": "1e9"}, {"page": "²"},
    {"sort": "evil"}, {"sort": "-"}, {"org": "999999"}, {"org": "abc"}, {"org": "²"}, {"org": NUL},
    {"role": "nope"}, {"role": NUL}, {"state": "evil"}, {"source": NUL}, {"show": "evil"},
    {"q": HUGE}, {"q": NUL}, {"q": UNICODE}, {"actor": NUL, "target": HUGE, "action": UNICODE},
    {"date_from": "notadate", "date_to": "2024-13-45"}, {"date_from": "9999-12-31", "date_to": "0001-01-01"},
    {"date_from": "0001-01-01", "date_to": "9999-12-31"}, {"next": "//evil.example"}, {"next": NUL},
]
# Every garbage value at once (the first of each name).
KITCHEN_SINK = {k: v for query in reversed(GARBAGE_QUERIES) for k, v in query.items()}
# Routes that read the query string (grep request.GET in the views).
QUERY_ROUTES = {"accounts:user_list", "accounts:user_create", "accounts:org_list", "accounts:role_detail",
                "accounts:audit_list", "accounts:audit_export", "bulk:export", "accounts:login"}
GARBAGE_POST = {
    "username": HUGE, "email": NUL, "first_name": UNICODE, "last_name": "", "password": HUGE,
    "org": ["999999", "abc"], "roles": ["abc", "999999", "²", NUL], "notes": NUL, "ids": ["abc", "-1", "²",
    "99999999999999999999", NUL], "action": "block", "name": NUL, "external_ref": HUGE, "parent": "abc",
    "auth_method": "evil", "auth_provider": "²", "default_roles": ["abc", "999999"], "roles_inherit": "maybe",
    "two_factor_required": NUL, "mode": "evil", "operation": "evil", "file": "not-a-file", "next": "//evil.example",
    "old_password": NUL, "new_password1": HUGE, "new_password2": HUGE, "password1": NUL, "password2": NUL,
}
TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/', "Exception Value", "django/core/handlers")


@pytest.fixture(autouse=True)
def quiet_request_log():
    """Thousands of expected 403/404/405s: don't format a logged traceback for each (500s fail by status)."""
    loggers = [logging.getLogger(name) for name in ("django.request", "django.security")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    yield
    for lg, level in zip(loggers, levels, strict=True):
        lg.setLevel(level)


@dataclass
class World:
    personas: dict[str, User | None]
    users: dict[str, User]
    orgs: dict[str, Organization]
    upload_id: uuid.UUID


@pytest.fixture
def world(directory, role_personas, media) -> World:  # noqa: F811
    d = directory
    personas = role_personas
    upload, _ = upload_text("username,email\nrobust.one,one@example.com\n", user=d.admin, org=d.acme)
    return World(
        personas=personas,
        users={"in_scope": d.eng_user, "out_of_scope": d.sales_user},
        orgs={"in_scope": d.engineering, "out_of_scope": d.sales},
        upload_id=upload.pk,
    )


def route_names() -> list[tuple[str, URLPattern]]:
    """Every named route of the console and bulk-upload URLconfs, enumerated from the resolver."""
    out = []
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in NAMESPACES:
            for pattern in entry.url_patterns:
                assert isinstance(pattern, URLPattern) and pattern.name, pattern
                out.append((f"{entry.namespace}:{pattern.name}", pattern))
    return out


def test_every_route_has_an_expectation():
    names = {name for name, _ in route_names()}
    assert names == set(PERMS) | PUBLIC


@dataclass
class Target:
    url: str
    name: str
    org: Organization | None  # the org the object lives in (scope checks); None: not org-bound
    exists: bool
    params: dict


def targets(world: World) -> list[Target]:
    """Each route with its path parameters filled: an in-scope object, an out-of-scope one, a missing one."""
    out = []
    for name, pattern in route_names():
        keys = list(pattern.pattern.converters)
        if not keys:
            out.append(Target(reverse(name), name, None, True, {}))
            continue
        variants: list[tuple[dict, Organization | None, bool]] = []
        if "uidb64" in keys:
            variants = [({"uidb64": "MTIz", "token": "bad-token"}, None, False),
                        ({"uidb64": "%%%", "token": "x" * 300}, None, False),
                        ({"uidb64": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "token": "a-b"}, None, False)]
        elif "operation" in keys:
            variants = [({"operation": "upsert"}, None, True), ({"operation": "evil"}, None, False)]
        elif name.startswith("bulk:"):
            variants = [({"pk": world.upload_id}, None, True), ({"pk": uuid.uuid4()}, None, False)]
        elif name == "accounts:role_detail":
            variants = [({"slug": "org-admin"}, None, True), ({"slug": "nope"}, None, False)]
        else:
            objs = world.users if name.startswith("accounts:user_") else world.orgs
            for scope, obj in objs.items():
                org = obj.profile.org if isinstance(obj, User) else obj
                variants.append(({"pk": obj.pk}, org, scope == "in_scope"))
            variants.append(({"pk": 999999}, None, False))
            if "session_id" in keys:
                variants = [({**p, "session_id": 999999}, o, e) for p, o, e in variants]
            if "action" in keys:
                actions = ["block", "evil"] if name == "accounts:user_state" else ["deactivate", "evil"]
                variants = [({**p, "action": a}, o, e and a != "evil") for p, o, e in variants for a in actions]
        for params, org, exists in variants:
            out.append(Target(reverse(name, kwargs=params), name, org, exists, params))
    return out


def expected_allowed(user: User | None, target: Target) -> bool:
    """May ``user`` use this route on this object (as the console's rules say)?"""
    if target.name in PUBLIC:
        return True
    if user is None:
        return False
    access = Access(user)
    perm = PERMS[target.name]
    if perm is None:
        return access.has("console_access")
    if target.name in ("accounts:user_edit", "accounts:user_confirm_email"):
        ok = any(access.can(p, target.org) if target.org else access.has(p)
                 for p in ("manage_users", "modify_user_profile"))
        return ok and (target.org is None or access.can("view_directory", target.org))
    if target.name in CREDENTIAL_ROUTES:
        ok = any(access.can(p, target.org) if target.org else access.has(p)
                 for p in ("reset_passwords", "manage_users"))
        return ok and (target.org is None or access.can("view_directory", target.org))
    if target.name in UPLOAD_ROUTES:
        return access.is_global("manage_users")  # the upload was made by the Cloud Admin
    if target.org is not None:
        return access.can("view_directory", target.org) and access.can(perm, target.org)
    return access.has(perm)


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def check(problems: list[str], label: str, response, *, allowed: bool, anonymous: bool, target: Target,
          method: str) -> None:
    status = response.status_code
    body = body_of(response)
    if status >= 500:
        problems.append(f"{label}: {status}")
        return
    if any(marker in body for marker in TRACEBACK_MARKERS):
        problems.append(f"{label}: traceback text in body")
    if target.name in PUBLIC:
        return
    if anonymous:
        if target.name == "accounts:logout" and method == "GET" and status == 405:
            return  # sign-out is POST only, for everyone
        if status == 400 and len(response.request["QUERY_STRING"]) > 8000:
            return  # Django refuses a sign-in redirect longer than 16 KiB (DisallowedRedirect): a clear 400
        if status != 302 or not response["Location"].startswith(reverse("accounts:login")):
            problems.append(f"{label}: anonymous got {status}, not a redirect to sign-in")
        return
    if not allowed and status not in (403, 404, 405):
        problems.append(f"{label}: forbidden persona got {status}")
    if allowed and target.exists and method == "GET" and status not in (200, 302, 405):
        problems.append(f"{label}: allowed persona got {status}")


PERSONAS = ["anonymous", "console_user", "desktop_user", "audit_viewer", "help_desk", "org_admin", "org_manager",
            "cloud_admin"]


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_route_refuses_or_survives_bad_input(persona, world):
    user = world.personas[persona]
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    problems: list[str] = []
    for target in targets(world):
        allowed = expected_allowed(user, target)
        # Every route gets a clean GET and one with every garbage parameter at once; the routes that read
        # the query string get each garbage value alone too (one bad value must not hide another).
        queries = [{}, KITCHEN_SINK]
        if target.name in QUERY_ROUTES and (allowed or target.name in ("accounts:user_list", "accounts:audit_list")):
            queries += GARBAGE_QUERIES
        for query in queries:
            response = client.get(target.url, query)
            check(problems, f"GET {target.url} {query!r:.60}", response, allowed=allowed,
                  anonymous=user is None, target=target, method="GET")
        if target.name in SKIP_POST:
            continue
        for data in ({}, GARBAGE_POST):
            response = client.post(target.url, data)
            check(problems, f"POST {target.url} {'garbage' if data else 'empty'}", response, allowed=allowed,
                  anonymous=user is None, target=target, method="POST")
    assert not problems, "\n".join(problems[:60])


@pytest.mark.parametrize("persona", ["anonymous", "console_user", "cloud_admin"])
def test_sign_in_and_sign_out_survive_garbage(persona, world):
    user = world.personas[persona]
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    login = reverse("accounts:login")
    for data in ({}, {"username": HUGE}, {"username": NUL, "password": NUL}, {"username": UNICODE, "step": "evil"},
                 {"username": "admin", "password": HUGE, "next": "//evil.example"}):
        for method in ("get", "post"):
            response = getattr(client, method)(login, data)
            assert response.status_code < 500, (method, data)
            assert "Traceback" not in body_of(response), (method, data)
    response = client.post(reverse("accounts:logout"), {"next": NUL})
    assert response.status_code in (200, 302)
    assert "_auth_user_id" not in client.session


def test_post_only_routes_refuse_get(world):
    client = Client(raise_request_exception=False)
    client.force_login(world.personas["cloud_admin"])
    for name, kwargs in (("accounts:user_bulk_state", {}), ("accounts:logout", {}), ("accounts:mfa_disable", {}),
                         ("accounts:user_mfa_reset", {"pk": world.users["in_scope"].pk}),
                         ("bulk:confirm", {"pk": world.upload_id}), ("bulk:cancel", {"pk": world.upload_id}),
                         ("bulk:invitations_send", {"pk": world.upload_id})):
        assert client.get(reverse(name, kwargs=kwargs)).status_code == 405, name


def test_sign_in_username_step_survives_nul_bytes(world):
    """PostgreSQL refuses NUL in a query: the username step must not look one up."""
    client = Client(raise_request_exception=False)
    response = client.post(reverse("accounts:login"), {"username": NUL})
    assert response.status_code in (200, 400)  # the password step (as for unknown users) or "enter a username"


def test_users_export_keeps_the_lists_org_and_role_filters(world, directory):
    """The list's "Export CSV" link passes its query: the file holds the users the list shows, no more."""
    client = Client(raise_request_exception=False)
    client.force_login(directory.admin)
    query = {"org": directory.engineering.pk, "role": "org-admin"}
    listed = {u.username for u in client.get(reverse("accounts:user_list"), query).context["page"]}
    lines = b"".join(client.get(reverse("bulk:export"), query).streaming_content).decode().splitlines()
    assert listed == {"eng.admin"} and {line.split(",")[0] for line in lines[1:]} == listed


def test_oversized_sign_in_post_gets_the_friendly_400_page(client, db, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    from django.test import Client

    response = Client(raise_request_exception=False).post(
        "/sign-in/", {f"f{i}": "x" for i in range(20)})
    assert response.status_code == 400
    body = response.content.decode()
    assert "could not be understood" in body and "Traceback" not in body
