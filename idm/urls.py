"""URL routes: the console at /, the Django admin at /django-admin/, SSO at /sso/, SCIM at /scim/v2/."""

from django.contrib import admin
from django.urls import include, path

from idm import admin_gate

urlpatterns = [
    # The admin's own login form would skip the console sign-in (and its two-factor step): send it
    # there; signed-in non-staff users get a 403 instead of a redirect loop (idm/admin_gate.py).
    path("django-admin/login/", admin_gate.admin_login),
    path("django-admin/", admin.site.urls),
    path("sso/", include("sso.urls")),
    path("scim/v2/", include("provisioning.scim.urls")),
    path("", include("ops.urls")),  # /healthz, /readyz, /metrics, /outbox/
    path("users/upload/", include("accounts.bulk_upload.urls")),
    path("provisioning/", include("provisioning.urls")),
    path("", include("accounts.urls")),
]
