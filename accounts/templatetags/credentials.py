"""The user page's "Sign-in and credentials" card (password, invitation, required actions, lock).

An inclusion tag so the user page view stays as it is: the card reads what it needs itself.
"""

from __future__ import annotations

from django import template
from django.utils import timezone

register = template.Library()


@register.inclusion_tag("credentials/_user_card.html", takes_context=True)
def credentials_card(context, subject):
    from accounts.access import Access
    from accounts.credentials import service
    from accounts.credentials.models import RequiredAction
    from accounts.credentials.views import may_manage_credentials
    from accounts.identity.privilege import may_change_user

    request = context["request"]
    is_self = subject.pk == request.user.pk
    pending = service.pending_actions(subject)
    can_manage = may_manage_credentials(Access.of(request.user), subject) and not is_self
    lock = service.active_lock(subject)
    return {
        "request": request, "csrf_token": context.get("csrf_token"), "subject": subject,
        "can_manage": can_manage,
        "can_unlock": bool(lock) and can_manage and may_change_user(request.user, subject),
        "sso_provider": service.sso_provider_name(subject),
        "has_password": subject.has_usable_password(),
        "waiting": service.is_waiting_for_invitation(subject),
        "invitation": getattr(subject, "invitation", None),
        "kinds": [(k, label, k in pending) for k, label in RequiredAction.Kind.choices],
        "pending": [label for k, label in RequiredAction.Kind.choices if k in pending],
        "lock": lock,
        "now": timezone.now(),
    }


@register.inclusion_tag("credentials/_sessions_card.html", takes_context=True)
def sessions_card(context, subject):
    """The user's signed-in sessions with "sign out" per session and "sign out everywhere"."""
    from accounts.access import Access
    from accounts.credentials import service
    from accounts.credentials.views import may_manage_credentials

    request = context["request"]
    is_self = subject.pk == request.user.pk
    can_end = is_self or may_manage_credentials(Access.of(request.user), subject)
    return {
        "request": request, "csrf_token": context.get("csrf_token"), "subject": subject, "is_self": is_self,
        "can_end": can_end, "sessions": service.user_sessions(subject) if can_end else None,
        "current_key": request.session.session_key,
    }
