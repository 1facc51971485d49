"""``manage.py scim_provider create NAME [--org ORG] | rotate-token NAME [--overlap-hours H] | list``.

``create`` and ``rotate-token`` print shell-sourceable lines (``SCIM_BASE_URL=…``, ``SCIM_TOKEN=…``);
the token is shown only this once. Same service as the console (``provisioning.scim.providers``).
"""

from __future__ import annotations

import argparse
import shlex
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from accounts.exceptions import IdentityError
from accounts.identity.types import Actor
from provisioning.forms import TokenRotateForm
from provisioning.models import Source
from provisioning.scim import providers


def _overlap_hours(text: str) -> float:
    """The console's bounds (``TokenRotateForm``): finite, 0 to 720 hours; "nan" is a usage error."""
    form = TokenRotateForm({"overlap_hours": text})
    if not text or not form.is_valid():
        raise argparse.ArgumentTypeError(f"{text!r}: give the overlap in hours, 0 to {TokenRotateForm.MAX_OVERLAP_HOURS}")
    return form.cleaned_data["overlap_hours"]


class Command(BaseCommand):
    help = "Create SCIM providers, rotate their tokens, list them."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a provider; prints SCIM_BASE_URL and SCIM_TOKEN.")
        create.add_argument("name")
        create.add_argument("--org", default=None, help="Organization (name or path) new users go to.")
        rotate = sub.add_parser("rotate-token", help="Issue a new token; prints SCIM_TOKEN.")
        rotate.add_argument("name")
        rotate.add_argument("--overlap-hours", type=_overlap_hours, default=24.0,
                            help="How long the previous token stays valid (default 24).")
        sub.add_parser("list", help="List SCIM providers.")

    def handle(self, *args, **options):
        actor = Actor.system("manage.py scim_provider")
        try:
            if options["action"] == "create":
                creds = providers.provider_create(actor=actor, name=options["name"], org=options["org"])
                self.stdout.write(f"SCIM_BASE_URL={shlex.quote(creds.base_url)}")
                self.stdout.write(f"SCIM_TOKEN={shlex.quote(creds.token)}")
            elif options["action"] == "rotate-token":
                source = providers.provider_get(options["name"])
                token = providers.token_rotate(actor=actor, source=source,
                                               overlap=timedelta(hours=options["overlap_hours"]))
                self.stdout.write(f"SCIM_TOKEN={shlex.quote(token)}")
            else:
                for source in Source.objects.filter(kind=Source.Kind.SCIM).order_by("name"):
                    state = "enabled" if source.enabled else "disabled"
                    self.stdout.write(f"{source.slug}\t{source.name}\t{state}")
        except IdentityError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
