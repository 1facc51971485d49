"""Backup and restore: a round trip keeps every identity row (canonical export), checks refuse bad input.

Runs on whichever database the suite uses (SQLite file or PostgreSQL via pg_dump/pg_restore); CI runs
both. Committed rows (transactional test): pg_dump and SQLite's backup API read from other connections.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.identity.audit import record_event
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, ExternalLink, IdentityChange, Mode
from accounts.models import AuditEvent, ExternalIdentity
from ops.backup import BackupError, backup_create, backup_restore, list_backups
from ops.canonical import canonical_export
from ops.models import BackupRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup_dir(settings, tmp_path):
    settings.IDM_BACKUP_DIR = str(tmp_path / "backups")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.IDM_SSO_SP_KEY_FILE = settings.IDM_SSO_SP_CERT_FILE = ""
    return tmp_path / "backups"


@pytest.fixture
def identity_data(org_factory, user_factory, system_actor, tmp_path):
    """Orgs, users with roles and an external identity, an identity provider, SP keys, audit events."""
    from sso import keys
    from sso.models import IdentityProvider
    from sso.services import provider_save
    from tests.sso.idp import TestIdP, make_keys

    acme = org_factory("Acme")
    eng = org_factory("Engineering", parent=acme, external_ref="ENG-1")
    user_factory("admin.a", org=acme, roles=["customer-cloud-admin"])
    user_factory("eng.b", org=eng, roles=["org-admin"], first_name="Zoë", last_name="Ünicode")
    linked = user_factory("linked.c", org=eng)
    apply_identity_change(change=IdentityChange(
        user_id=linked.pk, mode=Mode.UPDATE,
        link=ExternalLink(source="scim", provider="okta", external_id="00u-123")), actor=system_actor)
    key, cert = make_keys(tmp_path / "idp", "idp")
    provider_save(actor=system_actor, provider=IdentityProvider(name="Okta"),
                  metadata_xml=TestIdP(key_file=key, cert_file=cert).metadata())
    keys.current_key()
    keys.add_next_key()
    record_event(actor=Actor.system("test"), action="test.event", target_type="user", target_label="x",
                 new={"nested": [1, "two"]}, message="line one\nline two")
    assert ExternalIdentity.objects.filter(external_id="00u-123").exists()


def test_round_trip_restores_identical_identity_data(backup_dir, identity_data, django_user_model):
    before = canonical_export()
    assert len(before["auth.User"]) == 3 and before["sso.IdentityProvider"] and len(before["sso.ServiceProviderKey"]) == 2
    record = backup_create(trigger="command")
    dump = Path(record.path)
    assert record.ok and dump.exists() and record.size_bytes == dump.stat().st_size
    assert oct(dump.stat().st_mode & 0o777) == "0o600"
    assert oct(backup_dir.stat().st_mode & 0o777) == "0o700"
    manifest = json.loads(Path(f"{dump}.json").read_text())
    assert manifest["sha256"] == record.sha256 == Path(f"{dump}.sha256").read_text().split()[0]
    assert "accounts.0001_initial" in manifest["migrations"] and manifest["app_version"]
    assert AuditEvent.objects.filter(action="backup.created", new_value__file=dump.name).exists()
    audit_after_backup = canonical_export()["accounts.AuditEvent"]

    # Change the data after the backup: delete, edit, add.
    django_user_model.objects.filter(username="eng.b").delete()
    django_user_model.objects.filter(username="admin.a").update(email="changed@example.com")
    django_user_model.objects.create(username="intruder")
    assert canonical_export() != before

    with pytest.raises(BackupError) as refused:
        backup_restore(path=dump)
    assert refused.value.code == "database_not_empty"

    backup_restore(path=dump, force=True)
    after = canonical_export()
    # The backup.created event is written after the dump, so it is the only row not in the backup.
    before_audit = [e for e in audit_after_backup if e["fields"]["action"] != "backup.created"]
    assert after["accounts.AuditEvent"] == before_audit
    assert {k: v for k, v in after.items() if k != "accounts.AuditEvent"} == \
           {k: v for k, v in before.items() if k != "accounts.AuditEvent"}
    assert after["accounts.AuditEvent"] == before["accounts.AuditEvent"]


def test_restore_into_an_emptied_database_needs_no_force(backup_dir, identity_data):
    before = canonical_export()
    dump = Path(backup_create().path)
    call_command("flush", interactive=False, verbosity=0)
    assert canonical_export()["auth.User"] == []
    call_command("restore_backup", str(dump))
    assert canonical_export()["auth.User"] == before["auth.User"]
    assert canonical_export()["accounts.ExternalIdentity"] == before["accounts.ExternalIdentity"]


def test_restore_refuses_a_damaged_file_and_leaves_the_database_alone(backup_dir, identity_data):
    dump = Path(backup_create().path)
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    before = canonical_export()
    with pytest.raises(CommandError, match=r"checksum_mismatch"):
        call_command("restore_backup", str(dump), "--force")
    assert canonical_export() == before


def test_restore_refuses_a_backup_from_newer_code_and_a_missing_manifest(backup_dir, identity_data):
    dump = Path(backup_create().path)
    manifest_path = Path(f"{dump}.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["migrations"].append("accounts.9999_from_the_future")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BackupError) as refused:
        backup_restore(path=dump, force=True)
    assert refused.value.code == "unknown_migrations" and "9999_from_the_future" in refused.value.message
    manifest_path.unlink()
    with pytest.raises(BackupError) as refused:
        backup_restore(path=dump, force=True)
    assert refused.value.code == "manifest_missing"
    with pytest.raises(BackupError) as refused:
        backup_restore(path=dump.with_name("nope.pgdump"), force=True)
    assert refused.value.code == "backup_not_found"


def test_failed_backup_is_recorded_and_audited(backup_dir, settings):
    Path(settings.IDM_BACKUP_DIR).parent.mkdir(parents=True, exist_ok=True)
    Path(settings.IDM_BACKUP_DIR).write_text("a file where the folder should be")
    with pytest.raises(BackupError) as failed:
        backup_create()
    assert failed.value.code == "backup_failed"
    record = BackupRecord.objects.get()
    assert record.ok is False and record.error.startswith("backup_failed")
    assert AuditEvent.objects.filter(action="backup.failed").count() == 1


def test_rotation_keeps_daily_and_weekly(backup_dir, settings, db):
    settings.IDM_BACKUP_KEEP_DAILY, settings.IDM_BACKUP_KEEP_WEEKLY = 2, 3
    start = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # a Monday
    for day in range(15):
        backup_create(now=start + timedelta(days=day))
    kept = sorted(when.date().isoformat() for when, _ in list_backups(backup_dir))
    # Newest two days (16th, 15th) + newest of the three newest ISO weeks (week 12: 16th, 11: Sun 15th, 10: Sun 8th).
    assert kept == ["2026-03-08", "2026-03-15", "2026-03-16"], kept
    assert len(list(backup_dir.glob("*.json"))) == len(kept) == len(list(backup_dir.glob("*.sha256")))
