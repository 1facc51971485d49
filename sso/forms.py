"""Console forms for identity providers: validation only; writes go through ``sso.services``."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db.models.functions import Lower

from accounts.models import Organization
from sso.attributes import PRESETS, preset_fields
from sso.models import IdentityProvider


class ProviderForm(forms.ModelForm):
    """Add or edit a provider: metadata by URL or uploaded XML, mapping, request settings, switches."""

    # Metadata URLs typed without a scheme are https (metadata must come over TLS).
    metadata_url = forms.URLField(label="Metadata URL", max_length=1000, required=False, assume_scheme="https")
    metadata_file = forms.FileField(label="Upload metadata XML", required=False,
                                    help_text="Or enter a metadata URL above; idm re-fetches URLs on a schedule.")
    mapping_preset = forms.ChoiceField(choices=[(k, v[0]) for k, v in PRESETS.items()], required=False,
                                       help_text="Fills in the attribute names below when the default mapping is off.")

    class Meta:
        model = IdentityProvider
        fields = [
            "name", "enabled", "metadata_url", "metadata_verify_tls", "entity_id",
            "use_default_mapping", "mapping_preset", "username_attribute", "email_attribute",
            "first_name_attribute", "last_name_attribute",
            "authn_context_class", "authn_context_comparison", "digest_algorithm", "signature_algorithm",
            "sign_authn_requests", "name_id_format",
            "allow_idp_initiated", "allow_legacy_algorithms", "clock_skew_seconds", "jit_enabled", "jit_org",
        ]
        help_texts = {"entity_id": "Only needed when the metadata lists several identity providers."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["jit_org"].queryset = Organization.objects.filter(is_active=True)
        self.fields["entity_id"].required = False

    def clean_metadata_file(self):
        upload = self.cleaned_data.get("metadata_file")
        if not upload:
            return ""
        if upload.size > 10 * 1024 * 1024:
            raise forms.ValidationError("The file is too large.", code="metadata_too_large")
        return upload.read().decode("utf-8", errors="replace")

    def clean(self):
        data = super().clean()
        if not data.get("metadata_url") and not data.get("metadata_file") and not (self.instance and
                                                                                     self.instance.metadata_xml):
            raise forms.ValidationError("Enter the metadata URL or upload the metadata XML.", code="metadata_required")
        if data.get("jit_enabled") and not data.get("jit_org"):
            self.add_error("jit_org", forms.ValidationError("Choose the organization for new users.",
                                                            code="jit_org_required"))
        preset = data.get("mapping_preset")
        if preset and not data.get("use_default_mapping") and self.has_changed() and "mapping_preset" in self.changed_data:
            for field, value in preset_fields(preset).items():
                data[f"{field}_attribute"] = value
        return data


class BreakGlassForm(forms.Form):
    usernames = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, label="Break-glass users",
        help_text="One username per line. They keep password sign-in although their org uses this provider.",
    )

    def clean_usernames(self):
        names = [n.strip() for n in self.cleaned_data["usernames"].splitlines() if n.strip()]
        wanted = {n.lower() for n in names}
        # Usernames ignore case (the identity service keeps them unique that way): "Alice" is alice.
        users = list(get_user_model().objects.annotate(_lu=Lower("username")).filter(_lu__in=wanted))
        missing = sorted(wanted - {u.username.lower() for u in users})
        if missing:
            raise forms.ValidationError(f"No such user: {', '.join(missing)}", code="unknown_user")
        return users
