"""Review 2026-11-30 F8: numbers typed into the provider and directory forms are validated (finite,
within bounds) and a bad one is a form error with its code, never a 500 and never half-applied."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from accounts.identity.types import Actor
from provisioning.models import Directory, Source
from provisioning.scim import providers
from provisioning.scim.models import ScimToken

pytestmark = pytest.mark.django_db


@pytest.fixture
def scim_source(root_org):
    return providers.provider_create(actor=Actor.system("tests"), name="EntraB").source


@pytest.mark.parametrize(("value", "code"), [
    ("nan", "invalid"), ("inf", "invalid"), ("-inf", "invalid"), ("1e400", "invalid"), ("abc", "invalid"),
    ("-1", "min_value"), ("721", "max_value"),
])
def test_rotate_with_a_bad_overlap_is_a_form_error_and_issues_no_token(admin_client, scim_source, value, code):
    before = list(ScimToken.objects.filter(source=scim_source).values_list("pk", "expires_at"))
    response = admin_client.post(f"/provisioning/scim/{scim_source.pk}/rotate/", {"overlap_hours": value})
    assert response.status_code == 400
    html = response.content.decode()
    assert f"Enter the overlap as a number of hours (0 to 720). ({code})" in html
    assert 'id="scim-token"' not in html
    assert list(ScimToken.objects.filter(source=scim_source).values_list("pk", "expires_at")) == before


@pytest.mark.parametrize(("value", "hours"), [("", 24), ("0", 0), ("2.5", 2.5), ("720", 720)])
def test_rotate_with_a_good_overlap_keeps_the_old_token_that_long(admin_client, scim_source, value, hours):
    old = ScimToken.objects.get(source=scim_source)
    response = admin_client.post(f"/provisioning/scim/{scim_source.pk}/rotate/", {"overlap_hours": value})
    assert response.status_code == 200 and 'id="scim-token"' in response.content.decode()
    old.refresh_from_db()
    new = ScimToken.objects.filter(source=scim_source).exclude(pk=old.pk).get()
    assert round((old.expires_at - new.created_at).total_seconds() / 3600, 2) == hours


def _directory_form(**overrides) -> dict:
    data = {"name": "CorpAD", "urls": "ldap://127.0.0.1:1", "tls_mode": "none", "verify_tls": "on",
            "bind_dn": "cn=svc,dc=corp,dc=example", "bind_password": "pw", "base_dns": "dc=corp,dc=example",
            "preset": "openldap", "page_size": "500", "interval_hours": "12",
            "deactivation_threshold_percent": "10", "deactivation_threshold_min": "50"}
    data.update(overrides)
    return data


@pytest.mark.parametrize(("field", "value", "code"), [
    ("interval_hours", "nan", "invalid"),
    ("interval_hours", "inf", "invalid"),
    ("interval_hours", "1e300", "max_value"),
    ("interval_hours", "0", "min_value"),
    ("reconcile_hours", "1e300", "max_value"),
    ("reconcile_hours", "-1", "min_value"),
    ("full_hours", "1e300", "max_value"),
    ("full_hours", "inf", "invalid"),
    ("full_hours", "-0.5", "min_value"),
    ("deactivation_threshold_min", "99999999999999999999", "max_value"),
    ("deactivation_threshold_percent", "101", "max_value"),
    ("page_size", "1e3", "invalid"),
])
def test_directory_numbers_out_of_range_are_form_errors(admin_client, field, value, code):
    response = admin_client.post(reverse("provisioning:directory_add"), _directory_form(**{field: value}))
    assert response.status_code == 200
    assert f'data-code="{code}"' in response.content.decode()
    assert not Directory.objects.exists() and not Source.objects.filter(name="CorpAD").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "721", "x"])
def test_command_line_overlap_has_the_same_bounds(scim_source, value):
    before = ScimToken.objects.filter(source=scim_source).count()
    with pytest.raises(CommandError, match="give the overlap in hours, 0 to 720"):
        call_command("scim_provider", "rotate-token", scim_source.name, "--overlap-hours", value)
    assert ScimToken.objects.filter(source=scim_source).count() == before
