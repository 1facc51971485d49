"""Users export in the upload (upsert) format, streamed so 100k users never sit in memory.

Export -> edit -> upload round-trips: org is the full path, roles are role names joined by ";",
state is the lifecycle state. Written by ``accounts.csv_export`` (the one CSV writer and formula rule);
the parser removes the formula guard's quote again.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.auth.models import User

from accounts.csv_export import csv_lines
from accounts.identity.orgs import OrgIndex
from accounts.models import Role
from accounts.selectors import user_list

EXPORT_COLUMNS = ("username", "email", "first_name", "last_name", "org", "roles", "notes", "state")
MembershipThrough = User.groups.through


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
    yield from csv_lines(EXPORT_COLUMNS, _rows(viewer=viewer, chunk_size=chunk_size, **filters))


def _rows(*, viewer: User, chunk_size: int, **filters) -> Iterator[tuple]:
    labels = org_labels()
    role_names = dict(Role.objects.values_list("group_id", "name"))
    qs = user_list(viewer=viewer, **filters).values_list(
        "pk", "username", "email", "first_name", "last_name", "profile__org_id", "profile__notes", "profile__state"
    )
    chunk: list[tuple] = []
    for row in qs.iterator(chunk_size=chunk_size):
        chunk.append(row)
        if len(chunk) >= chunk_size:
            yield from _chunk_rows(chunk, labels, role_names)
            chunk = []
    if chunk:
        yield from _chunk_rows(chunk, labels, role_names)


def _chunk_rows(chunk: list[tuple], labels: dict[int, str], role_names: dict[int, str]) -> Iterator[tuple]:
    roles: dict[int, list[str]] = {}
    ids = [r[0] for r in chunk]
    for uid, gid in MembershipThrough.objects.filter(user_id__in=ids, group_id__in=list(role_names)).values_list(
        "user_id", "group_id"
    ):
        roles.setdefault(uid, []).append(role_names[gid])
    for pk, username, email, first, last, org_id, notes, state in chunk:
        yield (username, email, first, last, labels.get(org_id, ""), ";".join(sorted(roles.get(pk, []))),
               notes or "", state or "")
