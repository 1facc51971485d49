"""django-scim2's URL conf at /scim/v2/, as its README mounts it."""

from django.urls import include, path

urlpatterns = [path("scim/v2/", include("django_scim.urls", namespace="scim"))]
