"""Console forms for provisioning: validation of input shape only; the rules themselves are checked
by ``provisioning.rules`` (through ``provisioning.services``) so every channel gets the same codes."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.core.exceptions import ValidationError

from accounts.forms import OrgChoiceField
from accounts.models import Organization, Role
from provisioning.models import JournalEntry, MappingRule, Source
from provisioning.services import RuleInput


class SourceForm(forms.ModelForm):
    """A source's registry entry and org settings (protocol settings come with SCIM and LDAP)."""

    grace_minutes = forms.IntegerField(label="Grace period (minutes)", min_value=0, max_value=60 * 24 * 30,
                                       initial=15, help_text="Blocked at once; deactivated after this long.")
    fixed_org = OrgChoiceField(queryset=Organization.objects.all(), required=False, label="Organization for new users")
    org_create_under = OrgChoiceField(queryset=Organization.objects.all(), required=False,
                                      label="Create missing organizations under")
    fallback_org = OrgChoiceField(queryset=Organization.objects.all(), required=False, label="Fallback organization")

    class Meta:
        model = Source
        fields = ["name", "slug", "kind", "enabled", "adoption_enabled", "adopt_by", "org_mode", "fixed_org",
                  "org_attribute", "org_create_under", "fallback_org"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["grace_minutes"].initial = int(self.instance.grace_period.total_seconds() // 60)
            # The slug is the protocol key of every link the source made: it never changes.
            self.fields["slug"].disabled = True
            self.fields["kind"].disabled = True

    def save(self, commit: bool = True) -> Source:
        source = super().save(commit=False)
        source.grace_period = timedelta(minutes=self.cleaned_data["grace_minutes"])
        return source


class RuleForm(forms.Form):
    """One mapping rule in the rules editor."""

    kind = forms.ChoiceField(choices=MappingRule.Kind.choices)
    position = forms.IntegerField(min_value=0, max_value=10_000, initial=0,
                                  help_text="Lower numbers are evaluated first (first match wins for organizations).")
    condition = forms.ChoiceField(choices=MappingRule.Condition.choices)
    attribute = forms.CharField(required=False, max_length=120, help_text="For the attribute conditions.")
    value = forms.CharField(max_length=1000, help_text="A group name or DN, an attribute value, a regular "
                            "expression, or a DN the user must be under.")
    target_org = OrgChoiceField(queryset=Organization.objects.all(), required=False, label="Organization")
    roles = forms.ModelMultipleChoiceField(queryset=Role.objects.all(), required=False, to_field_name="slug",
                                           widget=forms.CheckboxSelectMultiple)

    def rule_input(self) -> RuleInput:
        data = self.cleaned_data
        return RuleInput(
            kind=data["kind"], condition=data["condition"], value=data["value"], attribute=data["attribute"],
            position=data["position"] or 0, target_org_id=data["target_org"].pk if data["target_org"] else None,
            role_slugs=frozenset(r.slug for r in data["roles"]),
        )

    @classmethod
    def initial_for(cls, rule: MappingRule) -> dict:
        return {"kind": rule.kind, "position": rule.position, "condition": rule.condition,
                "attribute": rule.attribute, "value": rule.value, "target_org": rule.target_org_id,
                "roles": [r.slug for r in rule.roles.all()]}


class JournalFilterForm(forms.Form):
    """Filters of a run's journal."""

    user = forms.CharField(required=False, max_length=150)
    subject = forms.CharField(required=False, max_length=64, label="Field or membership")
    result = forms.ChoiceField(required=False, choices=[("", "Any result"), *JournalEntry.Result.choices])

    def clean_subject(self):
        value = self.cleaned_data["subject"].strip()
        if value and not value.replace("_", "").replace(":", "").isalnum():
            raise ValidationError("Use a field name such as email, org or roles.", code="subject_invalid")
        return value

    def apply(self, entries):
        if not self.is_valid():
            return entries
        data = self.cleaned_data
        if data["user"]:
            entries = entries.filter(user_label__icontains=data["user"])
        if data["subject"]:
            entries = entries.filter(subject=data["subject"])
        if data["result"]:
            entries = entries.filter(result=data["result"])
        return entries


MAX_ADOPTION_LINES = 5000


class AdoptionForm(forms.Form):
    """Who the source says it has: one candidate a line, ``external id, username, email`` (CSV)."""

    candidates = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}), max_length=1_000_000,
        help_text="One user a line: external id, username, email (as the source knows them).",
    )

    def clean_candidates(self):
        import csv

        from provisioning.adoption import AdoptionCandidate

        lines = [line for line in self.cleaned_data["candidates"].splitlines() if line.strip()]
        if len(lines) > MAX_ADOPTION_LINES:
            raise ValidationError(f"At most {MAX_ADOPTION_LINES} lines at once.", code="too_many_lines")
        out, seen = [], set()
        for number, row in enumerate(csv.reader(lines), start=1):
            cells = [c.strip() for c in row] + ["", ""]
            external_id, username, email = cells[:3]
            if not external_id or not (username or email) or len(row) > 3:
                raise ValidationError(f"Line {number}: expected external id, username, email.",
                                      code="adoption_line_invalid")
            if external_id in seen:
                raise ValidationError(f"Line {number}: external id {external_id!r} appears twice.",
                                      code="adoption_line_duplicate")
            seen.add(external_id)
            out.append(AdoptionCandidate(external_id=external_id[:255], username=username, email=email))
        return out


class TokenRotateForm(forms.Form):
    """The overlap window of a SCIM token rotation: hours the previous token keeps working.

    A form field rather than ``float()`` in the view: "nan", "inf" and "1e400" are form errors,
    not a 500 from ``timedelta`` (review F8)."""

    MAX_OVERLAP_HOURS = 24 * 30

    overlap_hours = forms.FloatField(
        label="Overlap (hours)", min_value=0, max_value=MAX_OVERLAP_HOURS, required=False,
        error_messages={"invalid": "Enter the overlap as a number of hours (0 to 720).",
                        "min_value": "Enter the overlap as a number of hours (0 to 720).",
                        "max_value": "Enter the overlap as a number of hours (0 to 720)."},
    )

    def overlap(self) -> timedelta:
        hours = self.cleaned_data.get("overlap_hours")
        return timedelta(hours=24 if hours is None else hours)
