"""The directory sync engine against a real slapd: the first sync, renames and moves, memberships,
the lifecycle, and the safety valve (errors, a killed server, empty results, mass deactivations)."""

from __future__ import annotations

import io
from datetime import timedelta
from types import SimpleNamespace

import ldap
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.identity.types import Actor, UserState
from accounts.models import DirectoryGroup, ExternalIdentity, Role
from provisioning.inbound import apply_source_batch
from provisioning.ldap import sync as sync_mod
from provisioning.ldap.client import DirectoryError
from provisioning.ldap.directories import DirectorySettings, directory_create
from provisioning.ldap.sync import RunLock, count_line, due_directories, sync_directory
from provisioning.models import Directory, JournalEntry, MappingRule, ProvisioningRun, UserBlock
from provisioning.resolve import DIGEST_KEY, RECORD_KEY, record_digest
from tests.directory_servers import TestSlapd
from tests.provisioning.ldap.conftest import people_ldif

pytestmark = pytest.mark.django_db(transaction=True)
ACTOR = Actor.system("test")


def make_directory(server, ou: str, org, **overrides) -> Directory:
    data = DirectorySettings(urls=(server.ldap_uri,), base_dns=(ou,), preset="openldap", bind_dn=server.root_dn,
                             **overrides)
    return directory_create(actor=ACTOR, name=f"LDAP {ou}", data=data, bind_password=server.root_pw, org=org)


def admin(server) -> ldap.ldapobject.LDAPObject:
    conn = ldap.initialize(server.ldap_uri)
    conn.simple_bind_s(server.root_dn, server.root_pw)
    return conn


def roles_of(username: str) -> set[str]:
    user = User.objects.get(username=username)
    return set(Role.objects.filter(group__user=user).values_list("slug", flat=True))


def state_of(username: str) -> str:
    return User.objects.get(username=username).profile.state


def counts(run) -> str:
    return count_line(run.counts)


def test_first_sync_creates_users_groups_and_links_then_a_rerun_changes_nothing(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "alice", "bob", "carol", groups={"eng": ["alice", "bob"]}))
    directory = make_directory(slapd_server, ou, root_org)
    run = sync_directory(directory)
    assert run.status == ProvisioningRun.Status.SUCCEEDED, run.error
    assert counts(run) == "created 3, updated 0, unchanged 0, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    alice = User.objects.get(username="alice")
    assert (alice.email, alice.first_name, alice.last_name) == ("alice@example.org", "Alice", "Aliceson")
    assert alice.profile.org_id == root_org.pk
    link = ExternalIdentity.objects.get(user=alice)
    assert (link.source, link.provider, len(link.external_id)) == ("ldap", directory.source.slug, 36)
    assert link.raw["record"]["dn"] == f"uid=alice,{ou}".lower()
    eng = DirectoryGroup.objects.get(provider=directory.source.slug)
    assert eng.display_name == "eng"
    assert set(eng.group.user_set.values_list("username", flat=True)) == {"alice", "bob"}

    again = sync_directory(directory)
    assert counts(again) == "created 0, updated 0, unchanged 3, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    assert User.objects.filter(username__in=["alice", "bob", "carol"]).count() == 3


def test_rename_keeps_the_user_through_the_anchor(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "alice", "bob"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    alice_id = User.objects.get(username="alice").pk
    conn = admin(slapd_server)
    conn.rename_s(f"uid=alice,{ou}", "uid=alicia")
    conn.modify_s(f"uid=alicia,{ou}", [(ldap.MOD_REPLACE, "mail", [b"alicia@example.org"])])
    run = sync_directory(directory)
    assert counts(run) == "created 0, updated 1, unchanged 1, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    renamed = User.objects.get(pk=alice_id)
    assert (renamed.username, renamed.email) == ("alicia", "alicia@example.org")
    assert not User.objects.filter(username="alice").exists()
    assert JournalEntry.objects.filter(run=run, subject="username", new_value="alicia").count() == 1


def test_ou_move_changes_the_org_and_membership_changes_roles(slapd_server, ou, root_org, org_factory):
    conn = admin(slapd_server)
    for name in ("eng", "sales"):
        conn.add_s(f"ou={name},{ou}", [("objectClass", [b"organizationalUnit"]), ("ou", [name.encode()])])
    slapd_server.ldapadd(people_ldif(f"ou=eng,{ou}", "dave"))
    conn.add_s(f"cn=auditors,{ou}", [("objectClass", [b"groupOfNames"]), ("cn", [b"auditors"]),
                                      ("member", [f"cn=nobody,{ou}".encode()])])
    sales = org_factory("Sales")
    directory = make_directory(slapd_server, ou, root_org)
    source = directory.source
    source.org_mode, source.fallback_org = "rules", root_org
    source.save()
    MappingRule.objects.create(source=source, kind="org", condition="dn_under", value=f"ou=sales,{ou}",
                               target_org=sales)
    rule = MappingRule.objects.create(source=source, kind="role", condition="member_of_group", value="auditors")
    rule.roles.set(Role.objects.filter(slug="console-user"))
    sync_directory(directory)
    dave = User.objects.get(username="dave")
    assert dave.profile.org_id == root_org.pk
    assert roles_of("dave") == {"console-user", "desktop-user"}  # no role rule matched: the org's defaults

    conn.rename_s(f"uid=dave,ou=eng,{ou}", "uid=dave", f"ou=sales,{ou}")
    conn.modify_s(f"cn=auditors,{ou}", [(ldap.MOD_ADD, "member", [f"uid=dave,ou=sales,{ou}".encode()])])
    run = sync_directory(directory)
    assert run.status == ProvisioningRun.Status.SUCCEEDED, run.error
    dave = User.objects.get(pk=dave.pk)
    assert dave.profile.org_id == sales.pk
    assert roles_of("dave") == {"console-user"}
    assert JournalEntry.objects.filter(run=run, user=dave, subject="org", new_value=sales.pk).count() == 1

    conn.modify_s(f"cn=auditors,{ou}", [(ldap.MOD_DELETE, "member", [f"uid=dave,ou=sales,{ou}".encode()])])
    sync_directory(directory)
    assert roles_of("dave") == {"console-user", "desktop-user"}  # no rule matches: Sales' default roles


def test_nested_group_membership_counts_for_rules_and_the_mirror(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "erin", "frank", groups={"inner": ["erin"]}))
    slapd_server.ldapadd(f"dn: cn=outer,{ou}\nobjectClass: groupOfNames\ncn: outer\nmember: cn=inner,{ou}\n")
    directory = make_directory(slapd_server, ou, root_org)
    rule = MappingRule.objects.create(source=directory.source, kind="role", condition="member_of_group",
                                      value="outer")
    rule.roles.set(Role.objects.filter(slug="console-user"))
    sync_directory(directory)
    assert roles_of("erin") == {"console-user"}
    assert roles_of("frank") == {"console-user", "desktop-user"}
    outer = DirectoryGroup.objects.get(provider=directory.source.slug, display_name="outer")
    assert list(outer.group.user_set.values_list("username", flat=True)) == ["erin"]


def test_disable_blocks_then_deactivates_after_the_grace_period_and_re_enable_reactivates(
        slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "gina", "hank"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    conn = admin(slapd_server)
    conn.modify_s(f"uid=gina,{ou}", [(ldap.MOD_ADD, "objectClass", [b"shadowAccount"]),
                                      (ldap.MOD_ADD, "shadowExpire", [b"1"])])
    run = sync_directory(directory)
    assert counts(run) == "created 0, updated 0, unchanged 1, blocked 1, deactivated 0, reactivated 0, held 0, errors 0"
    assert state_of("gina") == UserState.BLOCKED
    block = UserBlock.objects.get(user__username="gina")
    assert block.source_id == directory.source_id and block.deactivate_after is not None

    UserBlock.objects.filter(pk=block.pk).update(deactivate_after=block.deactivate_after - timedelta(minutes=20))
    run = sync_directory(directory)
    assert counts(run) == "created 0, updated 0, unchanged 2, blocked 0, deactivated 1, reactivated 0, held 0, errors 0"
    assert state_of("gina") == UserState.DEACTIVATED

    conn.modify_s(f"uid=gina,{ou}", [(ldap.MOD_DELETE, "shadowExpire", None)])
    run = sync_directory(directory)
    assert counts(run) == "created 0, updated 0, unchanged 1, blocked 0, deactivated 0, reactivated 1, held 0, errors 0"
    assert state_of("gina") == UserState.ACTIVE


def test_deleted_entry_is_blocked_as_gone(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "ivan", "judy"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    admin(slapd_server).delete_s(f"uid=ivan,{ou}")
    assert sync_directory(directory).counts["blocked"] == 0  # an incremental run cannot see deletions
    run = sync_directory(directory, full=True)
    assert counts(run) == "created 0, updated 0, unchanged 1, blocked 1, deactivated 0, reactivated 0, held 0, errors 0"
    assert state_of("ivan") == UserState.BLOCKED
    assert UserBlock.objects.get(user__username="ivan").reason == "gone from the directory"
    assert JournalEntry.objects.get(run=run, subject="state").message == "gone from the directory"


def test_filter_typo_or_empty_result_blocks_nobody(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "kim", "lee"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    directory.user_filter = "(objectClass=inetOrgPersn)"
    directory.save()
    run = sync_directory(directory)
    assert run.status == ProvisioningRun.Status.FAILED
    assert run.error == ("empty_result: The user search returned no entries while 2 users are linked to this "
                         "directory. Check the base DN and the user filter; nobody was blocked or deactivated.")
    assert {state_of("kim"), state_of("lee")} == {UserState.ACTIVE}
    assert not UserBlock.objects.exists()


def test_mass_deactivation_is_held_other_changes_applied_and_force_applies_it(slapd_server, ou, root_org):
    names = [f"u{i}" for i in range(6)]
    slapd_server.ldapadd(people_ldif(ou, *names))
    directory = make_directory(slapd_server, ou, root_org, deactivation_threshold_min=2)
    sync_directory(directory)
    conn = admin(slapd_server)
    for name in ("u0", "u1", "u2"):
        conn.delete_s(f"uid={name},{ou}")
    conn.modify_s(f"uid=u5,{ou}", [(ldap.MOD_REPLACE, "mail", [b"five@example.org"])])
    run = sync_directory(directory, full=True)
    assert run.status == ProvisioningRun.Status.HELD
    assert counts(run) == "created 0, updated 1, unchanged 2, blocked 0, deactivated 0, reactivated 0, held 3, errors 0"
    assert run.error.startswith("Held: 3 users would be blocked and then deactivated, more than the threshold of 2.")
    assert User.objects.get(username="u5").email == "five@example.org"
    assert not UserBlock.objects.exists()
    assert JournalEntry.objects.filter(run=run, code="deactivation_held").count() == 3

    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("sync_directory", directory.source.name, stdout=out, stderr=err)
    assert exited.value.code == 2
    assert out.getvalue().strip() == "created 0, updated 0, unchanged 3, blocked 0, deactivated 0, reactivated 0, " \
                                     "held 3, errors 0"
    call_command("sync_directory", directory.source.slug, "--force", stdout=(out := io.StringIO()))
    assert out.getvalue().strip() == "created 0, updated 0, unchanged 3, blocked 3, deactivated 0, reactivated 0, " \
                                     "held 0, errors 0"
    assert [state_of(n) for n in names] == [UserState.BLOCKED] * 3 + [UserState.ACTIVE] * 3


def test_dry_run_journals_without_writing(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "mia", "ned"))
    directory = make_directory(slapd_server, ou, root_org)
    out = io.StringIO()
    call_command("sync_directory", directory.source.name, "--dry-run", stdout=out)
    assert out.getvalue() == "created 2, updated 0, unchanged 0, blocked 0, deactivated 0, reactivated 0, " \
                             "held 0, errors 0\n"
    assert not User.objects.filter(username__in=["mia", "ned"]).exists()
    assert not DirectoryGroup.objects.exists()
    run = ProvisioningRun.objects.get()
    assert run.dry_run and set(run.entries.values_list("result", flat=True)) == {"planned"}


def test_a_second_trigger_while_running_is_refused(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "olga"))
    directory = make_directory(slapd_server, ou, root_org)
    first = RunLock(directory)
    first.acquire()
    with pytest.raises(DirectoryError) as caught:
        sync_directory(directory)
    assert caught.value.code == "already_running"
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("sync_directory", directory.source.name, stderr=err)
    assert exited.value.code == 3
    assert err.getvalue().startswith("already_running: A sync of ")
    assert ProvisioningRun.objects.count() == 0
    assert directory not in due_directories()
    first.release()
    assert directory in due_directories()
    assert sync_directory(directory).status == ProvisioningRun.Status.SUCCEEDED
    assert directory not in due_directories()  # it just ran; next one after its interval
    # A lock whose holder died (no heartbeat) expires.
    stale = RunLock(directory)
    stale.acquire()
    Directory.objects.filter(pk=directory.pk).update(lock_expires_at=directory.source.created_at)
    assert sync_directory(directory).status == ProvisioningRun.Status.SUCCEEDED


def test_the_lock_is_extended_at_most_every_tenth_of_its_lease(slapd_server, ou, root_org, monkeypatch):
    directory = make_directory(slapd_server, ou, root_org)
    clock = [1000.0]
    monkeypatch.setattr(sync_mod, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    lock = RunLock(directory)
    lock.acquire()
    expires = Directory.objects.get(pk=directory.pk).lock_expires_at
    clock[0] += sync_mod.lock_seconds() / 10 - 1
    lock.heartbeat()  # each batch calls it: no UPDATE yet
    assert Directory.objects.get(pk=directory.pk).lock_expires_at == expires
    clock[0] += 1
    lock.heartbeat()
    assert Directory.objects.get(pk=directory.pk).lock_expires_at > expires
    lock.release()


def test_bind_failure_fails_the_run_with_a_hint(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "pat"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    from provisioning.ldap.secrets import encrypt_secret
    Directory.objects.filter(pk=directory.pk).update(bind_password_encrypted=encrypt_secret("wrong"))
    directory.refresh_from_db()
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("sync_directory", directory.source.name, stderr=err, stdout=io.StringIO())
    assert exited.value.code == 1
    assert err.getvalue().strip() == ("bind_failed: The directory refused the bind DN or password. Check both and "
                                      "save again. Nobody was blocked or deactivated by this run.")
    assert state_of("pat") == UserState.ACTIVE


def test_server_killed_mid_sync_deactivates_nobody(test_pki, root_org, monkeypatch, tmp_path):
    server = TestSlapd(pki=test_pki)
    server.start()
    try:
        ou = server.fresh_ou()
        names = [f"w{i:02d}" for i in range(30)]
        server.ldapadd(people_ldif(ou, *names))
        directory = make_directory(server, ou, root_org, page_size=10)
        monkeypatch.setattr(sync_mod, "BATCH", 10)
        assert counts(sync_directory(directory)).startswith("created 30, ")

        def apply_then_kill(**kwargs):
            result = apply_source_batch(**kwargs)
            server.kill()  # the server dies after the first batch, in the middle of the paged search
            return result

        monkeypatch.setattr(sync_mod, "apply_source_batch", apply_then_kill)
        run = sync_directory(directory, full=True)
    finally:
        server.stop()
    assert run.status == ProvisioningRun.Status.FAILED
    assert run.error.startswith("server_unreachable: Could not connect to the directory server ")
    assert run.error.endswith("Nobody was blocked or deactivated by this run.")
    assert run.counts["blocked"] == 0
    assert not UserBlock.objects.exists()
    assert User.objects.filter(username__in=names, profile__state=UserState.ACTIVE).count() == 30


def test_unchanged_entries_are_skipped_until_the_rules_change_or_a_full_run(slapd_server, ou, root_org,
                                                                             monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "quinn", "rita", "sam", groups={"ops": ["quinn"]}))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    planned: list[list[str]] = []

    def spy(**kwargs):
        planned.append(sorted(u.username for u in kwargs["users"]))
        return apply_source_batch(**kwargs)

    monkeypatch.setattr(sync_mod, "apply_source_batch", spy)
    admin(slapd_server).modify_s(f"uid=rita,{ou}", [(ldap.MOD_REPLACE, "sn", [b"Ritter"])])
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert planned == [["rita"]]  # only the changed entry reaches the planner
    assert counts(run) == "created 0, updated 1, unchanged 2, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    assert User.objects.get(username="rita").last_name == "Ritter"

    planned.clear()
    sync_directory(Directory.objects.get(pk=directory.pk))
    assert planned == []

    rule = MappingRule.objects.create(source=directory.source, kind="role", condition="member_of_group", value="ops")
    rule.roles.set(Role.objects.filter(slug="console-user"))
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert planned == [["quinn", "rita", "sam"]]  # the rules changed: everyone is re-planned
    assert roles_of("quinn") == {"console-user"}

    planned.clear()
    sync_directory(Directory.objects.get(pk=directory.pk))
    assert planned == []
    sync_directory(Directory.objects.get(pk=directory.pk), full=True)
    assert planned == [["quinn", "rita", "sam"]]


def test_unchanged_entries_are_found_by_digest_and_links_stored_without_one_by_record(
        slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "xena", "yuri", "zack"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    links = ExternalIdentity.objects.filter(provider=directory.source.slug)
    assert all(link.raw[DIGEST_KEY] == record_digest(link.raw[RECORD_KEY]) for link in links)
    # A link written before digests existed: compared record by record, still skipped when equal.
    xena = links.get(user__username="xena")
    ExternalIdentity.objects.filter(pk=xena.pk).update(raw={RECORD_KEY: xena.raw[RECORD_KEY]})
    # A digest that no longer matches the entry (its stored record differs) and no fingerprint of
    # the raw entry (provisioning.ldap.fingerprint, tested in test_fingerprint.py): planned again.
    yuri = links.get(user__username="yuri")
    ExternalIdentity.objects.filter(pk=yuri.pk).update(raw={RECORD_KEY: yuri.raw[RECORD_KEY], DIGEST_KEY: "0" * 64})
    planned: list[list[str]] = []

    def spy(**kwargs):
        planned.append(sorted(u.username for u in kwargs["users"]))
        return apply_source_batch(**kwargs)

    monkeypatch.setattr(sync_mod, "apply_source_batch", spy)
    Directory.objects.filter(pk=directory.pk).update(last_full_at=None)  # a scheduled full run reads all
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert run.counts["incremental"] == 0 and run.counts["read"] == 3
    assert planned == [["yuri"]]
    assert counts(run) == "created 0, updated 0, unchanged 3, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    assert links.get(user__username="yuri").raw[DIGEST_KEY] == yuri.raw[DIGEST_KEY]  # stored again


def test_a_blocked_user_whose_entry_still_says_inactive_is_skipped_and_re_enabling_unblocks(
        slapd_server, ou, root_org, monkeypatch):
    slapd_server.ldapadd(people_ldif(ou, "vera", "walt"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    conn = admin(slapd_server)
    conn.modify_s(f"uid=vera,{ou}", [(ldap.MOD_ADD, "objectClass", [b"shadowAccount"]),
                                      (ldap.MOD_ADD, "shadowExpire", [b"1"])])
    sync_directory(Directory.objects.get(pk=directory.pk))
    assert state_of("vera") == UserState.BLOCKED
    planned: list[list[str]] = []

    def spy(**kwargs):
        planned.append(sorted(u.username for u in kwargs["users"]))
        return apply_source_batch(**kwargs)

    monkeypatch.setattr(sync_mod, "apply_source_batch", spy)
    Directory.objects.filter(pk=directory.pk).update(last_full_at=None)  # a scheduled full run reads all
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert run.counts["incremental"] == 0 and run.counts["read"] == 2
    assert planned == []  # still disabled in the directory: the block stands without a planner pass
    assert counts(run) == "created 0, updated 0, unchanged 2, blocked 0, deactivated 0, reactivated 0, held 0, errors 0"
    assert state_of("vera") == UserState.BLOCKED

    conn.modify_s(f"uid=vera,{ou}", [(ldap.MOD_DELETE, "shadowExpire", None)])
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert planned == [["vera"]]
    assert counts(run) == "created 0, updated 0, unchanged 1, blocked 0, deactivated 0, reactivated 1, held 0, errors 0"
    assert state_of("vera") == UserState.ACTIVE


def test_a_user_who_comes_back_unchanged_is_unblocked(slapd_server, ou, root_org):
    slapd_server.ldapadd(people_ldif(ou, "tom", "uma"))
    directory = make_directory(slapd_server, ou, root_org)
    sync_directory(directory)
    directory.user_filter = "(&(objectClass=inetOrgPerson)(!(uid=tom)))"  # tom out of scope
    directory.save()
    assert counts(sync_directory(directory)).startswith("created 0, updated 0, unchanged 1, blocked 1,")
    directory.user_filter = ""
    directory.save()
    run = sync_directory(directory)
    assert counts(run) == "created 0, updated 0, unchanged 1, blocked 0, deactivated 0, reactivated 1, held 0, errors 0"
    assert state_of("tom") == UserState.ACTIVE


def test_held_and_failed_syncs_raise_a_console_alert(slapd_server, ou, root_org):
    from ops.dashboard import directory_sync_alerts

    slapd_server.ldapadd(people_ldif(ou, "vera", "walt", "xena"))
    directory = make_directory(slapd_server, ou, root_org, deactivation_threshold_min=1)
    sync_directory(directory)
    assert directory_sync_alerts() == []
    conn = admin(slapd_server)
    conn.delete_s(f"uid=vera,{ou}")
    conn.delete_s(f"uid=walt,{ou}")
    held = sync_directory(directory, full=True)
    [alert] = directory_sync_alerts()
    assert (alert.code, alert.url) == ("directory_sync_held", f"/provisioning/runs/{held.run_id}/")
    assert alert.message.startswith(f"{directory.source.name}: Held: 2 users would be blocked")
    directory.user_filter = "(objectClass=nothing)"
    directory.save()
    failed = sync_directory(directory)
    [alert] = directory_sync_alerts()
    assert (alert.code, alert.url) == ("directory_sync_failed", f"/provisioning/runs/{failed.run_id}/")
    directory.user_filter = ""
    directory.save()
    sync_directory(directory, force=True)
    assert directory_sync_alerts() == []


@pytest.mark.worker
@pytest.mark.slow
def test_beat_dispatches_a_due_directory_and_a_worker_syncs_it_once(slapd_server, ou, root_org):
    import time

    from tests.celery_helpers import (
        flush_test_redis,
        running_beat,
        running_worker,
        test_database_url,
        test_redis_url,
    )

    slapd_server.ldapadd(people_ldif(ou, "yara", "zeke"))
    directory = make_directory(slapd_server, ou, root_org)
    url = test_redis_url()
    flush_test_redis(url)
    env = {"REDIS_URL": url, "DATABASE_URL": test_database_url(), "IDM_DIRECTORY_DISPATCH_SECONDS": "1"}
    with running_worker(env=env, redis_url=url) as worker, running_beat(env=env, redis_url=url):
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not ProvisioningRun.objects.filter(
                source=directory.source, finished_at__isnull=False).exists():
            time.sleep(0.5)
        time.sleep(3)  # beat keeps ticking every second: the directory is not due again for 12 hours
        log = worker.log()
    run = ProvisioningRun.objects.get(source=directory.source)
    assert run.status == ProvisioningRun.Status.SUCCEEDED, log[-3000:]
    assert run.started_by_label == "schedule"
    assert counts(run).startswith("created 2, ")
    assert set(User.objects.filter(username__in=["yara", "zeke"]).values_list("username", flat=True)) == {
        "yara", "zeke"}
    assert "provisioning.tasks.sync_directory" in log


def _changed_users(run) -> set[str]:
    return set(JournalEntry.objects.filter(run=run).values_list("user_label", flat=True))


def test_incremental_runs_read_changes_only_and_a_due_full_run_finds_deletions(slapd_server, ou, root_org):
    import time

    slapd_server.ldapadd(people_ldif(ou, "abe", "bea", "cy", "dee", groups={"ops": ["abe"]}))
    directory = make_directory(slapd_server, ou, root_org)
    rule = MappingRule.objects.create(source=directory.source, kind="role", condition="member_of_group", value="ops")
    rule.roles.set(Role.objects.filter(slug="console-user"))
    first = sync_directory(directory)
    assert (first.counts["incremental"], first.counts["read"]) == (0, 4)
    time.sleep(1.1)  # not needed with entryCSN; kept so a one-second mark (FreeIPA) would pass too
    conn = admin(slapd_server)
    conn.modify_s(f"uid=bea,{ou}", [(ldap.MOD_REPLACE, "sn", [b"Changed"])])
    second = sync_directory(directory)
    assert second.counts["incremental"] == 1
    assert _changed_users(second) == {"bea"}
    third = sync_directory(directory)  # nothing changed: only the entry of the mark's second is read again
    assert (third.counts["incremental"], third.counts["read"]) == (1, 1)

    time.sleep(1.1)
    conn.modify_s(f"cn=ops,{ou}", [(ldap.MOD_ADD, "member", [f"uid=cy,{ou}".encode()])])
    conn.delete_s(f"uid=dee,{ou}")
    fourth = sync_directory(directory)
    assert fourth.counts["incremental"] == 1
    # cy's entry was not read (the memberof overlay leaves its entryCSN alone): only bea, at the mark.
    assert (fourth.counts["read"], _changed_users(fourth)) == (1, {"cy"})
    assert roles_of("cy") == {"console-user"}  # a membership-only change still reaches the rules
    ops = DirectoryGroup.objects.get(provider=directory.source.slug, display_name="ops")
    assert set(ops.group.user_set.values_list("username", flat=True)) == {"abe", "cy"}
    assert state_of("dee") == UserState.ACTIVE  # deletions are invisible to a query for changes

    Directory.objects.filter(pk=directory.pk).update(last_full_at=first.started_at - timedelta(hours=25))
    full = sync_directory(directory)
    assert (full.counts["incremental"], full.counts["read"], full.counts["blocked"]) == (0, 3, 1)
    assert state_of("dee") == UserState.BLOCKED
