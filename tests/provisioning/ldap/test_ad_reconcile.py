"""Incremental runs against a real Active Directory (Samba 4 on loopback): a user deleted in AD is found
by the anchor reconciliation (objectGUID anchors read alone), and a server whose highestCommittedUSN
went back below the mark (a restore) gets a full run and a new, lower mark."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User

from accounts.identity.types import Actor, UserState
from provisioning.ldap.directories import DirectorySettings, directory_create
from provisioning.ldap.sync import sync_directory
from provisioning.models import Directory, ProvisioningRun, UserBlock
from tests.directory_servers import SambaDomain

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not SambaDomain.available(), reason="samba is installed by scripts/setup.sh"),
]


@pytest.fixture(scope="module")
def ad(tmp_path_factory):
    domain = SambaDomain(tmp_path_factory.mktemp("samba-reconcile") / "dc")
    domain.start()
    try:
        for name in ("carl", "dana", "emil"):
            domain.tool("user", "create", name, f"{name.title()}-Pass-123!", f"--given-name={name.title()}",
                        "--surname=Test")
        yield domain
    finally:
        domain.stop()


def test_ad_deletion_found_by_anchor_reconciliation_and_usn_rollback_forces_a_full_run(ad, root_org):
    directory = directory_create(
        actor=Actor.system("test"), name="Corp AD", org=root_org, bind_password=ad.admin_password,
        data=DirectorySettings(urls=(ad.ldap_uri,), base_dns=(ad.base_dn,), preset="active-directory",
                               bind_dn=ad.bind_dn, page_size=50))
    first = sync_directory(directory)
    assert first.status == ProvisioningRun.Status.SUCCEEDED, first.error
    linked = first.counts["created"]
    assert User.objects.filter(username__in=["carl", "dana", "emil"]).count() == 3

    ad.tool("user", "delete", "dana")
    Directory.objects.filter(pk=directory.pk).update(reconcile_every=timedelta(0))
    run = sync_directory(Directory.objects.get(pk=directory.pk))
    assert run.status == ProvisioningRun.Status.SUCCEEDED, run.error
    assert (run.counts["incremental"], run.counts["anchors_checked"], run.counts["blocked"]) == (1, linked - 1, 1)
    assert User.objects.get(username="dana").profile.state == UserState.BLOCKED
    assert UserBlock.objects.get(user__username="dana").reason == "gone from the directory"
    assert {User.objects.get(username=n).profile.state for n in ("carl", "emil")} == {UserState.ACTIVE}

    # A mark above the server's USN: the directory was restored (or another DC answers). Reading
    # "changed since the mark" would miss everything, so the run reads every entry and takes the
    # server's USN as its new mark.
    mark = int(Directory.objects.get(pk=directory.pk).high_water)
    Directory.objects.filter(pk=directory.pk).update(high_water=str(mark + 1_000_000))
    rolled = sync_directory(Directory.objects.get(pk=directory.pk))
    assert rolled.status == ProvisioningRun.Status.SUCCEEDED, rolled.error
    assert (rolled.counts["incremental"], rolled.counts["read"]) == (0, linked - 1)
    assert int(Directory.objects.get(pk=directory.pk).high_water) < mark + 1_000_000
    after = sync_directory(Directory.objects.get(pk=directory.pk))
    assert after.counts["incremental"] == 1
