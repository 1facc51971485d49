"""Bulk upload pages match the console: the org chooser is the tree, and the preview lists the rows it
will create (with what they will hold) as well as the updates and errors."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.bulk_upload.models import BulkUpload
from tests.accounts.bulk_support import media  # noqa: F401
from tests.accounts.test_bulk_views import eager, post_file  # noqa: F401

pytestmark = pytest.mark.django_db


def test_preview_lists_new_users_with_what_they_get(admin_client, org_factory, user_factory, media,  # noqa: F811
                                                   django_capture_on_commit_callbacks):
    acme = org_factory("Acme")
    sales = org_factory("Sales", parent=acme)
    user_factory("carol", org=acme, email="carol@example.com")
    text = ("username,email,first_name,last_name,org,roles,password\n"
            "dora,dora@example.com,Dora,Dean,Sales,Help Desk,Xylo-Phone-91\n"
            "carol,carol@new.example,,,,,\n"
            "bad user,x@example.com,,,,,\n"
            "eve,eve@example.com,Eve,,,,\n")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_file(admin_client, text, org=acme)
    html = admin_client.get(response.url).content.decode()
    new = html[html.index('id="create-table"'):html.index("</table>", html.index('id="create-table"'))]
    assert "<td>2</td><td>dora</td><td>Dora Dean</td><td>dora@example.com</td><td>" in new
    assert f"/{acme.name}/{sales.name}</td><td>Help Desk</td><td>set</td>" in new
    # eve has no org cell: she goes to the upload's org, with its default roles, invited.
    assert "<td>5</td><td>eve</td><td>Eve</td><td>eve@example.com</td>" in new
    assert "org default roles</td><td>invited</td>" in new
    assert "carol" not in new and "bad user" not in new  # an update and an error are listed elsewhere
    assert 'id="diff-table"' in html and "carol@new.example" in html
    assert 'id="error-table"' in html
    assert not User.objects.filter(username__in=["dora", "eve"]).exists()  # nothing written yet
    assert BulkUpload.objects.get().preview["counts"]["create"] == 2


def test_org_chooser_is_the_tree_and_inputs_use_console_fields(admin_client, org_factory):
    acme = org_factory("Acme")
    org_factory("Sales", parent=acme)
    html = admin_client.get(reverse("bulk:start")).content.decode()
    assert ">— Acme</option>" in html and ">— — Sales</option>" in html
    assert 'type="file"' in html and 'class="field' in html
    assert "onclick=" not in html
