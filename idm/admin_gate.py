"""The Django admin's login URL: the console sign-in for visitors, a clear 403 for signed-in non-staff.

The admin's own login form would skip the console sign-in (and its two-factor step), so visitors go
to the console sign-in. A signed-in user who is not Django staff used to bounce between the admin and
the console sign-in forever; they now get the console's 403 page saying the admin is for staff.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


def admin_login(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        if request.user.is_active and request.user.is_staff:
            return redirect("admin:index")
        raise PermissionDenied("the Django admin is for Django staff users only")
    url = reverse("accounts:login")
    query = request.META.get("QUERY_STRING", "")
    return redirect(f"{url}?{query}" if query else url)
