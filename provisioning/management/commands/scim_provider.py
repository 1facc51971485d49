"""``manage.py scim_provider create NAME [--org ORG] | rotate-token NAME [--overlap-hours H] | list``,
``delete NAME``, and the optional HTTP basic credential: ``enable-basic NAME | rotate-basic NAME [--overlap-hours H] |
disable-basic NAME``.

``create`` and ``rotate-token`` print shell-sourceable lines (``SCIM_BASE_URL=…``, ``SCIM_TOKEN=…``);
``enable-basic`` and ``rotate-basic`` print ``SCIM_BASIC_USER=…`` and ``SCIM_BASIC_PASSWORD=…``. Secrets
are shown only this once. Same service as the console (``provisioning.scim.providers``).
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
        basic = sub.add_parser("enable-basic", help="Turn HTTP basic on; prints SCIM_BASIC_USER and SCIM_BASIC_PASSWORD.")
        basic.add_argument("name")
        rotate_basic = sub.add_parser("rotate-basic", help="A new HTTP basic password; prints SCIM_BASIC_USER and SCIM_BASIC_PASSWORD.")
        rotate_basic.add_argument("name")
        rotate_basic.add_argument("--overlap-hours", type=float, default=24.0,
                                  help="How long the previous password stays valid (default 24).")
        sub.add_parser("delete", help="Delete a provider that owns no user or group.").add_argument("name")
        sub.add_parser("disable-basic", help="Turn HTTP basic off (every password stops working).").add_argument("name")

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
            elif options["action"] in ("enable-basic", "rotate-basic"):
                source = providers.provider_get(options["name"])
                if options["action"] == "enable-basic":
                    creds = providers.basic_enable(actor=actor, source=source)
                else:
                    creds = providers.basic_rotate(actor=actor, source=source,
                                                   overlap=timedelta(hours=options["overlap_hours"]))
                self.stdout.write(f"SCIM_BASIC_USER={shlex.quote(creds.username)}")
                self.stdout.write(f"SCIM_BASIC_PASSWORD={shlex.quote(creds.password)}")
            elif options["action"] == "delete":
                providers.provider_delete(actor=actor, source=providers.provider_get(options["name"]))
            elif options["action"] == "disable-basic":
                providers.basic_disable(actor=actor, source=providers.provider_get(options["name"]))
            else:
                for source in Source.objects.filter(kind=Source.Kind.SCIM).order_by("name"):
                    state = "enabled" if source.enabled else "disabled"
                    self.stdout.write(f"{source.slug}\t{source.name}\t{state}")
        except IdentityError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
