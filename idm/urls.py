"""URL routes: the console at /, the Django admin at /django-admin/, SSO at /sso/, SCIM at /scim/v2/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("django-admin/", admin.site.urls),
    path("sso/", include("sso.urls")),
    path("users/upload/", include("accounts.bulk_upload.urls")),
    path("", include("accounts.urls")),
]
