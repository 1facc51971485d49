"""URL routes: the console at /, the Django admin at /django-admin/, SSO at /sso/, SCIM at /scim/v2/."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # The admin's own login form would skip the console sign-in (and its two-factor step): send it there.
    path("django-admin/login/", RedirectView.as_view(pattern_name="accounts:login", query_string=True)),
    path("django-admin/", admin.site.urls),
    path("sso/", include("sso.urls")),
    path("", include("ops.urls")),  # /healthz, /readyz, /metrics, /outbox/
    path("users/upload/", include("accounts.bulk_upload.urls")),
    path("provisioning/", include("provisioning.urls")),
    path("", include("accounts.urls")),
]
