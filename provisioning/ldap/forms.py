"""The console's directory form: input shape only; ``provisioning.ldap.directories`` validates the
values (same codes as ``manage.py directory``)."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from accounts.forms import OrgChoiceField
from accounts.models import Organization
from provisioning.ldap.directories import MAPPABLE, DirectorySettings
from provisioning.models import Directory, Source


def _lines(value: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in (value or "").splitlines() if line.strip())


class DirectoryForm(forms.Form):
    """Add or edit a directory. The bind password is never shown; empty on edit keeps the stored one."""

    name = forms.CharField(max_length=120)
    org = OrgChoiceField(queryset=Organization.objects.all(), required=False, label="Organization for new users",
                         help_text="Empty: organizations are not managed (or set by the source's rules).")
    urls = forms.CharField(label="Server URLs", widget=forms.Textarea(attrs={"rows": 2}),
                           help_text="One per line (ldap:// or ldaps://), tried in order.")
    tls_mode = forms.ChoiceField(label="TLS", choices=Directory.TlsMode.choices, initial=Directory.TlsMode.NONE)
    ca_bundle = forms.CharField(label="CA certificate (PEM)", required=False,
                                widget=forms.Textarea(attrs={"rows": 3}))
    verify_tls = forms.BooleanField(label="Verify the server certificate", required=False, initial=True,
                                    help_text="Turning this off lets anyone on the network read the bind password.")
    bind_dn = forms.CharField(label="Bind DN", max_length=500, required=False)
    bind_password = forms.CharField(label="Bind password", required=False, strip=False,
                                    widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    base_dns = forms.CharField(label="Base DNs", widget=forms.Textarea(attrs={"rows": 2}), help_text="One per line.")
    preset = forms.ChoiceField(choices=Directory.Preset.choices, initial=Directory.Preset.OPENLDAP)
    user_filter = forms.CharField(max_length=1000, required=False, help_text="Empty: the preset's filter.")
    group_filter = forms.CharField(max_length=1000, required=False, help_text="Empty: the preset's filter.")
    attribute_map = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                                    help_text=f"name=attribute per line, overriding the preset ({', '.join(MAPPABLE)}).")
    page_size = forms.IntegerField(min_value=1, max_value=10000, initial=500)
    # Upper bounds keep timedelta and PostgreSQL's integer columns from overflowing into a 500 (review F8).
    interval_hours = forms.FloatField(label="Sync every (hours)", min_value=0.1, max_value=24 * 366, initial=12)
    reconcile_hours = forms.FloatField(
        label="Check for deleted or moved-out users every (hours)", min_value=0, max_value=24 * 366, initial=1,
        required=False,
        help_text="Incremental runs only see changed entries; this often one also reads every user's anchor. "
                  "0: every run. Empty: 1 hour.")
    full_hours = forms.FloatField(
        label="Read every entry (full run) every (hours)", min_value=0, max_value=24 * 366, initial=24,
        required=False,
        help_text="Between full runs, a sync reads only the entries changed since the last one. "
                  "0: every run is full. Empty: 24 hours.")
    deactivation_threshold_percent = forms.IntegerField(label="Hold deactivations above (% of users)", min_value=0,
                                                        max_value=100, initial=10)
    deactivation_threshold_min = forms.IntegerField(label="…or above (users), whichever is larger", min_value=0,
                                                    max_value=10_000_000, initial=50)
    password_sign_in = forms.BooleanField(
        label="Users may sign in with their directory password", required=False, initial=False,
        help_text="Checked live against the directory (never stored). Needs LDAPS or StartTLS with certificate "
                  "verification. Users of organizations that sign in through SSO keep using their identity provider.")

    def __init__(self, data=None, *, directory: Directory | None = None, **kwargs):
        if directory is not None and data is None:
            kwargs["initial"] = {
                "name": directory.source.name, "urls": "\n".join(directory.urls), "tls_mode": directory.tls_mode,
                "ca_bundle": directory.ca_bundle, "verify_tls": directory.verify_tls, "bind_dn": directory.bind_dn,
                "base_dns": "\n".join(directory.base_dns), "preset": directory.preset,
                "user_filter": directory.user_filter, "group_filter": directory.group_filter,
                "attribute_map": "\n".join(f"{k}={v}" for k, v in (directory.attribute_map or {}).items()),
                "page_size": directory.page_size, "interval_hours": directory.interval.total_seconds() / 3600,
                "reconcile_hours": directory.reconcile_every.total_seconds() / 3600,
                "full_hours": directory.full_every.total_seconds() / 3600,
                "deactivation_threshold_percent": directory.deactivation_threshold_percent,
                "deactivation_threshold_min": directory.deactivation_threshold_min,
                "password_sign_in": directory.password_sign_in,
            }
        super().__init__(data, **kwargs)
        if directory is not None:
            # The name is the source's; the org belongs to the source's settings page once created.
            del self.fields["name"], self.fields["org"]
            self.fields["bind_password"].help_text = "Leave empty to keep the stored password."

    def clean_attribute_map(self) -> dict[str, str]:
        mapping = {}
        for line in _lines(self.cleaned_data.get("attribute_map", "")):
            name, sep, attribute = line.partition("=")
            if not sep or not name.strip() or not attribute.strip():
                raise forms.ValidationError("Write one name=attribute per line.", code="attribute_map_invalid")
            mapping[name.strip()] = attribute.strip()
        return mapping

    def settings(self) -> DirectorySettings:
        data = self.cleaned_data
        return DirectorySettings(
            urls=_lines(data["urls"]), base_dns=_lines(data["base_dns"]), preset=data["preset"],
            bind_dn=data["bind_dn"], tls_mode=data["tls_mode"], ca_bundle=data["ca_bundle"],
            verify_tls=data["verify_tls"], user_filter=data["user_filter"], group_filter=data["group_filter"],
            page_size=data["page_size"], interval=timedelta(hours=data["interval_hours"]),
            reconcile_every=timedelta(hours=1 if data.get("reconcile_hours") is None else data["reconcile_hours"]),
            full_every=timedelta(hours=24 if data.get("full_hours") is None else data["full_hours"]),
            attribute_map=data["attribute_map"],
            deactivation_threshold_percent=data["deactivation_threshold_percent"],
            deactivation_threshold_min=data["deactivation_threshold_min"],
            password_sign_in=data["password_sign_in"],
        )


class LinkForm(forms.Form):
    """First-time linking: match unlinked directory entries to existing users by username or email."""

    match_by = forms.ChoiceField(
        choices=Source.AdoptBy.choices, initial=Source.AdoptBy.USERNAME,
        widget=forms.RadioSelect, label="Match existing users by",
        help_text="An email shared by several users links nobody (ambiguous).")
