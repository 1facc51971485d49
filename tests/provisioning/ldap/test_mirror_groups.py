"""The directory sync's group mirror (``sync._mirror_groups``) on its own, without a server: new groups
created in one call and every group's members replaced in one more, nested memberships included,
each membership change audited with the run's job id; a repeated anchor refuses the mirror before it
writes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from accounts.exceptions import ConflictError
from accounts.identity.types import Actor
from accounts.models import AuditEvent, DirectoryGroup
from provisioning.journal import start_run
from provisioning.ldap.directories import DirectorySettings, directory_create
from provisioning.ldap.sync import _mirror_groups, _State
from provisioning.ldap.translate import DirectoryGroupEntry, expand_memberships
from provisioning.lifecycle import source_actor
from provisioning.models import ProvisioningRun

OU = "ou=people,dc=example,dc=org"


@pytest.fixture
def directory(root_org):
    return directory_create(actor=Actor.system("tests"), name="Mirror LDAP", org=root_org,
                            data=DirectorySettings(urls=("ldap://127.0.0.1:1",), base_dns=("dc=example,dc=org",)))


def entry(name: str, *members: str) -> DirectoryGroupEntry:
    """A group entry; a capitalised member is the group of that name (nested), others are users."""
    return DirectoryGroupEntry(dn=f"cn={name},{OU}", anchor=f"anchor-{name}", name=name,
                               members=frozenset(f"uid={m},{OU}" if m.islower() else f"cn={m.lower()},{OU}" for m in members))


def mirror(directory, groups: list[DirectoryGroupEntry], users: dict[str, int]) -> ProvisioningRun:
    run = start_run(kind=ProvisioningRun.Kind.SYNC, actor=source_actor(directory.source), source=directory.source)
    state = _State(member_user_ids={f"uid={name},{OU}": pk for name, pk in users.items()})
    _mirror_groups(directory, groups, expand_memberships(groups), run, state)
    return run


def members(directory) -> dict[str, set[str]]:
    return {g.display_name: set(g.group.user_set.values_list("username", flat=True))
            for g in DirectoryGroup.objects.filter(source="ldap", provider=directory.source.slug)}


def test_mirror_creates_groups_and_nested_members_then_writes_only_the_difference(directory, user_factory):
    users = {name: user_factory(name).pk for name in ("ann", "bob", "cyd")}
    first = mirror(directory, [entry("red", "ann"), entry("blue", "bob"), entry("all", "Red", "cyd")], users)
    assert members(directory) == {"red": {"ann"}, "blue": {"bob"}, "all": {"ann", "cyd"}}
    created = AuditEvent.objects.filter(action="group.created", job_id=first.run_id)
    assert sorted(created.values_list("target_label", flat=True)) == ["all", "blue", "red"]
    added = AuditEvent.objects.filter(action="group.member_added", job_id=first.run_id)
    assert sorted(added.values_list("target_label", "new_value")) == [
        ("ann", "all"), ("ann", "red"), ("bob", "blue"), ("cyd", "all")]
    owner = DirectoryGroup.objects.filter(provider=directory.source.slug).values_list("owner_source_id", flat=True)
    assert set(owner) == {directory.source.pk}

    second = mirror(directory, [entry("red", "ann", "bob"), entry("all", "Red")], users)  # blue gone
    assert members(directory) == {"red": {"ann", "bob"}, "all": {"ann", "bob"}}
    changes = AuditEvent.objects.filter(job_id=second.run_id).exclude(action="group.deleted")
    assert sorted(changes.values_list("action", "target_label", "old_value", "new_value")) == [
        ("group.member_added", "bob", None, "all"), ("group.member_added", "bob", None, "red"),
        ("group.member_removed", "cyd", "all", None), ("user.group_removed", "bob", "blue", None)]
    assert not AuditEvent.objects.filter(job_id=second.run_id, action="group.created").exists()


def test_two_groups_with_one_anchor_refuse_the_mirror_before_it_writes(directory, user_factory):
    users = {"ann": user_factory("ann").pk}
    twin = DirectoryGroupEntry(dn=f"cn=twin,{OU}", anchor="anchor-red", name="twin",
                               members=frozenset({f"uid=ann,{OU}"}))
    with pytest.raises(ConflictError) as err:
        mirror(directory, [entry("red", "ann"), twin], users)
    assert err.value.code == "group_exists" and "anchor-red" in err.value.message
    assert not DirectoryGroup.objects.exists()
    assert not User.groups.through.objects.filter(group__directory_group__isnull=False).exists()
