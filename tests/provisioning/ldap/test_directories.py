"""Directory settings: validation, the bind password encrypted at rest and never audited, and
``manage.py directory add`` (the same service as the console)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from accounts.exceptions import IdentityError, ValidationFailed
from accounts.identity.types import Actor
from accounts.models import AuditEvent
from provisioning.ldap.directories import DirectorySettings, directory_create, directory_update, preset_of
from provisioning.ldap.secrets import decrypt_secret
from provisioning.models import Directory, Source

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def _settings(**overrides) -> DirectorySettings:
    values = {"urls": ("ldap://127.0.0.1:3899/",), "base_dns": ("dc=example,dc=org",), "preset": "openldap",
              "bind_dn": "cn=sync,dc=example,dc=org"}
    values.update(overrides)
    return DirectorySettings(**values)


def test_create_stores_the_password_encrypted_and_audits_without_it(root_org):
    directory = directory_create(actor=ACTOR, name="Corp LDAP", data=_settings(), bind_password="s3cret-Pw",
                                 org=root_org)
    directory.refresh_from_db()
    assert directory.source.kind == Source.Kind.LDAP
    assert directory.source.slug == "corp-ldap"
    assert directory.source.fixed_org_id == root_org.pk
    assert "s3cret-Pw" not in directory.bind_password_encrypted
    assert decrypt_secret(directory.bind_password_encrypted) == "s3cret-Pw"
    events = AuditEvent.objects.filter(action__in=["provisioning_source_created", "directory_created"])
    assert sorted(e.action for e in events) == ["directory_created", "provisioning_source_created"]
    for event in AuditEvent.objects.all():
        assert "s3cret-Pw" not in str(event.new_value) + str(event.old_value)
    created = AuditEvent.objects.get(action="directory_created")
    assert created.new_value["bind_password"] == "(set)"
    assert created.new_value["interval"] == 12 * 3600
    assert (created.new_value["reconcile_every"], created.new_value["full_every"]) == (3600, 24 * 3600)


def test_update_keeps_the_password_unless_given_and_audits_each_field():
    directory = directory_create(actor=ACTOR, name="Corp", data=_settings(), bind_password="first")
    directory_update(actor=ACTOR, directory=directory, data=_settings(page_size=200))
    assert decrypt_secret(Directory.objects.get().bind_password_encrypted) == "first"
    directory_update(actor=ACTOR, directory=directory, data=_settings(page_size=200), bind_password="second")
    assert decrypt_secret(Directory.objects.get().bind_password_encrypted) == "second"
    updates = list(AuditEvent.objects.filter(action="directory_updated").order_by("pk")
                   .values_list("field", "old_value", "new_value"))
    assert updates == [("page_size", 500, 200), ("bind_password", None, "(changed)")]


@pytest.mark.parametrize(("overrides", "code", "field"), [
    ({"urls": ()}, "url_required", "urls"),
    ({"urls": ("http://x",)}, "url_invalid", "urls"),
    ({"base_dns": ()}, "base_dn_required", "base_dns"),
    ({"base_dns": ("example",)}, "base_dn_invalid", "base_dns"),
    ({"preset": "novell"}, "preset_unknown", "preset"),
    ({"user_filter": "(objectClass=person"}, "invalid_filter", "user_filter"),
    ({"group_filter": "objectClass=group"}, "invalid_filter", "group_filter"),
    ({"page_size": 0}, "page_size_invalid", "page_size"),
    ({"tls_mode": "ldaps"}, "tls_mode_mismatch", "urls"),
    ({"attribute_map": {"password": "userPassword"}}, "attribute_map_unknown", "attribute_map"),
    ({"interval": timedelta(minutes=4)}, "interval_too_short", "interval"),
    ({"interval": timedelta(days=367)}, "interval_too_long", "interval"),
    ({"reconcile_every": timedelta(hours=-1)}, "reconcile_every_invalid", "reconcile_every"),
    ({"reconcile_every": timedelta(days=367)}, "reconcile_every_invalid", "reconcile_every"),
    ({"full_every": timedelta(seconds=-1)}, "full_every_invalid", "full_every"),
    ({"full_every": timedelta(days=9999)}, "full_every_invalid", "full_every"),
])
def test_bad_settings_are_refused_with_a_code_and_nothing_is_created(overrides, code, field):
    with pytest.raises(ValidationFailed) as caught:
        directory_create(actor=ACTOR, name="Bad", data=_settings(**overrides))
    assert (caught.value.code, caught.value.field) == (code, field)
    assert Source.objects.count() == 0 and Directory.objects.count() == 0


def test_a_second_directory_with_the_same_name_is_refused():
    directory_create(actor=ACTOR, name="Corp", data=_settings())
    with pytest.raises(ValidationFailed) as caught:
        directory_create(actor=ACTOR, name="corp", data=_settings())
    assert caught.value.code == "name_taken"


def test_preset_of_applies_the_attribute_map_and_filters():
    directory = directory_create(actor=ACTOR, name="Corp", data=_settings(
        attribute_map={"username": "cn"}, user_filter="(objectClass=person)"))
    preset = preset_of(directory)
    assert (preset.username, preset.user_filter, preset.anchor) == ("cn", "(objectClass=person)", "entryUUID")


def test_unreadable_password_after_key_change_is_a_coded_error(settings):
    directory = directory_create(actor=ACTOR, name="Corp", data=_settings(), bind_password="pw")
    settings.IDM_DIRECTORY_SECRET_KEY = "another key"
    with pytest.raises(IdentityError) as caught:
        decrypt_secret(directory.bind_password_encrypted)
    assert caught.value.code == "bind_password_unreadable"


def test_manage_py_directory_add(tmp_path, root_org):
    secret = tmp_path / "pw"
    secret.write_text("file-secret\n")
    out = io.StringIO()
    call_command("directory", "add", "HQ Directory", "--url", "ldap://127.0.0.1:3899/", "--url",
                 "ldap://127.0.0.1:3900/", "--bind-dn", "cn=sync,dc=example,dc=org", "--bind-password-file",
                 str(secret), "--base-dn", "dc=example,dc=org", "--preset", "active-directory", "--org",
                 root_org.name, "--user-filter", "(objectClass=user)", stdout=out)
    assert out.getvalue() == "Created directory HQ Directory (source hq-directory).\n"
    directory = Directory.objects.get()
    assert directory.urls == ["ldap://127.0.0.1:3899/", "ldap://127.0.0.1:3900/"]
    assert (directory.preset, directory.user_filter, directory.tls_mode) == ("active-directory", "(objectClass=user)",
                                                                           "none")
    assert decrypt_secret(directory.bind_password_encrypted) == "file-secret"
    assert directory.source.fixed_org_id == root_org.pk


def test_manage_py_directory_add_reports_a_coded_error(tmp_path):
    with pytest.raises(CommandError) as caught:
        call_command("directory", "add", "X", "--url", "ftp://x", "--base-dn", "dc=x", "--preset", "openldap")
    assert str(caught.value) == "url_invalid: 'ftp://x' is not an ldap:// or ldaps:// URL."
    with pytest.raises(CommandError) as caught:
        call_command("directory", "add", "X", "--url", "ldap://x", "--base-dn", "dc=x", "--preset", "openldap",
                     "--bind-password-file", str(tmp_path / "missing"))
    assert str(caught.value) == "Cannot read the bind password file: No such file or directory"


def test_manage_py_directory_add_takes_the_schedule():
    call_command("directory", "add", "Sched", "--url", "ldap://127.0.0.1:3899/", "--base-dn", "dc=example,dc=org",
                 "--preset", "openldap", "--interval", "0.5", "--reconcile-every", "0", "--full-every", "168",
                 stdout=io.StringIO())
    directory = Directory.objects.get()
    assert (directory.interval, directory.reconcile_every, directory.full_every) == (
        timedelta(minutes=30), timedelta(0), timedelta(days=7))
    created = AuditEvent.objects.get(action="directory_created")
    assert (created.new_value["interval"], created.new_value["reconcile_every"], created.new_value["full_every"]) == (
        1800, 0, 7 * 24 * 3600)


def test_manage_py_directory_add_defaults_to_the_console_schedule():
    call_command("directory", "add", "Plain", "--url", "ldap://127.0.0.1:3899/", "--base-dn", "dc=example,dc=org",
                 "--preset", "openldap", stdout=io.StringIO())
    directory = Directory.objects.get()
    assert (directory.interval, directory.reconcile_every, directory.full_every) == (
        timedelta(hours=12), timedelta(hours=1), timedelta(hours=24))


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--full-every", "-1", "give a number of hours, 0 to 8784"),
    ("--full-every", "nan", "give a number of hours, 0 to 8784"),
    ("--reconcile-every", "1e300", "give a number of hours, 0 to 8784"),
    ("--interval", "soon", "give a number of hours, 0 to 8784"),
    ("--interval", "0.01", "interval_too_short: Sync at most every 5 minutes."),
])
def test_manage_py_directory_add_refuses_a_bad_schedule(option, value, message):
    with pytest.raises(CommandError, match=message):
        call_command("directory", "add", "X", "--url", "ldap://x", "--base-dn", "dc=x", "--preset", "openldap",
                     option, value)
    assert not Directory.objects.exists()
