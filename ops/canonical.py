"""A canonical export of the identity data: every row of every identity model, ordered, as plain values.

Used to prove a backup round trip (tests/ops/test_backup.py): two databases hold the same identity data
exactly when their exports are equal. Covers auth (users, groups), accounts (orgs, roles, memberships,
external identities, audit log…), sso (identity providers, SP keys) and provisioning when it has models.
"""

from __future__ import annotations

from django.apps import apps
from django.core import serializers

APPS = ("auth", "accounts", "sso", "provisioning")
SKIP = {"sso.SsoSession"}  # sign-in sessions, not identity data


def canonical_export() -> dict[str, list[dict]]:
    """``{"app.Model": [row, ...]}`` with rows ordered by primary key and many-to-many ids sorted."""
    out: dict[str, list[dict]] = {}
    for label in APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        for model in config.get_models():
            name = model._meta.label
            if name in SKIP or model._meta.proxy:
                continue
            rows = serializers.serialize("python", model._base_manager.order_by("pk"))
            for row in rows:
                for key, value in row["fields"].items():
                    if isinstance(value, list) and all(isinstance(v, int | str) for v in value):
                        row["fields"][key] = sorted(value, key=str)
            out[name] = rows
    return out
