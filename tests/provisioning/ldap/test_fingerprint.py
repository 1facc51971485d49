"""A full run recognises unchanged entries by their fingerprint, before translating them
(``provisioning.ldap.fingerprint``), and still sees every change a translation would: the entry, its
groups (nested, renamed), its state as time passes, and the user's profile fields edited in idm
(real slapd)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import ldap
import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from accounts.identity.types import UserState
from accounts.models import ExternalIdentity
from provisioning.inbound import apply_source_batch
from provisioning.ldap import sync as sync_mod
from provisioning.ldap.fingerprint import CHECK_KEY, ENTRY_KEY, FIELDS_KEY
from provisioning.ldap.sync import sync_directory
from provisioning.ldap.translate import translate_user
from provisioning.models import Directory
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import admin, make_directory, state_of

pytestmark = pytest.mark.django_db(transaction=True)


class Spies:
    """Which entries a run translated and which users it handed to the identity path."""

    def __init__(self, monkeypatch):
        self.translated: list[str] = []
        self.planned: list[str] = []

        def translate(dn, attributes, preset, **kwargs):
            user = translate_user(dn, attributes, preset, **kwargs)
            self.translated.append(user.username)
            return user

        def apply(**kwargs):
            self.planned += [u.username for u in kwargs["users"]]
            return apply_source_batch(**kwargs)

        monkeypatch.setattr(sync_mod, "translate_user", translate)
        monkeypatch.setattr(sync_mod, "apply_source_batch", apply)

    def clear(self):
        self.translated.clear()
        self.planned.clear()


def full_run(directory: Directory, **kwargs):
    """A scheduled full run (``full_every`` passed): every entry read, unchanged ones skipped."""
    Directory.objects.filter(pk=directory.pk).update(last_full_at=None)
    return sync_directory(Directory.objects.get(pk=directory.pk), **kwargs)


def link_of(username: str) -> ExternalIdentity:
    return ExternalIdentity.objects.get(user__username=username)


def test_a_no_change_full_run_translates_nothing_and_a_changed_entry_is_translated(
        slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "ann", "bob", "cid", groups={"staff": ["ann", "bob"]}))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    raw = link_of("ann").raw
    assert set(raw) >= {ENTRY_KEY, CHECK_KEY, FIELDS_KEY}
    assert raw[FIELDS_KEY] == {"username": "ann", "email": "ann@example.org", "first_name": "Ann",
                               "last_name": "Annson"}
    spies = Spies(monkeypatch)

    run = full_run(directory)
    assert (run.counts["incremental"], run.counts["read"], run.counts["unchanged"]) == (0, 3, 3)
    assert (spies.translated, spies.planned) == ([], [])

    admin(slapd_server).modify_s(f"uid=bob,{ou}", [(ldap.MOD_REPLACE, "sn", [b"Newname"])])
    spies.clear()
    run = full_run(directory)
    assert (spies.translated, spies.planned) == (["bob"], ["bob"])
    assert User.objects.get(username="bob").last_name == "Newname"
    assert (run.counts["updated"], run.counts["unchanged"]) == (1, 2)


def test_a_profile_field_edited_in_idm_is_planned_and_restored_by_the_next_full_run(
        slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "dee", "eve"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    User.objects.filter(username="eve").update(first_name="Local edit")
    spies = Spies(monkeypatch)
    full_run(directory)
    assert (spies.translated, spies.planned) == (["eve"], ["eve"])
    assert User.objects.get(username="eve").first_name == "Eve"
    spies.clear()
    full_run(directory)
    assert spies.planned == []


def test_a_membership_or_a_group_rename_alone_re_plans_the_members(slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "fay", "gus", "hal", groups={"red": ["fay"], "blue": ["gus"]}))
    slapd_server.ldapadd(f"dn: cn=all,{ou}\nobjectClass: groupOfNames\ncn: all\nmember: cn=blue,{ou}\n")
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    spies = Spies(monkeypatch)
    conn = admin(slapd_server)

    conn.modify_s(f"cn=red,{ou}", [(ldap.MOD_ADD, "member", [f"uid=hal,{ou}".encode()])])
    full_run(directory)
    assert sorted(spies.planned) == ["hal"]  # fay's groups are the same; hal's entry did not change
    assert f"cn=red,{ou}".lower() in link_of("hal").raw["record"]["groups"]

    spies.clear()
    conn.rename_s(f"cn=blue,{ou}", "cn=azure", delold=1)  # refint renames the member of "all" too
    conn.modify_s(f"cn=all,{ou}", [(ldap.MOD_ADD, "member", [f"uid=fay,{ou}".encode()])])
    full_run(directory)
    assert sorted(spies.planned) == ["fay", "gus"]  # fay: now in "all"; gus: blue renamed azure
    assert "azure" in link_of("gus").raw["record"]["groups"]
    spies.clear()
    full_run(directory)
    assert spies.planned == []


def test_an_expiry_date_that_passes_blocks_the_user_although_the_entry_did_not_change(
        slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "ida", "jon"))
    tomorrow = (datetime.now(UTC).date() - datetime(1970, 1, 1, tzinfo=UTC).date()).days + 1
    admin(slapd_server).modify_s(f"uid=ida,{ou}", [(ldap.MOD_ADD, "objectClass", [b"shadowAccount"]),
                                                   (ldap.MOD_ADD, "shadowExpire", [str(tomorrow).encode()])])
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    assert state_of("ida") == UserState.ACTIVE
    spies = Spies(monkeypatch)
    full_run(directory)
    assert spies.planned == []

    later = timezone.now() + timedelta(days=2)
    monkeypatch.setattr(sync_mod, "timezone", SimpleNamespace(now=lambda: later))
    run = full_run(directory)
    assert spies.translated == ["ida"]
    assert run.counts["blocked"] == 1 and state_of("ida") == UserState.BLOCKED
    spies.clear()
    full_run(directory)
    assert spies.planned == []  # still expired: the block stands, nothing planned
    assert state_of("ida") == UserState.BLOCKED


def test_users_regrouped_by_an_incremental_run_keep_their_fingerprint(slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "kai", "lea", groups={"ops": ["kai"]}))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    entry = link_of("lea").raw[ENTRY_KEY]
    admin(slapd_server).modify_s(f"cn=ops,{ou}", [(ldap.MOD_ADD, "member", [f"uid=lea,{ou}".encode()])])
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert run.counts["incremental"] == 1 and run.counts["read"] == 0
    raw = link_of("lea").raw
    assert f"cn=ops,{ou}".lower() in raw["record"]["groups"] and raw[ENTRY_KEY] == entry
    spies = Spies(monkeypatch)
    full_run(directory)
    assert (spies.translated, spies.planned) == ([], [])


def test_links_without_fingerprints_are_compared_by_record_and_get_them(slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "max", "ned"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    for link in ExternalIdentity.objects.filter(provider=directory.source.slug):
        ExternalIdentity.objects.filter(pk=link.pk).update(raw={"record": link.raw["record"],
                                                                "digest": link.raw["digest"]})
    spies = Spies(monkeypatch)
    full_run(directory, dry_run=True)
    assert sorted(spies.translated) == ["max", "ned"] and spies.planned == []
    assert CHECK_KEY not in link_of("max").raw  # a dry run writes nothing

    spies.clear()
    run = full_run(directory)
    assert sorted(spies.translated) == ["max", "ned"] and spies.planned == []
    assert run.counts["unchanged"] == 2
    assert CHECK_KEY in link_of("max").raw and CHECK_KEY in link_of("ned").raw
    spies.clear()
    full_run(directory)
    assert (spies.translated, spies.planned) == ([], [])


def test_users_an_inactive_rule_newly_blocks_go_through_the_safety_valve(slapd_server, ou, root_org):
    from provisioning.models import MappingRule, ProvisioningRun

    names = ["oli", "pia", "quy", "ras"]
    slapd_server.ldapadd(people_ldif(ou, *names))
    directory = make_directory(slapd_server, ou, root_org, deactivation_threshold_min=1,
                               deactivation_threshold_percent=0)
    sync_directory(directory)
    MappingRule.objects.create(source=directory.source, kind="active", condition="attribute_equals",
                               attribute="sn", value="Gone")
    conn = admin(slapd_server)
    for name in names[:2]:
        conn.modify_s(f"uid={name},{ou}", [(ldap.MOD_REPLACE, "sn", [b"Gone"])])
    held = sync_directory(Directory.objects.get(pk=directory.pk))
    assert (held.status, held.counts["held"]) == (ProvisioningRun.Status.HELD, 2)
    assert {state_of(n) for n in names} == {UserState.ACTIVE}
    forced = sync_directory(Directory.objects.get(pk=directory.pk), force=True)
    assert forced.counts["blocked"] == 2
    assert [state_of(n) for n in names] == [UserState.BLOCKED, UserState.BLOCKED, UserState.ACTIVE,
                                            UserState.ACTIVE]
