"""Incremental runs read the groups' members only when a group changed (``sync.GroupView``): with no
group changed, a changed user keeps the groups its stored record lists while its DN is the same; a
user without a stored record, or with another DN, makes the run read the groups whole (real slapd)."""

from __future__ import annotations

import ldap
import pytest

from accounts.models import ExternalIdentity, Role
from provisioning.ldap import sync as sync_mod
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, MappingRule
from tests.provisioning.ldap.conftest import people_ldif
from tests.provisioning.ldap.test_sync import admin, make_directory, roles_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def group_reads(monkeypatch):
    """Each group search of the runs: True when it asked for the members."""
    reads: list[bool] = []
    real = sync_mod._read_groups

    def spy(*args, members=True, **kwargs):
        reads.append(members)
        return real(*args, members=members, **kwargs)

    monkeypatch.setattr(sync_mod, "_read_groups", spy)
    return reads


def fresh(directory: Directory) -> Directory:
    return Directory.objects.get(pk=directory.pk)


def record_of(username: str) -> dict:
    return ExternalIdentity.objects.get(user__username=username).raw["record"]


def with_staff_rule(directory: Directory) -> None:
    rule = MappingRule.objects.create(source=directory.source, kind="role", condition="member_of_group",
                                      value="staff")
    rule.roles.set(Role.objects.filter(slug="console-user"))


def test_a_changed_user_keeps_its_groups_without_the_members_being_read(slapd_server, ou, root_org, group_reads):
    slapd_server.ldapadd(people_ldif(ou, "ana", "ben", groups={"staff": ["ana"]}))
    slapd_server.ldapadd(f"dn: cn=all,{ou}\nobjectClass: groupOfNames\ncn: all\nmember: cn=staff,{ou}\n")
    directory = make_directory(slapd_server, ou, root_org)
    with_staff_rule(directory)
    sync_directory(directory)
    groups_before = record_of("ana")["groups"]
    assert f"cn=all,{ou}".lower() in groups_before and roles_of("ana") == {"console-user"}
    group_reads.clear()

    admin(slapd_server).modify_s(f"uid=ana,{ou}", [(ldap.MOD_REPLACE, "sn", [b"Changed"])])
    run = sync_directory(fresh(directory))
    assert (run.counts["incremental"], run.counts["read"], run.counts["updated"]) == (1, 1, 1)
    assert group_reads == [False]  # the change marks only
    assert record_of("ana")["groups"] == groups_before  # nested "all" included
    assert record_of("ana")["attributes"]["sn"] == ["Changed"]
    assert roles_of("ana") == {"console-user"}

    group_reads.clear()
    admin(slapd_server).modify_s(f"cn=staff,{ou}", [(ldap.MOD_ADD, "member", [f"uid=ben,{ou}".encode()])])
    sync_directory(fresh(directory))
    assert group_reads == [False, True]  # a group changed: read whole before the users
    assert roles_of("ben") == {"console-user"} and f"cn=all,{ou}".lower() in record_of("ben")["groups"]


def test_a_moved_or_new_user_makes_the_run_read_the_groups_whole(slapd_server, ou, root_org, group_reads):
    conn = admin(slapd_server)
    for name in ("people", "other"):
        conn.add_s(f"ou={name},{ou}", [("objectClass", [b"organizationalUnit"]), ("ou", [name.encode()])])
    people = f"ou=people,{ou}"
    slapd_server.ldapadd(people_ldif(people, "cy", "di", groups={"staff": ["cy"]}))
    directory = make_directory(slapd_server, ou, root_org)
    with_staff_rule(directory)
    sync_directory(directory)
    group_reads.clear()

    conn.rename_s(f"uid=di,{people}", "uid=di", f"ou=other,{ou}")  # in no group: no group changes
    run = sync_directory(fresh(directory))
    assert run.counts["incremental"] == 1 and group_reads == [False, True]
    assert record_of("di")["dn"] == f"uid=di,ou=other,{ou}".lower() and record_of("di")["groups"] == []

    group_reads.clear()
    slapd_server.ldapadd(people_ldif(people, "eli"))
    run = sync_directory(fresh(directory))
    assert run.counts["created"] == 1 and group_reads == [False, True]
    assert roles_of("cy") == {"console-user"} and record_of("eli")["groups"] == []
