"""Create the first Customer Cloud Admin, if none exists, and print how to sign in."""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from accounts.credentials.service import require_password_change
from accounts.exceptions import IdentityError
from accounts.identity.service import apply_identity_change
from accounts.identity.types import Actor, IdentityChange, Mode
from accounts.models import Organization
from accounts.roles import CUSTOMER_CLOUD_ADMIN, seed_roles


def _generated_password() -> str:
    # Satisfies the password rules: classes, no whitespace, no triple repeats.
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(20))
        lowered = candidate.lower()  # the repeat rule ignores case ("aAa" is a run)
        if (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
                and any(c.isdigit() for c in candidate)
                and not any(lowered[i] == lowered[i + 1] == lowered[i + 2] for i in range(18))):
            return candidate


class Command(BaseCommand):
    help = "Create the first admin (Customer Cloud Admin + Django superuser) unless an admin exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@example.com")
        parser.add_argument("--password", help="Default: IDM_ADMIN_PASSWORD, else a generated one.")

    def handle(self, *args, **options):
        import os

        seed_roles()
        if User.objects.filter(groups__role__slug=CUSTOMER_CLOUD_ADMIN, is_active=True).exists():
            self.stdout.write("An admin already exists; sign in with its username and password.")
            return
        chosen = options["password"] or os.environ.get("IDM_ADMIN_PASSWORD")
        password = chosen or _generated_password()
        root = Organization.objects.filter(parent__isnull=True).order_by("id").first()
        if root is None:
            raise CommandError("No organization exists; run migrate first.")
        try:
            result = apply_identity_change(actor=Actor.system("setup"), change=IdentityChange(
                username=options["username"], email=options["email"], first_name="First", last_name="Admin",
                password=password, org_id=root.pk, roles=frozenset({CUSTOMER_CLOUD_ADMIN}), mode=Mode.CREATE,
                django_admin=True,  # Django's admin site is for superusers: the first admin gets it
            ))
        except IdentityError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        if chosen:
            self.stdout.write(self.style.SUCCESS(
                f"\nSign in at {settings.IDM_BASE_URL}/ as {options['username']!r} with the password you gave.\n"))
            return
        # A generated password reached a terminal or a run log: it must be changed at the first sign-in.
        require_password_change(actor=Actor.system("setup"), user=result.user)
        self.stdout.write(self.style.SUCCESS(
            f"\nSign in at {settings.IDM_BASE_URL}/ as {options['username']!r} with password: {password}\n"
            "(shown once; you choose a new password at the first sign-in)\n"
        ))
