"""Console forms: input shape and choices only.

Business rules (unique usernames, email syntax, org names, cycles, role assignability, last admin)
live in the identity service; views call it and turn its ``IdentityError`` into a form error with
the same code (``add_identity_error``), so the console, uploads and SCIM never disagree.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from accounts.access import Access
from accounts.exceptions import IdentityError
from accounts.identity.types import AuthMethod, UserState
from accounts.models import Organization, Role


def add_identity_error(form: forms.Form, exc: IdentityError, field_map: dict[str, str] | None = None) -> None:
    """Show a service error on the form field it names (or as a form-wide error), keeping its code."""
    field = (field_map or {}).get(exc.field or "", exc.field)
    if field not in form.fields:
        field = None
    form.add_error(field, ValidationError(exc.message, code=exc.code))


def org_choices_label(org: Organization, base_depth: int = 0) -> str:
    """Tree-shaped label for a select option ("— — Platform")."""
    return f"{'— ' * max(org.depth - base_depth, 0)}{org.name}"


class QuickSelect(forms.Select):
    """A ``<select>`` whose options are written in Python, not one template include per option.

    Same HTML as Django's ``select.html``/``select_option.html``; the users list's filters (51 orgs
    at the benchmark's scale) rendered that way took ~15 ms of CPU per page, now ~2 ms.
    """

    def render(self, name, value, attrs=None, renderer=None):
        from django.forms.utils import flatatt
        from django.utils.html import format_html, format_html_join
        from django.utils.safestring import mark_safe

        widget = self.get_context(name, value, attrs)["widget"]
        parts = []
        for group_name, options, _ in widget["optgroups"]:
            html = format_html_join("", '<option value="{}"{}>{}</option>',
                                    ((o["value"], flatatt(o["attrs"]), o["label"]) for o in options))
            parts.append(format_html('<optgroup label="{}">{}</optgroup>', group_name, html) if group_name else html)
        return format_html('<select name="{}"{}>{}</select>', widget["name"], flatatt(widget["attrs"]),
                           mark_safe("".join(parts)))  # noqa: S308 - parts are format_html output


class OrgChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Organization) -> str:
        return org_choices_label(obj)


class RoleCheckboxes(forms.CheckboxSelectMultiple):
    """Checkboxes whose options in ``locked`` (role pks) are shown but disabled."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.locked: set = set()

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        if getattr(value, "value", value) in self.locked:
            option["attrs"]["disabled"] = True
        return option


class RoleChoiceField(forms.ModelMultipleChoiceField):
    widget = RoleCheckboxes

    def label_from_instance(self, obj: Role) -> str:
        return obj.name


def scoped_orgs(access: Access, perm: str):
    """Active orgs where ``perm`` applies, in tree order."""
    return Organization.objects.filter(access.org_filter(perm), is_active=True).order_by("path")


def assignable_roles(access: Access) -> list[Role]:
    roles = Role.objects.select_related("group").prefetch_related("group__permissions").order_by("name")
    return [r for r in roles if access.can_assign_role(r)]


# --------------------------------------------------------------------------------------------
# Users


PAGE_SIZES = (25, 50, 100, 200)


class UserFilterForm(forms.Form):
    """The users list's search box and filters (GET)."""

    q = forms.CharField(label="Search", required=False, max_length=150,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name, username or email"}))
    org = OrgChoiceField(label="Organization", queryset=Organization.objects.none(), required=False,
                         empty_label="All organizations", widget=QuickSelect)
    role = forms.ModelChoiceField(label="Role", queryset=Role.objects.order_by("name"), required=False,
                                  empty_label="Any role", to_field_name="slug", widget=QuickSelect)
    source = forms.ChoiceField(label="Source", required=False, choices=[("", "Any source")], widget=QuickSelect)
    state = forms.ChoiceField(label="State", required=False, widget=QuickSelect, choices=[
        ("", "Any state"), *UserState.choices, ("locked", "Locked (failed sign-ins)")])
    per_page = forms.TypedChoiceField(label="Per page", required=False, coerce=int, empty_value=50,
                                      choices=[(n, str(n)) for n in PAGE_SIZES], widget=QuickSelect)

    def __init__(self, *args, access: Access, **kwargs):
        from accounts.selectors import user_source_choices

        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = Organization.objects.filter(access.org_filter("view_directory")).order_by("path")
        # Only sources that own someone: "Bulk upload" or "SCIM" would never match (an upload's users
        # are local; a SCIM provider is named, not the protocol).
        self.fields["source"].choices = [("", "Any source"), *user_source_choices()]

    def filters(self) -> dict:
        """Keyword arguments for ``selectors.user_list`` (empty when the form is invalid)."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v and k != "per_page"}

    def page_size(self) -> int:
        """The chosen page size (50 unless one of ``PAGE_SIZES`` was chosen)."""
        if self.is_bound and self.is_valid():
            return self.cleaned_data.get("per_page") or 50
        return 50


class UserCreateForm(forms.Form):
    org = OrgChoiceField(label="Organization", queryset=Organization.objects.none(), empty_label=None)
    username = forms.CharField(max_length=150, help_text="Letters, digits and @ . + - _ only. Unique, ignoring case.")
    # A CharField, not EmailField: the service validates emails so every front door uses one rule.
    email = forms.CharField(label="Email", max_length=254, required=False,
                            widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    password = forms.CharField(
        label="Password", required=False, strip=False,
        # render_value: a refused form keeps what the admin typed (it goes back only to that admin).
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=True),
        help_text="Optional. Without a password the user is invited: the next page emails or copies their invitation link.",
    )
    roles = RoleChoiceField(label="Roles", queryset=Role.objects.none(), required=False,
                            help_text="Leave empty to give the organization's default roles.")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, access: Access, initial_org: Organization | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = scoped_orgs(access, "manage_users")
        self.fields["roles"].queryset = Role.objects.filter(pk__in=[r.pk for r in assignable_roles(access)])
        if initial_org is not None:
            self.fields["org"].initial = initial_org.pk


class UserEditForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.CharField(label="Email", max_length=254, required=False, widget=forms.EmailInput())
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    # The values this page showed (JSON), so a save changes only what the admin edited (changes_since_loaded).
    loaded = forms.CharField(widget=forms.HiddenInput, required=False)

    EDITABLE = ("username", "email", "first_name", "last_name", "notes")

    def __init__(self, *args, can_rename: bool = True, can_change_sign_in: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["loaded"].initial = encode_loaded(self.initial)
        if not can_rename:
            # Profile-only editors (User Modify) may not change usernames; the service refuses it too.
            self.fields["username"].disabled = True
            self.fields["username"].help_text = "Only user managers can change usernames."
        if not can_change_sign_in:
            # The privilege rule: username and email lead to sign-in (reset links); the service refuses too.
            for name in ("username", "email"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "This user holds permissions you do not: only a more privileged " \
                                              "admin can change it."

    def changed_values(self) -> dict:
        """Only the fields that changed: untouched fields must not reach the service (provider-owned users)."""
        return {name: self.cleaned_data[name] for name in self.changed_data
                if name in self.cleaned_data and name in self.EDITABLE}

    def changes_since_loaded(self, current: dict) -> tuple[dict, list[str]]:
        """``(changes, conflicts)`` of a valid form against the user's ``current`` values.

        The page carries the values it showed (``loaded``). A field the admin left as shown is not
        sent, so a stale page never undoes another admin's change; a field the admin edited that
        someone else changed meanwhile is a conflict (not written). Without ``loaded`` (an old page
        or an API client) every field that differs from ``current`` is a change."""
        loaded = _decode_loaded(self.cleaned_data.get("loaded"))
        if loaded is None:
            return self.changed_values(), []
        changes: dict = {}
        conflicts: list[str] = []
        for name in self.EDITABLE:
            if name not in self.cleaned_data or self.fields[name].disabled:
                continue
            new, shown, now = (_comparable(v) for v in (self.cleaned_data[name], loaded.get(name), current.get(name)))
            if new == shown or new == now:
                continue  # left as shown, or already what the admin wants
            if now != shown:
                conflicts.append(name)
            else:
                changes[name] = self.cleaned_data[name]
        return changes, conflicts


def _comparable(value) -> str:
    # Browsers send textarea line breaks as CRLF; CharField strips the ends.
    return str(value or "").replace("\r\n", "\n").strip()


def _decode_loaded(raw: str | None) -> dict | None:
    import json

    if not raw:
        return None
    try:
        loaded = json.loads(raw)
    except ValueError:
        return None
    return loaded if isinstance(loaded, dict) else None


def encode_loaded(values: dict) -> str:
    """The ``loaded`` value of a ``UserEditForm`` showing ``values``."""
    import json

    return json.dumps({name: values.get(name, "") for name in UserEditForm.EDITABLE}, sort_keys=True)


class UserMoveForm(forms.Form):
    org = OrgChoiceField(label="New organization", queryset=Organization.objects.none(), empty_label=None)

    def __init__(self, *args, access: Access, current: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = scoped_orgs(access, "manage_users").exclude(pk=current.pk)


class UserRolesForm(forms.Form):
    """Checkbox list of roles. Roles the viewer may not assign are shown, but disabled and kept as they are."""

    roles = RoleChoiceField(label="Roles", queryset=Role.objects.none(), required=False)

    def __init__(self, *args, access: Access, held: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        all_roles = list(Role.objects.select_related("group").prefetch_related("group__permissions").order_by("name"))
        self.assignable = {r.slug for r in all_roles if access.can_assign_role(r)}
        self.held = held
        self.fields["roles"].queryset = Role.objects.filter(slug__in=self.assignable)
        posted = set(self.data.getlist("roles")) if self.is_bound and hasattr(self.data, "getlist") else None

        def checked(role: Role) -> bool:
            if posted is None or role.slug not in self.assignable:
                return role.slug in held
            return str(role.pk) in posted

        self.rows = [{"role": r, "checked": checked(r), "assignable": r.slug in self.assignable, "held": r.slug in held}
                     for r in all_roles]

    def target_slugs(self) -> set[str]:
        chosen = {r.slug for r in self.cleaned_data["roles"]}
        return chosen | (self.held - self.assignable)


# --------------------------------------------------------------------------------------------
# Organizations


class OrgForm(forms.Form):
    name = forms.CharField(max_length=220, help_text="3 to 220 characters, unique among its siblings.")
    external_ref = forms.CharField(label="External reference", max_length=200, required=False,
                                   help_text="Serial number, cost centre, directory id…")
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


class OrgMoveForm(forms.Form):
    parent = OrgChoiceField(label="New parent organization", queryset=Organization.objects.none(), empty_label=None)

    def __init__(self, *args, access: Access, org: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["parent"]
        # Validation accepts any org in scope, so a forged "under my own child" request reaches the
        # service and gets its ``org_cycle`` error; the menu only offers legal targets.
        field.queryset = scoped_orgs(access, "manage_orgs")
        field.widget.choices = [
            (o.pk, org_choices_label(o)) for o in field.queryset
            if not o.path.startswith(org.path) and o.pk != org.parent_id
        ]


INHERIT = "inherit"


class OrgSettingsForm(forms.Form):
    """Inheritable settings: each has an "inherit from parent" toggle (not on the top-level org)."""

    auth_inherit = forms.BooleanField(label="Inherit authentication from parent", required=False)
    auth_method = forms.ChoiceField(label="Authentication method", choices=AuthMethod.choices, required=False,
                                    widget=forms.RadioSelect)
    auth_provider = forms.ModelChoiceField(label="Identity provider", queryset=None, required=False,
                                           empty_label="Choose a provider")
    tfa_inherit = forms.BooleanField(label="Inherit two-factor setting from parent", required=False)
    two_factor_required = forms.BooleanField(label="Require two-factor authentication", required=False)
    roles_inherit = forms.BooleanField(label="Inherit default roles from parent", required=False)
    default_roles = RoleChoiceField(label="Default roles", queryset=Role.objects.order_by("name"), required=False)

    def __init__(self, *args, org: Organization, access: Access, **kwargs):
        from sso.models import IdentityProvider

        self.org = org
        # Default roles are handed to every new user of the org: offer only roles the editor may assign
        # (an Org Admin must not make every new user a Customer Cloud Admin). Defaults set by someone
        # with more rights stay as they are, shown disabled.
        self.assignable = {r.pk for r in assignable_roles(access)}
        self.current_defaults = set(org.default_roles.values_list("pk", flat=True))
        from accounts.identity.orgs import effective_settings

        self.is_root = org.parent_id is None
        # An inherited setting starts from the inherited value: unticking "inherit" then changes nothing
        # until the admin changes it (an unticked box must not read as "off").
        eff = effective_settings(org)
        initial = {
            "auth_inherit": org.auth_method is None,
            "auth_method": eff.auth_method,
            "auth_provider": eff.auth_provider.pk if eff.auth_provider else None,
            "tfa_inherit": org.two_factor_required is None,
            "two_factor_required": eff.two_factor_required,
            "roles_inherit": org.inherit_default_roles,
            "default_roles": [r.pk for r in eff.default_roles],
        }
        super().__init__(*args, initial=initial, **kwargs)
        # Disabled providers are not offered, except the one the org already uses: otherwise the org
        # could not save any other setting until someone re-enabled it.
        self.fields["auth_provider"].queryset = IdentityProvider.objects.filter(
            Q(enabled=True) | Q(pk=org.auth_provider_id or 0)).order_by("name")
        # Single sign-on is not offered while no identity provider can be chosen.
        self.sso_available = self.fields["auth_provider"].queryset.exists()
        if not self.sso_available and eff.auth_method != AuthMethod.SSO:
            self.fields["auth_method"].choices = [(AuthMethod.LOCAL.value, AuthMethod.LOCAL.label)]
            del self.fields["auth_provider"]
        self.fields["default_roles"].widget.locked = {pk for pk in Role.objects.values_list("pk", flat=True)
                                                      if pk not in self.assignable}
        if self.fields["default_roles"].widget.locked:
            self.fields["default_roles"].help_text = "Roles you may not assign are greyed out and stay as they are."
        if self.is_root:
            for name in ("auth_inherit", "tfa_inherit", "roles_inherit"):
                del self.fields[name]

    def clean_default_roles(self):
        chosen = set(self.cleaned_data.get("default_roles") or [])
        forged = [r for r in chosen if r.pk not in self.assignable and r.pk not in self.current_defaults]
        if forged:
            raise ValidationError(f"You may not make {forged[0].name} a default role.", code="role_not_assignable")
        kept = Role.objects.filter(pk__in=self.current_defaults - self.assignable)
        return {r for r in chosen if r.pk in self.assignable} | set(kept)

    def _inherit(self, name: str) -> bool:
        return not self.is_root and bool(self.cleaned_data.get(name))

    def clean(self):
        data = super().clean()
        if not self._inherit("auth_inherit"):
            method = data.get("auth_method") or AuthMethod.LOCAL
            data["auth_method"] = method
            if method == AuthMethod.SSO and not data.get("auth_provider") and "auth_provider" in self.fields:
                self.add_error("auth_provider", ValidationError(
                    "Choose the identity provider for single sign-on.", code="sso_provider_required"))
        return data

    def service_kwargs(self) -> dict:
        """Arguments for ``orgs.org_update_settings``; ``None`` means "inherit"."""
        d = self.cleaned_data
        out: dict = {}
        if self._inherit("auth_inherit"):
            out["auth_method"] = None
            out["auth_provider"] = None
        else:
            out["auth_method"] = d["auth_method"]
            out["auth_provider"] = d.get("auth_provider") if d["auth_method"] == AuthMethod.SSO else None
        out["two_factor_required"] = None if self._inherit("tfa_inherit") else bool(d.get("two_factor_required"))
        if self.is_root or not self._inherit("roles_inherit"):
            out["inherit_default_roles"] = False
            out["default_roles"] = set(d.get("default_roles") or [])
        else:
            out["inherit_default_roles"] = True
        return out


# --------------------------------------------------------------------------------------------
# Audit log


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150,
                            widget=forms.TextInput(attrs={"placeholder": "Username or job"}))
    action = forms.CharField(required=False, max_length=64,
                             widget=forms.TextInput(attrs={"placeholder": "Prefix, e.g. user.blocked"}))
    target = forms.CharField(required=False, max_length=150,
                             widget=forms.TextInput(attrs={"placeholder": "User or organization"}))
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", ValidationError("The end date is before the start date.", code="date_range"))
        return data

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if v}

