"""Fingerprints of directory entries, so a full run recognises an unchanged entry before translating it.

Translating an entry, building its ``SourceRecord`` and hashing the record was about half of a
no-change full run, and looking up each batch's links a quarter (issue 10: 100k users in <= 8 s).
Each link a sync writes therefore also keeps, beside the record and its digest
(``provisioning.resolve.link_raw``):

* ``entry``: a SHA-256 of the raw entry as the server sent it (DN, attribute names and bytes) and
  the state it gives (an expiry date passes with time, so the state is judged again on every run
  from the few state attributes);
* ``check``: a SHA-256 of ``entry`` and of the user's normalised group references (nested ones
  included), what a full run compares;
* ``fields``: the profile fields the translation gave (username, email, first and last name), which
  the database compares with the user's current ones.

A full run reads every link's ``check``, and whether the user's profile fields still equal
``fields``, in one query (``sync._preload_links``), then hashes each raw entry as it arrives: an
equal ``check`` with equal fields means translating the entry would give the same record and the
same profile fields, so it is skipped untranslated. An admin's edit of a synced user's name makes
the fields differ, so the entry is planned again, as with the record comparison this replaces.
Links without these keys (written before them, or by another path) are compared through the
record and get them. An incremental run's users of changed groups keep their ``entry`` and
``fields`` and get a new ``check``.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable, Mapping

# ExternalIdentity.raw keys.
ENTRY_KEY = "entry"
CHECK_KEY = "check"
FIELDS_KEY = "fields"
PROFILE_FIELDS = ("username", "email", "first_name", "last_name")
# Bump when ``translate_user`` or the sync's record would make something else of the same raw entry:
# every stored ``check`` then differs, and each entry is translated and compared once more.
VERSION = "1"


def entry_base(dn: str, attributes: Mapping[str, list[bytes]]) -> bytes:
    """The part of an entry's fingerprint that depends on the entry alone (computed once per read).

    The pickle of the DN and the attributes as the server sent them (pickle reads back as the same
    values, so different entries never share it; 3x faster than ``repr``). Names or values in
    another order, or a Python whose pickles differ, only make an entry look changed once."""
    return hashlib.sha256(pickle.dumps((VERSION, dn, attributes), 5)).digest()


def entry_digest(base: bytes, *, active: bool) -> str:
    """The stored ``entry`` value: the entry's ``entry_base`` and the state it gives now."""
    digest = hashlib.sha256(base)
    digest.update(b"active" if active else b"inactive")
    return digest.hexdigest()


def groups_digest(groups: Iterable[str]) -> str:
    """A fingerprint of a record's normalised group references."""
    return hashlib.sha256(repr(sorted(groups)).encode()).hexdigest()


def check_digest(entry: str, groups: str) -> str:
    """The stored ``check`` value: ``entry_digest`` and ``groups_digest`` together."""
    return hashlib.sha256(f"{entry}:{groups}".encode()).hexdigest()


def link_extra(*, entry: str, groups: str, fields: Mapping[str, str]) -> dict:
    """What a sync adds to a link's raw data (``SourceUser.link_extra``)."""
    return {ENTRY_KEY: entry, CHECK_KEY: check_digest(entry, groups),
            FIELDS_KEY: {name: fields[name] for name in PROFILE_FIELDS}}
