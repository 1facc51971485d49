"""Template helpers that show provisioning facts on accounts pages (role origins, owning source)."""

from __future__ import annotations

from django import template

from provisioning.models import RoleGrant

register = template.Library()


@register.simple_tag
def role_origins(user) -> dict[str, str]:
    """``{role slug: "Okta, manual"}`` for one user (one query): where each of their roles came from.

    A role held with no grant row predates provisioning or was granted by hand: "manual".
    """
    origins: dict[str, list[str]] = {}
    for slug, source_name in RoleGrant.objects.filter(user=user).values_list("role__slug", "source__name"):
        origins.setdefault(slug, []).append(source_name or "manual")
    return {slug: ", ".join(sorted(names)) for slug, names in origins.items()}


@register.filter
def origin_of(origins: dict[str, str], slug: str) -> str:
    return origins.get(slug, "manual")
