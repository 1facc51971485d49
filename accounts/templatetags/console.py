"""Template helpers for the console: form errors with their codes, state badges, org indentation."""

from __future__ import annotations

from django import template

register = template.Library()


def _errors(form, name):
    data = form.errors.as_data().get(name, []) if form is not None else []
    out = []
    for error in data:
        for item in error.error_list if hasattr(error, "error_list") else [error]:
            message = item.message % item.params if item.params else item.message
            out.append({"message": message, "code": item.code or ""})
    return out


@register.filter
def coded_errors(field):
    """Errors of a bound field as ``[{"message", "code"}]`` (codes help support and tests)."""
    return _errors(field.form, field.name)


@register.filter
def coded_non_field_errors(form):
    from django.forms.forms import NON_FIELD_ERRORS

    return _errors(form, NON_FIELD_ERRORS)


@register.filter
def indent(depth, base=0):
    """Left padding in rem for an org at ``depth`` below ``base``."""
    try:
        return max(int(depth) - int(base), 0) * 1.5
    except (TypeError, ValueError):
        return 0


MAX_INDENT_LEVEL = 12


@register.filter
def indent_level(depth, base=0):
    """Indentation level (0..12) of an org at ``depth`` below ``base``, for the ``indent-N`` CSS classes.

    A class instead of an inline ``style``: the Content-Security-Policy allows no inline styles."""
    try:
        return min(max(int(depth) - int(base), 0), MAX_INDENT_LEVEL)
    except (TypeError, ValueError):
        return 0


@register.simple_tag
def state_badge(state):
    from django.utils.html import format_html

    from accounts.identity.types import UserState

    label = UserState(state).label if state in UserState.values else state
    return format_html('<span class="badge badge-{}">{}</span>', state, label)


@register.filter
def audit_value(value):
    """A readable rendering of an audit old/new value (dicts as "key: value" pairs, lists joined)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {audit_value(v)}" for k, v in value.items() if v not in (None, "", [], {}))
    if isinstance(value, (list, tuple)):
        return ", ".join(str(audit_value(v)) for v in value) or "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value
