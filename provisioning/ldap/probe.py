""""Test connection": bind, count what the filters match, and show how a few users would be mapped.

Read-only: one bind, paged counts (no attributes transferred), a sample of users translated and
evaluated by the source's rules exactly as a sync would (groups, nesting and all). Failures come back
as the client's coded errors, whose messages say what to fix.

The probe runs in a web worker, so it waits at most ``PROBE_TIMEOUT_SECONDS`` to connect and for each
request (or the directory's own timeouts when lower), not the sync's 60 s: a server that accepts the
connection and never answers used to hold a worker for a minute, and two such tests stalled the
console (second review, N6). The time a test takes still tells a closed port (refused at once) from a
silent one (the cap), while the error says "unreachable" for both; that is acceptable because only an
identity administrator (``manage_identity``) may press the button, each press is a CSRF-protected POST
that probes the server that same admin saved as the directory's (the admin can already make idm
connect there by syncing), and the cap bounds a press to a few seconds per server URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from accounts.exceptions import IdentityError, MappingError
from accounts.identity.orgs import OrgIndex
from provisioning.ldap.directories import open_client, preset_of
from provisioning.ldap.translate import expand_memberships, translate_group, translate_user
from provisioning.models import Directory
from provisioning.resolve import resolve_org, role_catalogue
from provisioning.rules import RuleSet, SourceRecord, evaluate

SAMPLE = 5
PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class SampleUser:
    """One directory user as idm would see it."""

    dn: str
    username: str
    email: str
    active: bool
    inactive_reason: str
    groups: tuple[str, ...]
    org: str
    roles: tuple[str, ...]


@dataclass
class ProbeReport:
    """What "Test connection" shows: the server used, counts and a sample, or the error."""

    server: str = ""
    users: int = 0
    groups: int = 0
    sample: list[SampleUser] = field(default_factory=list)
    error_code: str = ""
    error: str = ""


def _count(client, directory: Directory, filter_: str) -> int:
    return sum(len(page) for base in directory.base_dns
               for page in client.search(base_dn=base, filter=filter_, attributes=["1.1"],
                                         page_size=directory.page_size))


def probe_directory(directory: Directory) -> ProbeReport:
    """Connect, count and sample (see the module docstring); errors are reported, not raised."""
    report = ProbeReport()
    preset = preset_of(directory)
    try:
        with open_client(directory, timeout_cap=PROBE_TIMEOUT_SECONDS) as client:
            report.server = client.url
            report.users = _count(client, directory, preset.user_filter)
            groups = [translate_group(e.dn, e.attributes, preset) for base in directory.base_dns
                      for page in client.search(base_dn=base, filter=preset.group_filter,
                                                attributes=preset.group_attributes, page_size=directory.page_size)
                      for e in page]
            report.groups = len(groups)
            closure, names = expand_memberships(groups), {g.dn: g.name for g in groups}
            entries = next(iter(client.search(base_dn=directory.base_dns[0], filter=preset.user_filter,
                                              attributes=preset.user_attributes, page_size=SAMPLE)), [])
    except (IdentityError, MappingError) as exc:
        report.error_code, report.error = exc.code, exc.message
        if exc.code == "timeout":
            report.error += f" (Test connection waits at most {PROBE_TIMEOUT_SECONDS:g} s per request; a sync " \
                            "uses the directory's own timeout.)"
        return report
    source = directory.source
    ruleset, roles, index = RuleSet.of(source.rule_set()), role_catalogue(), OrgIndex()
    now = timezone.now()
    for entry in entries[:SAMPLE]:
        try:
            user = translate_user(entry.dn, entry.attributes, preset, now=now)
        except MappingError as exc:
            report.error_code, report.error = exc.code, exc.message
            continue
        group_dns = closure.get(user.dn, frozenset())
        record = SourceRecord.build(attributes=user.attributes, dn=user.dn, active=user.active,
                                    groups=list(group_dns) + [names[d] for d in group_dns if d in names])
        outcome = evaluate(rules=ruleset, record=record, org_policy=source.org_policy(), roles=roles)
        resolved = resolve_org(outcome.org, index, is_new=True)
        org = ""
        if resolved is not None and resolved.org_id is not None:
            org = index.full_name(index.get(resolved.org_id))
        elif resolved is not None and resolved.create_name:
            org = f"{resolved.create_name} (new)"
        defaults = index.default_role_slugs(resolved.org_id) if resolved and resolved.org_id else frozenset()
        report.sample.append(SampleUser(
            dn=user.dn, username=user.username, email=user.email, active=outcome.active,
            inactive_reason=user.inactive_reason, groups=tuple(sorted(names.get(d, d) for d in group_dns)),
            org=org, roles=tuple(sorted(outcome.final_roles(defaults)))))
    return report
