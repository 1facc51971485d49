"""Load a small demo directory (orgs, users, roles) so a newcomer sees a living console.

Everything goes through the org and identity services with ``Actor.system("demo")``, like any
other front door, so the audit log shows the demo's history too. Idempotent: if the demo's top
org ("Acme") already exists the command does nothing.
"""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import console_actions
from accounts.identity import orgs
from accounts.identity.types import Actor
from accounts.management.commands.create_first_admin import _generated_password
from accounts.models import Organization, Role
from accounts.roles import seed_roles

DEMO_ROOT = "Acme"

# (username, first, last, org key, roles, state); org keys are the orgs created in ``handle``.
USERS = [
    ("alice.admin", "Alice", "Adams", "acme", ["cross-org-admin"], "active"),
    ("eve.eng-admin", "Eve", "Engel", "engineering", ["org-admin"], "active"),
    ("oscar.auditor", "Oscar", "Ortiz", "acme", ["audit-log-viewer"], "active"),
    ("hana.helpdesk", "Hana", "Hill", "acme", ["help-desk"], "active"),
    ("ivan.identity", "Ivan", "Ito", "acme", ["identity-management-administrator"], "active"),
    ("paul.platform", "Paul", "Park", "platform", [], "active"),
    ("priya.platform", "Priya", "Patel", "platform", [], "active"),
    ("peter.platform", "Peter", "Price", "platform", [], "active"),
    ("emma.eng", "Emma", "Evans", "engineering", [], "active"),
    ("ethan.eng", "Ethan", "Ellis", "engineering", [], "active"),
    ("erin.eng", "Erin", "Ezra", "engineering", ["user-modify"], "active"),
    ("sam.sales", "Sam", "Silva", "sales", ["org-manager"], "active"),
    ("sara.sales", "Sara", "Stone", "sales", [], "active"),
    ("steve.sales", "Steve", "Shaw", "sales", [], "active"),
    ("sophie.sales", "Sophie", "Sato", "sales", [], "active"),
    ("bob.blocked", "Bob", "Baker", "sales", [], "blocked"),
    ("ines.invited", "Ines", "Ibsen", "engineering", [], "invited"),
    ("dave.former", "Dave", "Dunn", "sales", [], "deactivated"),
    ("mia.mfa", "Mia", "Moreau", "acme", ["multi-factor-auth-admin"], "active"),
    ("nina.new", "Nina", "Novak", "platform", [], "active"),
]


class Command(BaseCommand):
    help = "Load demo organizations and users (skipped if already loaded)."

    def add_arguments(self, parser):
        parser.add_argument("--password", help="Password of the demo users (default: IDM_DEMO_PASSWORD, "
                                                "else a generated one, printed once).")

    def handle(self, *args, **options):
        seed_roles()
        if Organization.objects.filter(name__iexact=DEMO_ROOT).exists():
            self.stdout.write("Demo data is already loaded; nothing to do.")
            return
        actor = Actor.system("demo")
        password = options["password"] or os.environ.get("IDM_DEMO_PASSWORD") or _generated_password()
        with transaction.atomic():
            root = Organization.objects.filter(parent__isnull=True).order_by("id").first()
            acme = orgs.org_create(actor=actor, name=DEMO_ROOT, parent=root, external_ref="ACME-001",
                                   notes="Demo company.")
            engineering = orgs.org_create(actor=actor, name="Engineering", parent=acme, external_ref="CC-100")
            platform = orgs.org_create(actor=actor, name="Platform", parent=engineering, external_ref="CC-110")
            sales = orgs.org_create(actor=actor, name="Sales", parent=acme, external_ref="CC-200")
            orgs.org_update_settings(actor=actor, org=engineering, two_factor_required=True)
            orgs.org_update_settings(actor=actor, org=sales, inherit_default_roles=False,
                                     default_roles=set(Role.objects.filter(slug="console-user")))
            by_key = {"acme": acme, "engineering": engineering, "platform": platform, "sales": sales}

            for username, first, last, org_key, roles, state in USERS:
                result = console_actions.user_create(
                    actor=actor, username=username, org_id=by_key[org_key].pk,
                    email=f"{username.replace('-', '')}@acme.example", first_name=first, last_name=last,
                    password=None if state == "invited" else password, roles=roles or None,
                )
                if state == "blocked":
                    console_actions.user_block(actor=actor, user=result.user)
                elif state == "deactivated":
                    console_actions.user_deactivate(actor=actor, user=result.user)

        self.stdout.write(self.style.SUCCESS(
            f"Loaded demo data: 4 organizations under {root.name}, {len(USERS)} users.\n"
            f"Demo users sign in with password {password!r}, e.g. 'eve.eng-admin' (Org Admin of Engineering) "
            "or 'oscar.auditor' (Audit Log Viewer)."
        ))
