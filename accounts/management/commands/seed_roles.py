"""Create or refresh the built-in role catalogue and the default organization (idempotent)."""

from django.core.management.base import BaseCommand

from accounts.roles import seed_roles


class Command(BaseCommand):
    help = "Create or refresh the built-in roles and the default organization."

    def handle(self, *args, **options):
        seed_roles()
        self.stdout.write("Roles and default organization are in place.")
