"""Incremental runs and entries that disappear: an entry deleted from the directory or moved out of the
base DN is invisible to a query for changes, so an incremental run also reads every anchor (and
nothing else) once ``Directory.reconcile_every`` has passed, and blocks the users gone (real slapd)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.identity.types import UserState
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, JournalEntry, ProvisioningRun, UserBlock
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import admin, make_directory, state_of

pytestmark = pytest.mark.django_db(transaction=True)


def fresh(directory: Directory) -> Directory:
    return Directory.objects.get(pk=directory.pk)


def every_run_reconciles(directory: Directory) -> Directory:
    Directory.objects.filter(pk=directory.pk).update(reconcile_every=timedelta(0))
    return fresh(directory)


def test_a_deleted_entry_is_blocked_by_the_next_due_anchor_reconciliation(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "ada", "ben", "cal", "dot"))
    directory = make_directory(slapd_server, ou, root_org)
    first = sync_directory(directory)
    assert first.counts["incremental"] == 0
    assert fresh(directory).last_reconciled_at == first.started_at
    admin(slapd_server).delete_s(f"uid=ben,{ou}")

    quiet = sync_directory(directory)  # incremental, reconciliation not due yet (reconcile_every: 1 hour)
    assert (quiet.counts["incremental"], quiet.counts["blocked"], "anchors_checked" in quiet.counts) == (1, 0, False)
    assert state_of("ben") == UserState.ACTIVE

    Directory.objects.filter(pk=directory.pk).update(last_reconciled_at=first.started_at - timedelta(hours=2))
    run = sync_directory(fresh(directory))
    assert run.status == ProvisioningRun.Status.SUCCEEDED, run.error
    # Still an incremental run (the 24-hour full run is not due): only the anchors were read in full.
    assert (run.counts["incremental"], run.counts["anchors_checked"], run.counts["blocked"]) == (1, 3, 1)
    assert run.counts["read"] <= 1
    assert state_of("ben") == UserState.BLOCKED
    assert UserBlock.objects.get(user__username="ben").reason == "gone from the directory"
    assert JournalEntry.objects.get(run=run, subject="state").message == "gone from the directory"
    assert {state_of(n) for n in ("ada", "cal", "dot")} == {UserState.ACTIVE}
    assert fresh(directory).last_reconciled_at == run.started_at
    assert fresh(directory).last_full_at == first.started_at


def test_an_entry_moved_out_of_the_base_dn_is_blocked_and_unblocked_when_it_comes_back(slapd_server, ou, root_org):
    conn = admin(slapd_server)
    for name in ("people", "former"):
        conn.add_s(f"ou={name},{ou}", [("objectClass", [b"organizationalUnit"]), ("ou", [name.encode()])])
    people = f"ou=people,{ou}"
    slapd_server.ldapadd(people_ldif(people, "eli", "fay", "gus"))
    directory = every_run_reconciles(make_directory(slapd_server, people, root_org))
    sync_directory(directory)

    conn.rename_s(f"uid=eli,{people}", "uid=eli", f"ou=former,{ou}")
    run = sync_directory(fresh(directory))
    assert (run.counts["incremental"], run.counts["anchors_checked"], run.counts["blocked"]) == (1, 2, 1)
    assert state_of("eli") == UserState.BLOCKED

    conn.rename_s(f"uid=eli,ou=former,{ou}", "uid=eli", people)
    back = sync_directory(fresh(directory))
    assert (back.counts["incremental"], back.counts["reactivated"], back.counts["blocked"]) == (1, 1, 0)
    assert state_of("eli") == UserState.ACTIVE


def test_a_reconciliation_above_the_threshold_is_held_and_the_next_run_is_full(slapd_server, ou, root_org):
    names = [f"r{i}" for i in range(6)]
    slapd_server.ldapadd(people_ldif(ou, *names))
    directory = every_run_reconciles(make_directory(slapd_server, ou, root_org, deactivation_threshold_min=2))
    sync_directory(directory)
    conn = admin(slapd_server)
    for name in names[:3]:
        conn.delete_s(f"uid={name},{ou}")
    held = sync_directory(fresh(directory))
    assert (held.status, held.counts["incremental"], held.counts["held"]) == (ProvisioningRun.Status.HELD, 1, 3)
    assert not UserBlock.objects.exists()
    assert fresh(directory).last_full_at is None
    assert sync_directory(fresh(directory)).counts["incremental"] == 0


def test_the_reconciliation_interval_is_a_directory_setting(admin_client, slapd_server, ou, root_org):
    from django.urls import reverse

    from accounts.models import AuditEvent
    from tests.provisioning.ldap.test_directory_views import _form

    directory = make_directory(slapd_server, ou, root_org)
    assert directory.reconcile_every == timedelta(hours=1)
    url = reverse("provisioning:directory_edit", args=[directory.source_id])
    assert 'name="reconcile_hours" value="1.0"' in admin_client.get(url).content.decode()
    bad = admin_client.post(url, _form(slapd_server, ou, bind_password="", reconcile_hours="-1"))
    assert bad.status_code == 200 and fresh(directory).reconcile_every == timedelta(hours=1)
    assert admin_client.post(url, _form(slapd_server, ou, bind_password="", reconcile_hours="0.25")).status_code == 302
    assert fresh(directory).reconcile_every == timedelta(minutes=15)
    event = AuditEvent.objects.get(action="directory_updated", field="reconcile_every")
    assert (event.old_value, event.new_value) == (3600, 900)
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert "an anchor check every 0:15:00" in page


def test_the_full_run_schedule_is_a_directory_setting_and_0_makes_every_run_full(admin_client, slapd_server, ou,
                                                                                  root_org):
    from django.urls import reverse

    from accounts.models import AuditEvent
    from tests.provisioning.ldap.test_directory_views import _form

    slapd_server.ldapadd(people_ldif(ou, "hal", "ivy"))
    directory = make_directory(slapd_server, ou, root_org)
    assert directory.full_every == timedelta(hours=24)
    url = reverse("provisioning:directory_edit", args=[directory.source_id])
    assert 'name="full_hours" value="24.0"' in admin_client.get(url).content.decode()
    assert sync_directory(directory).counts["incremental"] == 0
    assert sync_directory(fresh(directory)).counts["incremental"] == 1  # within 24 hours of the full run

    for bad in ("-1", "1e300", "nan"):
        response = admin_client.post(url, _form(slapd_server, ou, bind_password="", full_hours=bad))
        assert response.status_code == 200 and 'data-code="' in response.content.decode()
        assert fresh(directory).full_every == timedelta(hours=24)
    assert admin_client.post(url, _form(slapd_server, ou, bind_password="", full_hours="0")).status_code == 302
    assert fresh(directory).full_every == timedelta(0)
    event = AuditEvent.objects.get(action="directory_updated", field="full_every")
    assert (event.old_value, event.new_value) == (24 * 3600, 0)
    run = sync_directory(fresh(directory))
    assert (run.counts["incremental"], run.counts["read"]) == (0, 2)
    page = admin_client.get(reverse("provisioning:source_detail", args=[directory.source_id])).content.decode()
    assert "found by a full run every 0:00:00" in page

    # An empty field is the default, as for the anchor check.
    assert admin_client.post(url, _form(slapd_server, ou, bind_password="", full_hours="")).status_code == 302
    assert fresh(directory).full_every == timedelta(hours=24)


def test_incremental_runs_mirror_only_the_groups_that_changed(slapd_server, ou, root_org, monkeypatch):
    import ldap

    from accounts.models import DirectoryGroup
    from provisioning.ldap import sync as sync_mod

    slapd_server.ldapadd(people_ldif(ou, "ida", "jon", "kai", groups={"red": ["ida"], "blue": ["jon"]}))
    slapd_server.ldapadd(f"dn: cn=all,{ou}\nobjectClass: groupOfNames\ncn: all\nmember: cn=red,{ou}\n")
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    mirrored: list[str] = []
    real = sync_mod.groups_members_replace

    def spy(*, actor, members):
        mirrored.extend(dgroup.display_name for dgroup, _ in members)
        return real(actor=actor, members=members)

    monkeypatch.setattr(sync_mod, "groups_members_replace", spy)
    assert sync_directory(fresh(directory)).counts["incremental"] == 1
    assert mirrored == []  # nothing changed: the group last read at the mark is not "changed"

    admin(slapd_server).modify_s(f"cn=red,{ou}", [(ldap.MOD_ADD, "member", [f"uid=kai,{ou}".encode()])])
    assert sync_directory(fresh(directory)).counts["incremental"] == 1
    assert sorted(mirrored) == ["all", "red"]  # the changed group and the group it is nested in
    members = {g.display_name: set(g.group.user_set.values_list("username", flat=True))
               for g in DirectoryGroup.objects.filter(provider=directory.source.slug)}
    assert members == {"red": {"ida", "kai"}, "all": {"ida", "kai"}, "blue": {"jon"}}
