"""Who may administer a provisioning source: the outside review's reproductions (F1a, F1b, F2, F5, F10)
through the real console views and SCIM over HTTP (``provisioning.policy``)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.identity.orgs import OrgIndex
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import AuditEvent
from provisioning.inbound import SourceUser, apply_source_users
from provisioning.models import JournalEntry, MappingRule, ProvisioningRun, Source
from provisioning.resolve import resolve_org
from provisioning.rules import OrgTarget, SourceRecord
from provisioning.scim.models import ScimToken
from tests.provisioning.scim.conftest import ScimClient

pytestmark = pytest.mark.django_db
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
TOKEN = re.compile(r'<code id="scim-token">(idm_scim_[A-Za-z0-9_-]+)</code>')


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def ima(user_factory):
    """Identity Management Administrator: manage_identity (and view_directory) only."""
    return user_factory("ivan.identity", roles=["identity-management-administrator"])


@pytest.fixture
def ima_client(ima) -> Client:
    return _client(ima)


@pytest.fixture
def sales(org_factory):
    return org_factory("Sales")


def _grant_by_hand(admin_user, user, *slugs):
    apply_identity_change(change=IdentityChange(user_id=user.pk, mode=Mode.UPDATE, roles_add=frozenset(slugs)),
                          actor=Actor.for_user(admin_user))


def _scim_user(scim, username, **extra):
    response = scim.post("/Users", {"schemas": [USER, ENTERPRISE], "userName": username,
                                    "emails": [{"value": f"{username}@corp.example", "primary": True}], **extra})
    assert response.status_code == 201, response.doc
    return response.doc["id"]


def _source_post(source: Source, **fields) -> dict:
    data = {"name": source.name, "enabled": "on", "adopt_by": "username", "org_mode": source.org_mode,
            "fixed_org": source.fixed_org_id or "", "grace_minutes": "15"}
    data.update(fields)
    return data


# F1a -------------------------------------------------------------------------------------------


def test_f1a_ima_cannot_rotate_token_of_provider_owning_a_hand_made_admin(ima_client, admin_user, provider, scim):
    """F1a (rotate step): a provider one of whose users holds Cross Org Admin by hand acts with
    those powers; an IMA (manage_identity only) may not take its token, and the console hides it."""
    source, _ = provider
    _scim_user(scim, "trent2")
    from django.contrib.auth.models import User
    _grant_by_hand(admin_user, User.objects.get(username="trent2"), "cross-org-admin")

    response = ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "24"})
    html = response.content.decode()
    assert response.status_code == 403 and TOKEN.search(html) is None
    assert "source_more_privileged" in html and "Only a Customer Cloud Admin can rotate the token of" in html
    assert ScimToken.objects.filter(source=source).count() == 1
    assert not AuditEvent.objects.filter(action="scim_token_rotated").exists()
    page = ima_client.get("/provisioning/scim/").content.decode()
    assert f"/provisioning/scim/{source.pk}/rotate/" not in page and 'data-code="source_more_privileged"' in page
    assert ima_client.post(f"/provisioning/scim/{source.pk}/toggle/").status_code == 302
    source.refresh_from_db()
    assert source.enabled is True  # disabling is refused too


def test_f1a_cloud_admin_and_ima_of_a_plain_provider_may_rotate(admin_client, ima_client, provider, scim):
    """F1a: the check refuses only what the actor lacks: plain users (sign-in roles) block nobody."""
    source, _ = provider
    _scim_user(scim, "plain.user")
    assert TOKEN.search(ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
                        .content.decode())
    assert TOKEN.search(admin_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
                        .content.decode())


def test_f1a_provider_cannot_take_over_a_user_with_a_hand_granted_admin_role(admin_user, provider, scim):
    """F1a (PATCH step, second layer): even with a valid token the provider may not change the email,
    username or state of a user holding a role with powers it did not grant; journaled "refused"."""
    source, _ = provider
    uid = _scim_user(scim, "trent2")
    from django.contrib.auth.models import User
    trent = User.objects.get(username="trent2")
    _grant_by_hand(admin_user, trent, "cross-org-admin")

    response = scim.patch(f"/Users/{uid}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "emails", "value": [{"value": "pwn@attacker.example", "primary": True}]}]})
    assert response.status_code in (400, 403), response.doc  # refused (the SCIM mapping picks the status)
    assert "may not change the email" in response.doc["detail"]
    trent.refresh_from_db()
    assert trent.email == "trent2@corp.example"
    rename = {"op": "replace", "path": "userName", "value": "trent.new"}
    assert scim.patch(f"/Users/{uid}", {"schemas": [PATCH], "Operations": [rename]}).status_code in (400, 403)
    # active=false goes through the lifecycle (block, then deactivate): the block is refused too.
    # (The SCIM answer to that is review F4's business, not asserted here.)
    scim.patch(f"/Users/{uid}", {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active",
                                                                         "value": False}]})
    trent.refresh_from_db()
    assert (trent.username, trent.is_active, trent.profile.state) == ("trent2", True, "active")
    # Names are not sign-in fields: the provider keeps managing them.
    assert scim.patch(f"/Users/{uid}", {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "name.givenName", "value": "Trent"}]}).status_code == 200


def test_f1a_source_run_journals_the_refused_takeover(admin_user, provider, scim):
    """F1a: the same refusal in a source run (directory sync, SCIM) is journaled "refused" with its code.
    (A SCIM request that fails rolls its run back with it: the request log keeps the error.)"""
    source, _ = provider
    uid = _scim_user(scim, "trent2")
    from django.contrib.auth.models import User
    _grant_by_hand(admin_user, User.objects.get(username="trent2"), "cross-org-admin")
    run = apply_source_users(source=source, users=[SourceUser(
        external_id=uid, record=SourceRecord.build(attributes={"userName": "trent2"}), username="trent2",
        email="pwn@attacker.example")])
    entry = run.entries.get(result=JournalEntry.Result.REFUSED)
    assert (entry.code, entry.user_label) == ("role_not_from_source", "trent2")
    assert User.objects.get(username="trent2").email == "trent2@corp.example"


# F1b -------------------------------------------------------------------------------------------


def test_f1b_ima_cannot_move_a_source_with_admin_rules(admin_client, ima_client, provider, sales, root_org):
    """F1b: with a rule granting Org Manager, only a Cloud Admin changes where the source puts users
    (the IMA pointing it at the root org is refused) or whom it adopts."""
    source, _ = provider
    assert admin_client.post(f"/provisioning/sources/{source.pk}/edit/",
                             _source_post(source, fixed_org=sales.pk)).status_code == 302
    assert admin_client.post(f"/provisioning/sources/{source.pk}/rules/", {
        "kind": "role", "position": "0", "condition": "member_of_group", "value": "Sales Managers",
        "roles": "org-manager", "save": "1"}).status_code == 302
    source.refresh_from_db()

    response = ima_client.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(source, fixed_org=root_org.pk))
    assert response.status_code == 200 and 'data-code="source_needs_cloud_admin"' in response.content.decode()
    response = ima_client.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(source, adoption_enabled="on"))
    assert 'data-code="source_needs_cloud_admin"' in response.content.decode()
    source.refresh_from_db()
    assert (source.fixed_org_id, source.adoption_enabled) == (sales.pk, False)
    # And the F1a check alone would refuse too: the source grants Org Manager powers the IMA lacks.
    rotate = ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "24"})
    assert rotate.status_code == 403 and TOKEN.search(rotate.content.decode()) is None


def test_f1b_source_orgs_must_be_in_the_actors_manage_users_scope(user_factory, provider, sales, root_org):
    """F1b: without admin rules, an IMA who is also Org Admin of Sales may point the source at Sales,
    not at the root; an IMA alone manages users nowhere, so may point it nowhere."""
    source, _ = provider
    both = _client(user_factory("ima.sales", org=sales, roles=["identity-management-administrator", "org-admin"]))
    assert both.post(f"/provisioning/sources/{source.pk}/edit/",
                     _source_post(source, fixed_org=sales.pk)).status_code == 302
    source.refresh_from_db()
    response = both.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(source, fixed_org=root_org.pk))
    assert 'data-code="out_of_scope"' in response.content.decode()
    # Attribute mode bounded by nothing may name any org: only a global user manager may set it.
    anywhere = _source_post(source, org_mode="attribute", org_attribute="department", fixed_org="")
    assert 'data-code="out_of_scope"' in both.post(f"/provisioning/sources/{source.pk}/edit/", anywhere).content.decode()
    within = {**anywhere, "org_create_under": sales.pk}
    assert both.post(f"/provisioning/sources/{source.pk}/edit/", within).status_code == 302
    only_ima = _client(user_factory("ima.only", roles=["identity-management-administrator"]))
    response = only_ima.post("/provisioning/scim/add/", {"name": "Rogue", "org": sales.pk})
    assert response.status_code == 400 and not Source.objects.filter(name="Rogue").exists()
    source.refresh_from_db()
    assert (source.org_mode, source.org_create_under_id) == ("attribute", sales.pk)


# F2 --------------------------------------------------------------------------------------------

HELPERS_RULE = {"kind": "role", "position": "2", "condition": "member_of_group", "value": "Helpers",
                "roles": ["help-desk", "multi-factor-auth-admin", "audit-log-viewer", "user-modify"], "save": "1"}


def test_f2_ima_cannot_save_a_rule_granting_powers_it_lacks(ima_client, admin_client, provider):
    """F2: "never more than you hold" applies to saving rules; a Cloud Admin may save the same rule."""
    source, _ = provider
    response = ima_client.post(f"/provisioning/sources/{source.pk}/rules/", HELPERS_RULE)
    assert response.status_code == 200 and 'data-code="role_beyond_your_powers"' in response.content.decode()
    assert not MappingRule.objects.exists()
    preview = {k: v for k, v in HELPERS_RULE.items() if k != "save"} | {"preview": "1"}
    response = ima_client.post(f"/provisioning/sources/{source.pk}/rules/", preview)
    assert 'data-code="role_beyond_your_powers"' in response.content.decode()  # the preview refuses alike
    assert admin_client.post(f"/provisioning/sources/{source.pk}/rules/", HELPERS_RULE).status_code == 302
    assert set(MappingRule.objects.get().roles.values_list("slug", flat=True)) == set(HELPERS_RULE["roles"])


def test_f2_ima_may_still_save_rules_within_its_powers(ima_client, provider):
    source, _ = provider
    response = ima_client.post(f"/provisioning/sources/{source.pk}/rules/", {**HELPERS_RULE, "roles": ["desktop-user"]})
    assert response.status_code == 302


# F5 --------------------------------------------------------------------------------------------


def test_f5_attribute_mode_never_places_users_outside_the_source_subtree(admin_client, provider, scim, sales,
                                                                         org_factory, root_org):
    """F5: department "Default Organization" (the root) lands in the fallback org, not the root; an
    org inside the create-under subtree is still used."""
    source, _ = provider
    west = org_factory("West", parent=sales)
    org_factory("Engineering")  # outside the subtree
    assert admin_client.post(f"/provisioning/sources/{source.pk}/edit/", _source_post(
        source, org_mode="attribute", org_attribute="department", org_create_under=sales.pk,
        fallback_org=sales.pk, fixed_org="")).status_code == 302
    from django.contrib.auth.models import User
    _scim_user(scim, "trent", **{ENTERPRISE: {"department": root_org.name}})
    _scim_user(scim, "erin", **{ENTERPRISE: {"department": "Engineering"}})
    _scim_user(scim, "walt", **{ENTERPRISE: {"department": "West"}})
    orgs = dict(User.objects.filter(username__in=["trent", "erin", "walt"]).values_list("username", "profile__org"))
    assert orgs == {"trent": sales.pk, "erin": sales.pk, "walt": west.pk}


def test_f5_resolve_org_reports_an_outside_org(root_org, sales, org_factory):
    """F5: the resolver names the reason, and never creates a look-alike of the outside org."""
    org_factory("Engineering")
    index = OrgIndex()
    target = OrgTarget(name="Engineering", create_under_id=sales.pk)
    assert resolve_org(target, index, is_new=True).reason == "org_outside_source"
    assert resolve_org(target, index, is_new=True).org_id == sales.pk
    assert resolve_org(OrgTarget(name="Brand New", create_under_id=sales.pk), index, is_new=True).create_name == \
        "Brand New"


# F10 -------------------------------------------------------------------------------------------


def test_f10_adoption_preview_matches_apply(ima_client, user_factory, provider, sales):
    """F10, N1b: the preview refuses what apply refuses. Adopting hands the source the user's email,
    username and state, so an IMA (manage_identity only) adopts nobody (out_of_scope); an IMA who is
    also Org Admin of Sales adopts a plain Sales user but not a Help Desk (global resets, more
    privileged); every refusal row carries the user's name."""
    source, _ = provider
    Source.objects.filter(pk=source.pk).update(adoption_enabled=True)
    user_factory("sara.sales", org=sales)
    user_factory("hana.helpdesk", org=sales, roles=["help-desk"])
    candidates = "x1,sara.sales,\nx2,hana.helpdesk,"
    url = f"/provisioning/sources/{source.pk}/adopt/"
    preview = ima_client.post(url, {"candidates": candidates, "action": "preview"}).content.decode()
    assert re.findall(r'data-decision="([a-z_]+)"', preview) == ["out_of_scope", "out_of_scope"]
    assert ima_client.post(url, {"candidates": candidates, "action": "apply"}).status_code in (200, 302)
    sales_admin = _client(user_factory("ivan.sales", org=sales,
                                       roles=["identity-management-administrator", "org-admin"]))
    preview = sales_admin.post(url, {"candidates": candidates, "action": "preview"}).content.decode()
    assert re.findall(r'data-decision="([a-z_]+)"', preview) == ["adopt", "target_more_privileged"]
    assert "Adopt 1 user</button>" in preview
    response = sales_admin.post(url, {"candidates": candidates, "action": "apply"})
    assert response.status_code == 302
    run = ProvisioningRun.objects.filter(kind=ProvisioningRun.Kind.ADOPTION).latest("pk")
    assert run.counts["adopted"] == 1
    refused = run.entries.get(result=JournalEntry.Result.REFUSED)
    assert (refused.code, refused.user_label) == ("target_more_privileged", "hana.helpdesk")
    from django.contrib.auth.models import User
    profiles = dict(User.objects.filter(username__in=["sara.sales", "hana.helpdesk"])
                    .values_list("username", "profile__owner_source"))
    assert profiles == {"sara.sales": source.pk, "hana.helpdesk": None}


def test_f1a_ima_cannot_change_the_connection_of_a_directory_owning_a_help_desk(ima_client, admin_client, linked_user):
    """F1a (directories): the bind settings act with the directory's powers; its user holds Help Desk
    (global password resets), so an IMA may not change them and the console hides the edit link."""
    from provisioning.ldap.directories import DirectorySettings, directory_create

    directory = directory_create(actor=Actor.system("tests"), name="CorpAD", bind_password="Svc-Pass-1!",
                                 data=DirectorySettings(urls=("ldap://127.0.0.1:1",), base_dns=("dc=corp,dc=example",),
                                                        bind_dn="cn=svc,dc=corp,dc=example"))
    linked_user(directory.source, "hana.helpdesk", roles=["help-desk"])
    form = {"urls": "ldap://127.0.0.1:1", "tls_mode": "none", "verify_tls": "on", "bind_dn": "cn=svc,dc=corp,dc=example",
            "bind_password": "", "base_dns": "dc=corp,dc=example", "preset": "openldap", "page_size": "250",
            "interval_hours": "12", "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50"}
    url = f"/provisioning/sources/{directory.source_id}/directory/"
    response = ima_client.post(url, form)
    assert response.status_code == 200 and 'data-code="source_more_privileged"' in response.content.decode()
    directory.refresh_from_db()
    assert directory.page_size == 500
    assert f'href="{url}"' not in ima_client.get(f"/provisioning/sources/{directory.source_id}/").content.decode()
    assert f'href="{url}"' in admin_client.get(f"/provisioning/sources/{directory.source_id}/").content.decode()
    assert admin_client.post(url, form).status_code == 302
    directory.refresh_from_db()
    assert directory.page_size == 250


def test_f1a_ima_cannot_issue_basic_credentials_or_delete_a_powerful_provider(ima_client, admin_user, provider, scim):
    """F1a, for the credentials and actions added beside tokens (HTTP basic, delete): an IMA may not
    turn on, rotate or turn off HTTP basic, nor delete, a provider whose user holds Cross Org Admin."""
    from django.contrib.auth.models import User

    from provisioning.scim import providers
    from provisioning.scim.models import ScimBasicCredential

    source, _ = provider
    _scim_user(scim, "trent3")
    _grant_by_hand(admin_user, User.objects.get(username="trent3"), "cross-org-admin")

    response = ima_client.post(f"/provisioning/scim/{source.pk}/basic/", {"action": "enable"})
    assert response.status_code == 400 and "Only a Customer Cloud Admin can" in response.content.decode()
    assert not ScimBasicCredential.objects.filter(source=source).exists()

    providers.basic_enable(actor=Actor.for_user(admin_user), source=source)
    for action in ("rotate", "disable"):
        response = ima_client.post(f"/provisioning/scim/{source.pk}/basic/", {"action": action, "overlap_hours": "1"})
        assert response.status_code == 400, action
    assert ScimBasicCredential.objects.filter(source=source).count() == 1
    assert not AuditEvent.objects.filter(action__in=["scim_basic_rotated", "scim_basic_disabled"]).exists()

    response = ima_client.post(f"/provisioning/scim/{source.pk}/delete/")
    assert response.status_code == 409 and Source.objects.filter(pk=source.pk).exists()
    assert "Only a Customer Cloud Admin can delete" in response.content.decode()


def test_basic_rotate_overlap_is_validated(admin_user, admin_client, provider):
    """Review F8 for the HTTP basic rotation: a non-finite overlap is a form error, never a 500."""
    from provisioning.scim import providers

    source, _ = provider
    providers.basic_enable(actor=Actor.for_user(admin_user), source=source)
    response = admin_client.post(f"/provisioning/scim/{source.pk}/basic/", {"action": "rotate", "overlap_hours": "nan"})
    assert response.status_code == 400


# Review 3: a credential lives only while its issuer may administer the source ------------------


def test_credentials_an_ima_issued_stop_working_when_a_cloud_admin_raises_the_providers_powers(
        ima, ima_client, admin_client, admin_user, provider):
    """An IMA may take the token of a plain provider. Once a Cloud Admin adds a rule granting roles the
    IMA does not hold, that token (and the IMA's HTTP basic password) would push users into those
    roles: they stop working at once, the console says so, and the audit records it. Credentials the
    Cloud Admin issued keep working."""
    from django.contrib.messages import get_messages

    from provisioning.scim import providers

    source, setup_token = provider
    ima_token = TOKEN.search(ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
                             .content.decode()).group(1)
    basic = providers.basic_enable(actor=Actor.for_user(ima), source=source)
    scim = ScimClient(ima_token)
    assert scim.get("/Users").status_code == 200
    assert ScimClient(setup_token).get("/Users").status_code == 401  # rotated with no overlap
    assert providers.authenticate_basic(basic.username, basic.password) is not None

    # Within the IMA's powers: nothing is revoked.
    assert ima_client.post(f"/provisioning/sources/{source.pk}/rules/",
                           {**HELPERS_RULE, "roles": ["desktop-user"]}).status_code == 302
    assert scim.get("/Users").status_code == 200

    response = admin_client.post(f"/provisioning/sources/{source.pk}/rules/", HELPERS_RULE)
    assert response.status_code == 302
    assert any("stopped working" in str(m) for m in get_messages(response.wsgi_request))
    assert scim.get("/Users").status_code == 401
    assert providers.authenticate_basic(basic.username, basic.password) is None
    event = AuditEvent.objects.get(action="scim_credentials_revoked")
    assert (event.actor_label, event.new_value["tokens"], event.new_value["basic_passwords"]) == (
        admin_user.username, 1, 1)

    # The Cloud Admin's own token survives the next powerful rule.
    admin_token = TOKEN.search(admin_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
                               .content.decode()).group(1)
    assert admin_client.post(f"/provisioning/sources/{source.pk}/rules/",
                             {**HELPERS_RULE, "position": "3", "value": "Admins"}).status_code == 302
    assert ScimClient(admin_token).get("/Users").status_code == 200
    assert AuditEvent.objects.filter(action="scim_credentials_revoked").count() == 1


# Review 4, F3: a provider's powers include the default roles of the orgs it places users in ------


def _org_admin_by_default(admin_user, org):
    from accounts.identity.orgs import org_update_settings
    from accounts.models import Role

    org_update_settings(actor=Actor.for_user(admin_user), org=org, inherit_default_roles=False,
                        default_roles=list(Role.objects.filter(slug__in=["desktop-user", "org-admin"])))


def test_f3_ima_cannot_take_the_token_of_a_provider_whose_org_makes_org_admins_by_default(
        ima_client, admin_user, sales):
    """The reviewer's steps: Org Admin is a default role of the provider's org; an IMA rotating its token
    could create Org Admins through SCIM (then reset their password to an address of its own)."""
    from provisioning.scim import providers

    _org_admin_by_default(admin_user, sales)
    source = providers.provider_create(actor=Actor.for_user(admin_user), name="EngIdP", org=sales).source
    response = ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
    assert 'data-code="source_more_privileged"' in response.content.decode()
    assert not TOKEN.search(response.content.decode())
    assert ScimToken.objects.filter(source=source).count() == 1  # only the Cloud Admin's


def test_f3_making_an_admin_role_a_default_revokes_the_credentials_an_ima_issued(ima, ima_client, admin_user, sales,
                                                                                 org_factory):
    from provisioning.scim import providers

    source = providers.provider_create(actor=Actor.for_user(admin_user), name="EngIdP", org=sales).source
    ima_token = TOKEN.search(ima_client.post(f"/provisioning/scim/{source.pk}/rotate/", {"overlap_hours": "0"})
                             .content.decode()).group(1)
    admin_token = TOKEN.search(_client(admin_user).post(f"/provisioning/scim/{source.pk}/rotate/",
                                                        {"overlap_hours": "24"}).content.decode()).group(1)
    assert ScimClient(ima_token).get("/Users").status_code == 200
    # A default role elsewhere changes nothing for this provider.
    _org_admin_by_default(admin_user, org_factory("Elsewhere"))
    assert ScimClient(ima_token).get("/Users").status_code == 200

    # On the provider's own org: its new users would be Org Admins.
    _org_admin_by_default(admin_user, sales)
    assert ScimClient(ima_token).get("/Users").status_code == 401
    assert ScimClient(admin_token).get("/Users").status_code == 200
    event = AuditEvent.objects.get(action="scim_credentials_revoked")
    assert event.target_id == str(source.pk) and event.new_value["tokens"] == 1


@pytest.mark.django_db(transaction=True)
def test_f3_a_rotation_racing_a_default_role_change_sees_it(ima, admin_user, sales):
    """Two real sessions: while a Cloud Admin's change making Org Admin a default role of the provider's
    org is uncommitted, an IMA rotates the provider's token. The change locks the providers' rows, so
    the rotation waits and is then refused, rather than issuing a token the revocation never saw."""
    from django.db import connection

    from provisioning.scim import providers
    from tests.concurrency import race_held_open

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two sessions with row locks (SQLite has one writer)")
    source = providers.provider_create(actor=Actor.for_user(admin_user), name="EngIdP", org=sales).source
    outcome = race_held_open(lambda: _org_admin_by_default(admin_user, sales),
                             lambda: providers.token_rotate(actor=Actor.for_user(ima), source=source))
    assert outcome == ("ok", "source_more_privileged")
    assert ScimToken.objects.filter(source=source, created_by=ima).count() == 0
