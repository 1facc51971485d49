"""Real parallel requests against a live server on PostgreSQL (SQLite serialises writers, so the
races below cannot happen there; the test is skipped on it).

* two PATCHes adding different members to one group at the same moment: both members are kept;
* two POSTs of one userName at the same moment: exactly one 201 and one 409 uniqueness -- also
  when the userName is an existing user the provider adopts, or its own DELETEd user coming back.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.db import connection

from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import DirectoryGroup, ExternalIdentity
from provisioning.models import Source
from provisioning.scim import providers
from provisioning.scim.models import ScimResource

pytestmark = pytest.mark.django_db(transaction=True)
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ROUNDS = 5


@pytest.fixture
def api(live_server, root_org):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: concurrent writers")
    token = providers.provider_create(actor=Actor.system("tests"), name="Okta").token

    def call(method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(f"{live_server.url}/scim/v2{path}", method=method,  # noqa: S310
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/scim+json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback live server
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    return call


def parallel(*calls):
    """Run the calls in threads released at the same instant; their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, func):
        barrier.wait()
        results[index] = func()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_parallel_member_patches_lose_no_member(api):
    ids = [api("POST", "/Users", {"userName": f"user{i}"})[1]["id"] for i in range(2 * ROUNDS)]
    status, group = api("POST", "/Groups", {"displayName": "Eng"})
    assert status == 201
    for round_ in range(ROUNDS):
        a, b = ids[2 * round_], ids[2 * round_ + 1]
        results = parallel(
            lambda a=a: api("PATCH", f"/Groups/{group['id']}",
                            {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members",
                                                                    "value": [{"value": a}]}]}),
            lambda b=b: api("PATCH", f"/Groups/{group['id']}",
                            {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members",
                                                                    "value": [{"value": b}]}]}),
        )
        assert [status for status, _ in results] == [204, 204]
    dgroup = DirectoryGroup.objects.get(display_name="Eng")
    assert User.objects.filter(groups=dgroup.group).count() == 2 * ROUNDS
    status, final = api("GET", f"/Groups/{group['id']}")
    assert len(final["members"]) == 2 * ROUNDS and final["meta"]["version"] == f'W/"{1 + 2 * ROUNDS}"'


def test_parallel_creates_of_one_username_give_one_201_and_one_409(api):
    for round_ in range(ROUNDS):
        name = f"race{round_}@example.com"
        results = parallel(lambda name=name: api("POST", "/Users", {"userName": name}),
                           lambda name=name: api("POST", "/Users", {"userName": name}))
        statuses = sorted(status for status, _ in results)
        assert statuses == [201, 409], results
        conflict = next(body for status, body in results if status == 409)
        assert conflict["scimType"] == "uniqueness"
        assert "duplicate key" not in conflict["detail"] and "auth_user" not in conflict["detail"]
        assert User.objects.filter(username=name).count() == 1


def _one_201_one_409(results, name: str) -> str:
    statuses = sorted(status for status, _ in results)
    assert statuses == [201, 409], results
    conflict = next(body for status, body in results if status == 409)
    assert conflict["scimType"] == "uniqueness" and "duplicate key" not in conflict["detail"]
    assert User.objects.filter(username__iexact=name).count() == 1
    return next(body for status, body in results if status == 201)["id"]


def test_parallel_posts_adopting_one_user_give_one_201_and_one_409(api, root_org):
    Source.objects.filter(name="Okta").update(adoption_enabled=True)
    for round_ in range(ROUNDS):
        name = f"adopt{round_}"
        user = apply_identity_change(actor=Actor.system("tests"), change=IdentityChange(
            username=name, email=f"{name}@example.com", org_id=root_org.pk, mode=Mode.CREATE)).user
        results = parallel(lambda name=name: api("POST", "/Users", {"userName": name}),
                           lambda name=name: api("POST", "/Users", {"userName": name.upper()}))
        scim_id = _one_201_one_409(results, name)
        assert ScimResource.objects.get(user=user).scim_id == scim_id
        assert ExternalIdentity.objects.get(user=user).external_id == scim_id


def test_parallel_reposts_after_delete_give_one_201_and_one_409(api):
    for round_ in range(ROUNDS):
        name = f"back{round_}"
        status, created = api("POST", "/Users", {"userName": name})
        assert status == 201
        assert api("DELETE", f"/Users/{created['id']}")[0] == 204
        results = parallel(lambda name=name: api("POST", "/Users", {"userName": name}),
                           lambda name=name: api("POST", "/Users", {"userName": name}))
        assert _one_201_one_409(results, name) == created["id"]
        assert User.objects.get(username=name).profile.state == "active"


def test_member_patch_does_its_work_before_it_waits_for_the_group_lock(api):
    """The group's row lock is taken last (service.group_members_patch): while another transaction
    holds the row, a member PATCH gets as far as its version bump -- membership, audit and rule
    refresh done -- and waits only there; released, it completes and keeps its member."""
    from django.db import connections

    status, user = api("POST", "/Users", {"userName": "late.lock"})
    assert status == 201
    status, group = api("POST", "/Groups", {"displayName": "Locked"})
    assert status == 201
    holder = connections.create_connection("default")
    holder.connect()
    holder.set_autocommit(False)
    results = []
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM provisioning_scimresource WHERE scim_id = %s FOR UPDATE", [group["id"]])
        thread = threading.Thread(target=lambda: results.append(api("PATCH", f"/Groups/{group['id']}", {
            "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members", "value": [{"value": user["id"]}]}]})))
        thread.start()
        waiting = ""
        for _ in range(600):  # until the PATCH blocks (at most 60 s on a loaded machine)
            with connection.cursor() as cursor:
                cursor.execute("SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND datname = current_database() AND pid <> pg_backend_pid()")
                row = cursor.fetchone()
            if row:
                waiting = row[0]
                break
            thread.join(0.1)
        assert waiting.startswith('UPDATE "provisioning_scimresource" SET version = version + 1'), waiting
    finally:
        holder.rollback()
        holder.close()
    thread.join(60)
    assert [status for status, _ in results] == [204]
    assert User.objects.filter(groups=DirectoryGroup.objects.get(display_name="Locked").group,
                               username="late.lock").exists()


def test_parallel_patches_adding_one_user_to_two_groups_keep_both_in_the_stored_record(api):
    """Two member PATCHes of different groups add the same user at once (an IdP onboarding someone
    into several groups). Each refreshes the user's stored source record with the user's groups;
    the second must read them after the first committed, or its record drops the first's group and
    later rule runs from stored records (reapply, previews) would not see it."""
    from django.db import connections

    from provisioning.resolve import stored_record

    status, user = api("POST", "/Users", {"userName": "two.groups"})
    assert status == 201
    gids = [api("POST", "/Groups", {"displayName": name})[1]["id"] for name in ("Blue", "Green")]
    link = ExternalIdentity.objects.get(user__username="two.groups")
    holder = connections.create_connection("default")
    holder.connect()
    holder.set_autocommit(False)
    threads, results = [], []
    try:
        with holder.cursor() as cursor:  # both PATCHes run up to the stored record, then wait here
            cursor.execute("SELECT id FROM accounts_externalidentity WHERE id = %s FOR UPDATE", [link.pk])
        for gid in gids:
            threads.append(threading.Thread(target=lambda gid=gid: results.append(api("PATCH", f"/Groups/{gid}", {
                "schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "members",
                                                       "value": [{"value": user["id"]}]}]}))))
            threads[-1].start()
        for _ in range(600):  # until both wait for the held link (at most 60 s on a loaded machine)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                               "AND datname = current_database() AND pid <> pg_backend_pid()")
                if cursor.fetchone()[0] >= 2:
                    break
            threads[0].join(0.1)
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in results] == [204, 204]
    link.refresh_from_db()
    assert stored_record(link.raw).groups == {"blue", "green", *gids}
