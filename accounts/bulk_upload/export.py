"""Users export in the upload (upsert) format, streamed so 100k users never sit in memory.

Export -> edit -> upload round-trips: org is the full path, roles are role names joined by ";",
state is the lifecycle state. Cells starting with = + - @ get a leading "'" (CSV injection); the
parser removes exactly that quote again.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.contrib.auth.models import User

from accounts.bulk_upload.parser import FORMULA_PREFIXES
from accounts.identity.orgs import OrgIndex
from accounts.models import Role
from accounts.selectors import user_list

EXPORT_COLUMNS = ("username", "email", "first_name", "last_name", "org", "roles", "notes", "state")
MembershipThrough = User.groups.through


def neutralise(value: str) -> str:
    """Prefix a formula-looking cell with "'" so spreadsheets show it as text."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


class _Echo:
    def write(self, value: str) -> str:
        return value


def org_labels() -> dict[int, str]:
    """Org id -> the ``org`` cell: full path; a leading "/" when the bare name would be ambiguous."""
    index = OrgIndex()
    counts: dict[str, int] = {}
    for org in index.by_id.values():
        counts[org.name.lower()] = counts.get(org.name.lower(), 0) + 1
    labels = {}
    for pk, org in index.by_id.items():
        path = index.full_name(org)
        labels[pk] = path if "/" in path or counts[org.name.lower()] == 1 else "/" + path
    return labels


def export_lines(*, viewer: User, chunk_size: int = 2000, **filters) -> Iterator[str]:
    """CSV lines (header first) of the users ``viewer`` may see, filtered like the users list."""
    writer = csv.writer(_Echo(), lineterminator="\r\n")
    yield writer.writerow(EXPORT_COLUMNS)
    labels = org_labels()
    role_names = dict(Role.objects.values_list("group_id", "name"))
    qs = user_list(viewer=viewer, **filters).values_list(
        "pk", "username", "email", "first_name", "last_name", "profile__org_id", "profile__notes", "profile__state"
    )
    chunk: list[tuple] = []
    for row in qs.iterator(chunk_size=chunk_size):
        chunk.append(row)
        if len(chunk) >= chunk_size:
            yield from _chunk_lines(writer, chunk, labels, role_names)
            chunk = []
    if chunk:
        yield from _chunk_lines(writer, chunk, labels, role_names)


def _chunk_lines(writer, chunk: list[tuple], labels: dict[int, str], role_names: dict[int, str]) -> Iterator[str]:
    roles: dict[int, list[str]] = {}
    ids = [r[0] for r in chunk]
    for uid, gid in MembershipThrough.objects.filter(user_id__in=ids, group_id__in=list(role_names)).values_list(
        "user_id", "group_id"
    ):
        roles.setdefault(uid, []).append(role_names[gid])
    for pk, username, email, first, last, org_id, notes, state in chunk:
        cells = (username, email, first, last, labels.get(org_id, ""), ";".join(sorted(roles.get(pk, []))),
                 notes or "", state or "")
        yield writer.writerow([neutralise(c) for c in cells])
