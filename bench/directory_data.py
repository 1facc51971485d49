"""A large, realistic OpenLDAP directory for the directory-sync benchmarks (written as LDIF).

``write_directory_ldif(path, users=100_000, groups=1_000)`` writes users under ``ou=people`` (spread
over 20 department OUs) and groups under ``ou=groups`` with skewed sizes: group 0 has 20,000
members, then sizes fall off like 1/rank (Zipf), every user is in at least one group, and about
one group in ten is nested inside another (a chain depth of up to four). A few users are
"disabled" the OpenLDAP way (``pwdAccountLockedTime``) so the state path is exercised. The same
seed always gives the same directory.
"""

from __future__ import annotations

import random
from pathlib import Path

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
DEPARTMENTS = 20
BIG_GROUP = 20_000


def user_dn(index: int) -> str:
    return f"uid=user{index:06d},ou=dept{index % DEPARTMENTS:02d},{PEOPLE}"


def group_dn(index: int) -> str:
    return f"cn=group{index:04d},{GROUPS}"


def group_sizes(users: int, groups: int) -> list[int]:
    """Zipf-like sizes: the first group has min(BIG_GROUP, users) members, group k about that / (k+1)."""
    top = min(BIG_GROUP, users)
    return [max(2, top // (rank + 1)) for rank in range(groups)]


def write_directory_ldif(path: str | Path, *, users: int = 100_000, groups: int = 1_000, seed: int = 7) -> dict:
    """Write the LDIF (without the suffix entry) and return counts of what it holds."""
    rng = random.Random(seed)
    sizes = group_sizes(users, groups)
    members: list[set[str]] = [set() for _ in range(groups)]
    for index, size in enumerate(sizes):
        for user in rng.sample(range(users), min(size, users)):
            members[index].add(user_dn(user))
    grouped = set().union(*members) if members else set()
    for user in range(users):  # nobody is left without a group
        dn = user_dn(user)
        if dn not in grouped:
            members[rng.randrange(groups)].add(dn)
    nested = 0
    for index in range(1, groups):
        if index % 10 == 0:  # group k*10 sits inside a group with a lower number: chains, no cycles
            members[rng.randrange(max(1, index // 4), index)].add(group_dn(index))
            nested += 1
    disabled = 0
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n\n")
        out.write(f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n\n")
        for dept in range(DEPARTMENTS):
            out.write(f"dn: ou=dept{dept:02d},{PEOPLE}\nobjectClass: organizationalUnit\nou: dept{dept:02d}\n\n")
        for user in range(users):
            name = f"user{user:06d}"
            out.write(
                f"dn: {user_dn(user)}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: User {user}\n"
                f"sn: Number{user}\ngivenName: User\nmail: {name}@example.org\n"
            )
            if user % 500 == 499:
                out.write("pwdAccountLockedTime: 000001010000Z\n")
                disabled += 1
            out.write("\n")
        for index in range(groups):
            out.write(f"dn: {group_dn(index)}\nobjectClass: groupOfNames\ncn: group{index:04d}\n")
            for member in sorted(members[index]):
                out.write(f"member: {member}\n")
            out.write("\n")
    return {"users": users, "groups": groups, "nested groups": nested, "disabled": disabled,
            "memberships": sum(len(m) for m in members)}
