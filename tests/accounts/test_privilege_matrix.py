"""The privilege matrix (issue 7 §1): every standard role as actor × every standard role as target ×
every sensitive action, through the identity service and through a front door (console views with the
test client, bulk upload for password and email), asserting allowed or refused per the rule.

The expected outcome is derived from the role catalogue, written independently of the implementation:
the actor needs the action's own permission (else refused as out of scope), and then must hold every
non-sign-in permission of the target, globally where the target's role is global; only a Cloud Admin
changes a Cloud Admin. Each test is one actor role against all targets: the directory is built once
per test and every case runs in a savepoint that is rolled back, so the cases never see each other.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import console_actions as services
from accounts.bulk_upload.apply import apply_upload
from accounts.bulk_upload.models import BulkUpload
from accounts.exceptions import IdentityError
from accounts.identity.types import Actor, UserState
from accounts.mfa import flow, totp
from accounts.mfa.models import TotpDevice
from accounts.models import AuditEvent, Role
from accounts.roles import CATALOGUE, CUSTOMER_CLOUD_ADMIN
from sso.models import IdentityProvider
from sso.services import break_glass_set
from tests.accounts.bulk_support import media, upload_text  # noqa: F401

pytestmark = pytest.mark.django_db

SPECS = {spec.slug: spec for spec in CATALOGUE}
ROLES = [spec.slug for spec in CATALOGUE]
ACTIONS = ["password", "email", "username", "block", "deactivate", "roles", "mfa_reset", "break_glass", "move_org"]
SIGN_IN = {"console_access", "desktop_access"}
NEW_PASSWORD = "Brand-New-Pass-77"

# The permission an action needs at all (any one of them), as the console and the service check it.
BASE_PERMS = {
    # Help Desk resets passwords (reset_passwords): a password-only change needs no manage_users.
    "password": {"manage_users", "reset_passwords"}, "email": {"manage_users", "modify_user_profile"}, "username": {"manage_users"},
    "block": {"manage_users"}, "deactivate": {"manage_users"}, "roles": {"assign_roles"},
    "mfa_reset": {"manage_mfa"}, "break_glass": {"manage_identity"}, "move_org": {"manage_users"},
}
# Written outside the identity service: their own service functions leave the base permission to the view.
SERVICE_WITHOUT_BASE_CHECK = {"mfa_reset", "break_glass"}


def dominates(actor: str, target: str) -> bool:
    """The rule, from the catalogue: same org; global target permissions need a global actor role."""
    a, t = SPECS[actor], SPECS[target]
    if target == CUSTOMER_CLOUD_ADMIN:
        return actor == CUSTOMER_CLOUD_ADMIN
    needed = set(t.perms) - SIGN_IN
    if not needed <= set(a.perms):
        return False
    return not (needed and t.scope == "global" and a.scope != "global")


def expected(actor: str, target: str, action: str, *, door: str) -> str:
    base = bool(set(SPECS[actor].perms) & BASE_PERMS[action])
    if door == "service" and action in SERVICE_WITHOUT_BASE_CHECK:
        base = True
    if not base:
        return "out_of_scope"
    return "ok" if dominates(actor, target) else "target_more_privileged"


def test_oracle_matches_the_cases_named_in_the_issue():
    assert expected("org-manager", CUSTOMER_CLOUD_ADMIN, "password", door="console") == "target_more_privileged"
    assert expected("org-manager", CUSTOMER_CLOUD_ADMIN, "block", door="console") == "target_more_privileged"
    assert expected("user-modify", "org-admin", "email", door="console") == "target_more_privileged"
    assert expected("user-modify", CUSTOMER_CLOUD_ADMIN, "email", door="console") == "target_more_privileged"
    assert expected("multi-factor-auth-admin", CUSTOMER_CLOUD_ADMIN, "mfa_reset", door="console") == \
        "target_more_privileged"
    assert expected("identity-management-administrator", CUSTOMER_CLOUD_ADMIN, "break_glass", door="console") == \
        "target_more_privileged"
    assert expected("org-admin", "console-user", "password", door="console") == "ok"
    assert expected("help-desk", "console-user", "password", door="console") == "ok"
    assert expected("help-desk", "org-admin", "password", door="console") == "target_more_privileged"
    assert expected("help-desk", "console-user", "email", door="console") == "out_of_scope"


class _Rollback(Exception):
    pass


def in_savepoint(fn, *args):
    """Run ``fn(*args)`` and roll its writes back; return what it returned."""
    try:
        with transaction.atomic():
            raise _Rollback(fn(*args))
    except _Rollback as done:
        return done.args[0]


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(request, org_factory, user_factory):
    """Acme (> Team), one actor with role ``request.param`` and one target per standard role, all in Acme;
    every target has a confirmed second factor. Plus a spare Cloud Admin, so the last-admin rule never
    decides a case."""
    actor_role = request.param
    acme = org_factory("Acme")
    team = org_factory("Team", parent=acme)
    user_factory("spare.admin", org=acme, roles=[CUSTOMER_CLOUD_ADMIN])
    actor = user_factory("actor", org=acme, roles=[actor_role])
    targets = {slug: user_factory(f"t-{slug}", org=acme, roles=[slug], email=f"t-{slug}@example.com")
               for slug in ROLES}
    TotpDevice.objects.bulk_create([TotpDevice(user=t, secret=totp.new_secret(), confirmed_at=timezone.now())
                                    for t in targets.values()])
    provider = IdentityProvider.objects.create(name="Matrix IdP")
    return {"actor_role": actor_role, "actor": actor, "targets": targets, "acme": acme, "team": team,
            "provider": provider}


def extra_role(target_role: str) -> str:
    """A sign-in role the target does not hold yet: any role admin may hand it out."""
    return "console-user" if target_role == "desktop-user" else "desktop-user"


STATE_KEY = {"block": "state", "deactivate": "state", "move_org": "org", "mfa_reset": "mfa"}


def state_of(user: User, action: str):
    """The one fact ``action`` changes about ``user``, read from the database."""
    key = STATE_KEY.get(action, action)
    if key == "password":
        return User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    if key in ("email", "username"):
        return User.objects.filter(pk=user.pk).values_list(key, flat=True).get()
    if key in ("state", "org"):
        return User.objects.filter(pk=user.pk).values_list(f"profile__{key}", flat=True).get()
    if key == "roles":
        return set(User.objects.get(pk=user.pk).groups.filter(role__isnull=False).values_list("role__slug", flat=True))
    if key == "mfa":
        return TotpDevice.objects.filter(user=user).exists()
    if key == "break_glass":
        return User.objects.get(pk=user.pk).sso_break_glass_for.exists()
    raise AssertionError(action)


def changed(action: str, before, after) -> bool:
    return before != after


# --- through the identity service (and the MFA / break-glass services) ------------------------


def service_action(action: str, actor: Actor, target: User, w: dict) -> None:
    if action == "password":
        services.user_set_password(actor=actor, user=target, password=NEW_PASSWORD)
    elif action == "email":
        services.user_update(actor=actor, user=target, email=f"new.{target.pk}@example.com")
    elif action == "username":
        services.user_update(actor=actor, user=target, username=f"{target.username}-renamed")
    elif action == "block":
        services.user_block(actor=actor, user=target)
    elif action == "deactivate":
        services.user_deactivate(actor=actor, user=target)
    elif action == "roles":
        services.role_assign(actor=actor, user=target, role=extra_role(w["target_role"]))
    elif action == "mfa_reset":
        flow.remove_device(actor=actor, user=target, action="user.mfa_reset")
    elif action == "break_glass":
        break_glass_set(actor=actor, provider=w["provider"], users=[target])
    elif action == "move_org":
        services.user_move(actor=actor, user=target, org_id=w["team"].pk)


def service_case(w: dict, actor: Actor, target: User, action: str) -> tuple[str, bool, bool]:
    before = state_of(target, action)
    events_before = AuditEvent.objects.filter(actor=w["actor"]).count()
    try:
        service_action(action, actor, target, w)
    except IdentityError as exc:
        outcome = exc.code
    else:
        outcome = "ok"
    did_change = changed(action, before, state_of(target, action))
    audited = AuditEvent.objects.filter(actor=w["actor"]).count() > events_before
    return outcome, did_change, audited


@pytest.mark.parametrize("world", ROLES, indirect=True)
def test_matrix_through_the_service(world):
    w = world
    actor = Actor.for_user(w["actor"])
    mismatches = []
    for target_role, target in w["targets"].items():
        w["target_role"] = target_role
        for action in ACTIONS:
            outcome, did_change, wrote_events = in_savepoint(service_case, w, actor, target, action)
            want = expected(w["actor_role"], target_role, action, door="service")
            if outcome != want or did_change != (want == "ok") or wrote_events != (want == "ok"):
                mismatches.append((target_role, action, want, outcome, did_change, wrote_events))
    assert mismatches == [], f"actor {w['actor_role']}: (target, action, expected, got, changed, audited)"


# --- through the front doors ------------------------------------------------------------------


def flashed(response) -> str:
    """Messages queued by a view (redirects have no template context) and form errors, as text."""
    storage = getattr(response.wsgi_request, "_messages", None)
    # The code travels in the message's extra tags ("code:…"); the page shows it only as data-code.
    text = " ".join(f"{m} ({m.extra_tags[5:]})" if m.extra_tags.startswith("code:") else str(m)
                    for m in getattr(storage, "_queued_messages", []))
    context = getattr(response, "context", None)
    if context and context.get("form") is not None:
        text += " " + " ".join(f"{e.message} ({e.code})" for errors in context["form"].errors.as_data().values()
                               for e in errors)
    return text


def console_action(client, action: str, target: User, w: dict):
    pk = target.pk
    if action in ("email", "username"):
        data = {"username": target.username, "email": target.email, "first_name": target.first_name,
                "last_name": target.last_name, "notes": ""}
        data[action] = f"new.{pk}@example.com" if action == "email" else f"{target.username}-renamed"
        return client.post(reverse("accounts:user_edit", args=[pk]), data)
    if action in ("block", "deactivate"):
        return client.post(reverse("accounts:user_state", args=[pk, action]))
    if action == "roles":
        return client.post(reverse("accounts:user_roles", args=[pk]),
                           {"roles": list(Role.objects.filter(slug__in=[w["target_role"], extra_role(w["target_role"])])
                                          .values_list("pk", flat=True))})
    if action == "mfa_reset":
        return client.post(reverse("accounts:user_mfa_reset", args=[pk]))
    if action == "break_glass":
        return client.post(reverse("sso:provider_break_glass", args=[w["provider"].pk]),
                           {"usernames": target.username})
    if action == "move_org":
        return client.post(reverse("accounts:user_move", args=[pk]), {"org": w["team"].pk})
    raise AssertionError(action)


def console_case(client, w: dict, target: User, action: str) -> tuple[int, str, bool]:
    before = state_of(target, action)
    response = console_action(client, action, target, w)
    return response.status_code, flashed(response), changed(action, before, state_of(target, action))


CONSOLE_ACTIONS = [a for a in ACTIONS if a != "password"]  # no console page sets another user's password yet


@pytest.mark.parametrize("world", ROLES, indirect=True)
def test_matrix_through_the_console(world, client):
    w = world
    client.force_login(w["actor"])
    mismatches = []
    for target_role, target in w["targets"].items():
        w["target_role"] = target_role
        for action in CONSOLE_ACTIONS:
            status, text, did_change = in_savepoint(console_case, client, w, target, action)
            want = expected(w["actor_role"], target_role, action, door="console")
            ok = did_change == (want == "ok") and status < 500
            if want == "target_more_privileged":
                if action in ("email", "username"):
                    # The edit form shows both fields disabled, so a posted value is ignored.
                    form = client.get(reverse("accounts:user_edit", args=[target.pk])).context["form"]
                    ok = ok and form.fields[action].disabled and "Nothing to change." in text
                else:
                    ok = ok and "(target_more_privileged)" in text and "can change" in text
            if not ok:
                mismatches.append((target_role, action, want, status, did_change, text[:160]))
    assert mismatches == [], f"actor {w['actor_role']}: (target, action, expected, status, changed, message)"


@pytest.mark.parametrize("world", ROLES, indirect=True)
def test_console_hides_the_actions_it_would_refuse(world, client):
    """The user page shows Block / Deactivate / Move / Assign roles / Reset two-factor only where allowed."""
    w = world
    client.force_login(w["actor"])
    if not SPECS[w["actor_role"]].perms or "view_directory" not in SPECS[w["actor_role"]].perms:
        return  # cannot open user pages at all (covered by the route sweeps)
    mismatches = []
    for target_role, target in w["targets"].items():
        page = client.get(reverse("accounts:user_detail", args=[target.pk])).content.decode()
        shown = {
            "block": reverse("accounts:user_state", args=[target.pk, "block"]) in page,
            "deactivate": reverse("accounts:user_state", args=[target.pk, "deactivate"]) in page,
            "move_org": reverse("accounts:user_move", args=[target.pk]) in page,
            "roles": reverse("accounts:user_roles", args=[target.pk]) in page,
            "mfa_reset": reverse("accounts:user_mfa_reset", args=[target.pk]) in page,
        }
        for action, visible in shown.items():
            if visible != (expected(w["actor_role"], target_role, action, door="console") == "ok"):
                mismatches.append((target_role, action, visible))
        if ("data-privilege-note" in page) == dominates(w["actor_role"], target_role):
            mismatches.append((target_role, "note", "data-privilege-note" in page))
    assert mismatches == []


@pytest.mark.parametrize("world", ROLES, indirect=True)
def test_users_list_offers_bulk_selection_only_for_changeable_users(world, client):
    w = world
    if "manage_users" not in SPECS[w["actor_role"]].perms:
        return
    client.force_login(w["actor"])
    page = client.get(reverse("accounts:user_list"), {"q": "t-"}).content.decode()
    for target_role, target in w["targets"].items():
        box = f'name="ids" value="{target.pk}"' in page
        assert box == dominates(w["actor_role"], target_role), target_role
    # And refused server-side when posted anyway.
    ids = [t.pk for t in w["targets"].values()]
    client.post(reverse("accounts:user_bulk_state"), {"action": "block", "ids": ids, "confirmed": "1"})
    for target_role, target in w["targets"].items():
        blocked = User.objects.get(pk=target.pk).profile.state == UserState.BLOCKED
        assert blocked == dominates(w["actor_role"], target_role), target_role


# --- through bulk upload (password and email columns at scale) --------------------------------


def report_rows(upload) -> dict[str, str]:
    with upload.report.open("rb") as fh:
        return {r["username"]: r["result"] for r in csv.DictReader(io.StringIO(fh.read().decode("utf-8")))}


@pytest.mark.parametrize("column", ["password", "email"])
@pytest.mark.parametrize("world", ROLES, indirect=True)
def test_matrix_through_bulk_upload(world, column, media):  # noqa: F811
    w = world
    lines = ["username," + column]
    for target in w["targets"].values():
        lines.append(f"{target.username},{NEW_PASSWORD if column == 'password' else f'bulk.{target.pk}@example.com'}")
    before = {slug: state_of(t, column) for slug, t in w["targets"].items()}
    upload, _ = upload_text("\n".join(lines) + "\n", user=w["actor"], operation="upsert")
    preview_codes = {e["line"]: e["code"] for e in upload.preview.get("errors", [])}
    upload.apply_mode = BulkUpload.ApplyMode.ALL_VALID
    upload.status = BulkUpload.Status.QUEUED
    upload.save(update_fields=["apply_mode", "status"])
    upload = apply_upload(upload)
    results = report_rows(upload)
    mismatches = []
    for line, (slug, target) in enumerate(w["targets"].items(), start=2):
        want = expected(w["actor_role"], slug, column, door="bulk")
        did_change = changed(column, before[slug], state_of(target, column))
        ok = did_change == (want == "ok")
        if want == "target_more_privileged":
            ok = ok and preview_codes.get(line) == "target_more_privileged" and "can change" in results[target.username]
        if not ok:
            mismatches.append((slug, want, did_change, preview_codes.get(line), results[target.username][:120]))
    assert mismatches == [], f"actor {w['actor_role']}, column {column}"
