"""SCIM User and Group documents: what idm accepts from a provider, what it answers, what it filters.

Input (``clean_user`` / ``clean_group``): attribute names are matched case-insensitively and stored
in the schema's spelling (Entra sends ``UserName``); unknown schema URNs and unknown attributes are
dropped (RFC 7644 §3.3: tolerated); read-only and write-only attributes (``id``, ``meta``,
``groups``, ``password``) are never stored; wrong types are ``invalidValue``.

Output (``user_document`` / ``group_document``): the stored document with idm's live values laid
over it (userName, names, email; members), ``id`` and ``meta``. ``project`` applies
``attributes`` / ``excludedAttributes``.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q
from django.db.models.functions import Lower
from django.db.models.lookups import IContains

from accounts.selectors import UserSearchText
from provisioning.scim import reads
from provisioning.scim.errors import ScimError
from provisioning.scim.filters import Attribute, FilterCompiler, unstorable
from provisioning.scim.models import ScimResource
from provisioning.scim.patch import ResourceSchema

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
IDM_USER = "urn:idm:params:scim:schemas:extension:idm:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

MAX_STRING = 1024
MAX_MULTI = 100

USER_STRINGS = ("userName", "displayName", "nickName", "profileUrl", "title", "userType", "preferredLanguage",
                "locale", "timezone", "externalId")
NAME_PARTS = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
USER_MULTI = ("emails", "phoneNumbers", "ims", "photos", "addresses", "entitlements", "roles")
MULTI_PARTS = ("value", "display", "type", "primary", "formatted", "streetAddress", "locality", "region",
               "postalCode", "country")
ENTERPRISE_STRINGS = ("employeeNumber", "costCenter", "organization", "division", "department")
IDM_STRINGS = ("orgName",)
EXTENSIONS = {ENTERPRISE: ENTERPRISE_STRINGS + ("manager",), IDM_USER: IDM_STRINGS}

_SPELLING = {name.lower(): name for name in (*USER_STRINGS, *NAME_PARTS, *USER_MULTI, *MULTI_PARTS,
                                             *ENTERPRISE_STRINGS, *IDM_STRINGS, "name", "active", "manager",
                                             "members", "$ref", "id", "meta", "schemas", "groups")}

USER_SCHEMA = ResourceSchema(
    core_urn=CORE_USER,
    attributes=frozenset(k.lower() for k in (*USER_STRINGS, *USER_MULTI, "name", "active", "id", "meta", "groups",
                                             "password", "x509Certificates")),
    multi_valued=frozenset(k.lower() for k in (*USER_MULTI, "groups", "x509Certificates")),
    complex=frozenset({"name"}),
    booleans=frozenset({"active", "emails.primary", "phonenumbers.primary", "addresses.primary"}),
    read_only=frozenset({"id", "meta", "schemas", "groups"}),
    extensions={urn: frozenset(n.lower() for n in names) for urn, names in EXTENSIONS.items()},
    spelling=_SPELLING,
)
GROUP_SCHEMA = ResourceSchema(
    core_urn=CORE_GROUP,
    attributes=frozenset({"displayname", "members", "externalid", "id", "meta"}),
    multi_valued=frozenset({"members"}),
    spelling=_SPELLING,
)


def _invalid(message: str) -> ScimError:
    return ScimError(400, message, "invalidValue")


def check_storable(value: Any, where: str = "") -> None:
    """Refuse a request body holding a string (a key or a value, at any depth) that the database
    cannot store: 400 ``invalidValue`` naming the attribute path (review F6). Run on every parsed
    body, so PATCH values, extension attributes and group members are covered as well."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if unstorable(item):
                raise _invalid(f"{path or 'The request body'} contains a character that cannot be stored "
                               "(NUL or an unpaired surrogate).")
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if unstorable(str(key)):
                    raise _invalid(f"An attribute name under {path or 'the request body'} contains a character "
                                   "that cannot be stored (NUL or an unpaired surrogate).")
                stack.append((child, name))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]") for index, child in enumerate(item))


def _string(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise _invalid(f"{where} must be a {'non-empty ' if required else ''}string.")
    if len(value) > MAX_STRING:
        raise _invalid(f"{where} is longer than {MAX_STRING} characters.")
    check_storable(value, where)  # also here, for callers that build documents without read_json
    return value


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:  # Entra sends "False"
        return value.strip().lower() == "true"
    raise _invalid(f"{where} must be true or false.")


def _complex(value: Any, where: str, parts: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise _invalid(f"{where} must be an object.")
    out: dict[str, Any] = {}
    allowed = {p.lower(): p for p in parts}
    for key, item in value.items():
        name = allowed.get(str(key).lower())
        if name is None or item is None:
            continue
        out[name] = _boolean(item, f"{where}.{name}") if name == "primary" else _string(item, f"{where}.{name}")
    return out


def _multi(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise _invalid(f"{where} must be a list.")
    if len(value) > MAX_MULTI:
        raise _invalid(f"{where} has more than {MAX_MULTI} values.")
    return [_complex(item, where, MULTI_PARTS) for item in value]


def _keyed(document: dict) -> dict[str, tuple[str, Any]]:
    """Lower-cased keys -> (key as sent, value)."""
    return {str(k).lower(): (k, v) for k, v in document.items()}


def clean_user(document: Any) -> dict:
    """A provider's User document in canonical form (see the module docstring)."""
    if not isinstance(document, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    keyed = _keyed(document)
    out: dict[str, Any] = {}
    for name in USER_STRINGS:
        if name.lower() in keyed and keyed[name.lower()][1] is not None:
            out[name] = _string(keyed[name.lower()][1], name, required=name == "userName")
    if "userName" not in out:
        raise _invalid("userName is required.")
    if keyed.get("name", (None, None))[1] is not None:
        out["name"] = _complex(keyed["name"][1], "name", NAME_PARTS)
    if keyed.get("active", (None, None))[1] is not None:
        out["active"] = _boolean(keyed["active"][1], "active")
    for name in USER_MULTI:
        if keyed.get(name.lower(), (None, None))[1] is not None:
            out[name] = _multi(keyed[name.lower()][1], name)
    for urn, names in EXTENSIONS.items():
        ext = keyed.get(urn.lower(), (None, None))[1]
        if ext is None:
            continue
        if not isinstance(ext, dict):
            raise _invalid(f"{urn} must be an object.")
        ext_keyed = _keyed(ext)
        cleaned: dict[str, Any] = {}
        for name in names:
            item = ext_keyed.get(name.lower(), (None, None))[1]
            if item is None:
                continue
            if name == "manager":
                cleaned[name] = ({"value": _string(item, "manager")} if isinstance(item, str)
                                 else _complex(item, "manager", ("value", "$ref", "displayName")))
            else:
                cleaned[name] = _string(item, f"{urn}:{name}")
        out[urn] = cleaned
    return out


def clean_group(document: Any) -> dict:
    """A provider's Group document: displayName (required), externalId, members (ids)."""
    if not isinstance(document, dict):
        raise ScimError(400, "The request body must be a JSON object.", "invalidSyntax")
    keyed = _keyed(document)
    out: dict[str, Any] = {"displayName": _string(keyed.get("displayname", (None, None))[1], "displayName",
                                                  required=True)}
    external_id = keyed.get("externalid", (None, None))[1]
    if external_id is not None:
        out["externalId"] = _string(external_id, "externalId")
    members = keyed.get("members", (None, None))[1]
    if members is not None:
        out["members"] = member_ids(members)
    return out


def member_ids(members: Any) -> list[str]:
    """The ``value`` of each member object (a SCIM user id), in order, without repeats."""
    if not isinstance(members, list):
        raise _invalid("members must be a list.")
    ids: list[str] = []
    for item in members:
        value = _keyed(item).get("value", (None, None))[1] if isinstance(item, dict) else None
        if not isinstance(value, str) or not value or len(value) > 64:
            raise _invalid("Each member needs a value: the id of a user.")
        if value not in ids:
            ids.append(value)
    return ids


# --- output ---------------------------------------------------------------------------------------


def version_tag(resource: ScimResource) -> str:
    return f'W/"{resource.version}"'


def _meta(resource: ScimResource, base: str, kind: str) -> dict:
    return {"resourceType": kind, "created": resource.created_at.isoformat().replace("+00:00", "Z"),
            "lastModified": resource.updated_at.isoformat().replace("+00:00", "Z"),
            "location": f"{base}/{kind}s/{resource.scim_id}", "version": version_tag(resource)}


def user_document(resource: ScimResource, base: str) -> dict:
    """The SCIM User of ``resource`` (``user`` loaded): stored attributes with idm's live values."""
    user = resource.user
    stored = dict(resource.document)
    doc: dict[str, Any] = {"schemas": [CORE_USER] + [urn for urn in EXTENSIONS if urn in stored],
                           "id": resource.scim_id}
    if resource.external_id:
        doc["externalId"] = resource.external_id
    doc.update({k: v for k, v in stored.items() if k not in ("externalId", "schemas")})
    doc["userName"] = user.username
    name = dict(stored.get("name") or {})
    if user.first_name or "givenName" in name:
        name["givenName"] = user.first_name
    if user.last_name or "familyName" in name:
        name["familyName"] = user.last_name
    if name:
        doc["name"] = name
    if user.email and not stored.get("emails"):
        doc["emails"] = [{"value": user.email, "type": "work", "primary": True}]
    doc["active"] = resource.active
    doc["meta"] = _meta(resource, base, "User")
    return doc


def group_document(resource: ScimResource, base: str, members: list[tuple[str, str]] | None) -> dict:
    """The SCIM Group of ``resource`` (``group`` loaded); ``members``: (scim id, userName) or None to omit."""
    dgroup = resource.group
    doc: dict[str, Any] = {"schemas": [CORE_GROUP], "id": resource.scim_id, "displayName": dgroup.display_name}
    if dgroup.external_id:
        doc["externalId"] = dgroup.external_id
    if members is not None:
        doc["members"] = [{"value": sid, "display": name, "type": "User", "$ref": f"{base}/Users/{sid}"}
                          for sid, name in members]
    doc["meta"] = _meta(resource, base, "Group")
    return doc


ALWAYS_RETURNED = frozenset({"id", "schemas"})


def _attr_list(text: str | None) -> list[tuple[str | None, str, str | None]]:
    """``"userName,name.givenName,urn:…:User:department"`` -> [(urn or None, attr, sub)] lower-cased."""
    out = []
    for raw in (text or "").split(","):
        item = raw.strip()
        if not item:
            continue
        urn = None
        if item.lower().startswith("urn:"):
            head, _, tail = item.rpartition(":")
            if tail.lower() in {"user", "group"}:  # a whole schema: "urn:…:enterprise:2.0:User"
                urn, item = item, ""
            else:
                urn, item = head, tail
        attr, _, sub = item.partition(".")
        out.append(((urn or "").lower() or None, attr.lower(), sub.lower() or None))
    return out


def project(document: dict, *, attributes: str | None, excluded: str | None) -> dict:
    """Apply ``attributes`` / ``excludedAttributes`` (RFC 7644 §3.4.2.5); id and schemas always stay."""
    wanted = _attr_list(attributes)
    if wanted:
        out: dict[str, Any] = {}
        for key, value in document.items():
            lowered = key.lower()
            if lowered in ALWAYS_RETURNED:
                out[key] = value
                continue
            for urn, attr, sub in wanted:
                if urn == lowered and not attr:  # the whole extension
                    out[key] = value
                elif lowered.startswith("urn:") and urn == lowered and isinstance(value, dict):
                    picked = {k: v for k, v in value.items() if k.lower() == attr}
                    out.setdefault(key, {}).update(picked)
                elif urn in (None, CORE_USER.lower(), CORE_GROUP.lower()) and attr == lowered:
                    if sub and isinstance(value, dict):
                        out.setdefault(key, {}).update({k: v for k, v in value.items() if k.lower() == sub})
                    elif sub and isinstance(value, list):
                        out[key] = [{k: v for k, v in el.items() if k.lower() == sub} for el in value]
                    else:
                        out[key] = value
        return out
    out = dict(document)
    for urn, attr, sub in _attr_list(excluded):
        for key in list(out):
            lowered = key.lower()
            if lowered in ALWAYS_RETURNED:
                continue
            if urn == lowered and not attr:
                del out[key]
            elif urn in (None, CORE_USER.lower(), CORE_GROUP.lower()) and attr == lowered:
                if sub and isinstance(out[key], dict):
                    out[key] = {k: v for k, v in out[key].items() if k.lower() != sub}
                elif not sub:
                    del out[key]
    return out


def excludes_members(attributes: str | None, excluded: str | None) -> bool:
    """Whether the request leaves ``members`` out (then the list is not read at all)."""
    if attributes:
        return not any(attr == "members" for _, attr, _ in _attr_list(attributes))
    return any(attr == "members" and not sub for _, attr, sub in _attr_list(excluded))


# --- filters --------------------------------------------------------------------------------------


def _exact_id(field: str) -> Attribute:
    return Attribute(field, case_exact=True)


def _in_user_search_text(value: str) -> Q:
    """The user's joined search text contains ``value``: the expression of the trigram index
    (``accounts.selectors.UserSearchText``), true wherever one of its fields contains it."""
    return Q(IContains(UserSearchText(prefix="user__"), value))


def _user_text(field: str) -> Attribute:
    return Attribute(field, indexed_text=_in_user_search_text)


USER_FILTERS = FilterCompiler(
    {
        "id": _exact_id("scim_id"),
        "externalId": _exact_id("external_id"),
        "userName": _user_text("user__username"),
        "name.givenName": _user_text("user__first_name"),
        "name.familyName": _user_text("user__last_name"),
        "emails.value": _user_text("user__email"),
        "emails.type": Attribute(constant="work"),
        "active": Attribute("active", kind="boolean"),
        "meta.created": Attribute("created_at", kind="datetime"),
        "meta.lastModified": Attribute("updated_at", kind="datetime"),
    },
    schemas=(CORE_USER,),
)
GROUP_FILTERS = FilterCompiler(
    {
        "id": _exact_id("scim_id"),
        "externalId": Attribute("group__external_id", case_exact=True),
        "displayName": Attribute("group__display_name"),
        "members.value": Attribute("group__group__user__scim_resource__scim_id", case_exact=True, multi_valued=True),
        "meta.created": Attribute("created_at", kind="datetime"),
        "meta.lastModified": Attribute("updated_at", kind="datetime"),
    },
    schemas=(CORE_GROUP,),
)


# sortBy (RFC 7644 §3.4.2.3): attribute -> ORM field; ties broken by the row id so pages are stable.
USER_SORT = {"id": "scim_id", "externalid": "external_id", "username": "user__username",
             "name.givenname": "user__first_name", "name.familyname": "user__last_name", "emails": "user__email",
             "emails.value": "user__email", "active": "active", "meta.created": "created_at",
             "meta.lastmodified": "updated_at"}
GROUP_SORT = {"id": "scim_id", "externalid": "group__external_id", "displayname": "group__display_name",
              "meta.created": "created_at", "meta.lastmodified": "updated_at"}


_TEXT_SORT = frozenset({"user__username", "user__first_name", "user__last_name", "user__email", "external_id",
                        "group__external_id", "group__display_name"})


def sort_order(kind: str, sort_by: str | None, sort_order: str | None) -> list | None:
    """ORDER BY for ``sortBy`` / ``sortOrder`` (None: the default, row id). Text sorts ignore case."""
    if not sort_by:
        return None
    key = sort_by.strip()
    for urn in (CORE_USER, CORE_GROUP):
        if key.lower().startswith(urn.lower() + ":"):
            key = key[len(urn) + 1:]
    field = (USER_SORT if kind == ScimResource.Kind.USER else GROUP_SORT).get(key.lower())
    if field is None:
        raise ScimError(400, f"Cannot sort by {sort_by[:100]}.", "invalidValue")
    order = (sort_order or "ascending").strip().lower()
    if order not in ("ascending", "descending"):
        raise ScimError(400, "sortOrder must be ascending or descending.", "invalidValue")
    text = field in _TEXT_SORT
    expression = Lower(field) if text else F(field)
    if order == "descending":
        return [expression.desc(), F("id").desc()]
    return [expression.asc(), F("id").asc()]


def live(source, kind: str):
    """The provider's resources of one kind that SCIM still shows (not DELETEd), in a stable order."""
    return ScimResource.objects.filter(source=source, kind=kind, deleted_at__isnull=True).order_by("id")


def by_id(source, kind: str, scim_id: str, *, lock: bool = False) -> ScimResource:
    """One of the provider's resources, or 404 (also for another provider's resource: scope).

    ``lock`` (inside a transaction): hold the row until the write commits, so writes to one resource
    run one after the other -- If-Match compares with the version the write will replace, and a
    group PATCH reads the membership the previous PATCH left. Every request on one resource starts
    here, so it is one hand-written statement (``provisioning.scim.reads``)."""
    resource = reads.resource_by_id(source, kind, scim_id, lock=lock)
    if resource is None:
        raise ScimError(404, f"{kind} {scim_id[:64]} not found.")
    return resource
