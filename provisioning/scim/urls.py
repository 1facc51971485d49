"""SCIM 2.0 routes, mounted at /scim/v2/ (endpoints relative to it, RFC 7644 §3.2)."""

from django.urls import path, re_path

from provisioning import converters  # noqa: F401  (registers <server_id:>)
from provisioning.scim import discovery, views
from provisioning.scim.views import scim_endpoint

app_name = "scim"

urlpatterns = [
    path("Users", views.users, name="users"),
    path("Users/.search", views.users_search, name="users_search"),
    path("Users/<server_id:scim_id>", views.user, name="user"),
    path("Groups", views.groups, name="groups"),
    path("Groups/.search", views.groups_search, name="groups_search"),
    path("Groups/<server_id:scim_id>", views.group, name="group"),
    path(".search", views.root_search, name="search"),
    path("ServiceProviderConfig", scim_endpoint(discovery.service_provider_config), name="spc"),
    path("ResourceTypes", scim_endpoint(discovery.resource_types), name="resource_types"),
    path("ResourceTypes/<str:key>", scim_endpoint(discovery.resource_types), name="resource_type"),
    path("Schemas", scim_endpoint(discovery.schemas), name="schemas"),
    path("Schemas/<str:key>", scim_endpoint(discovery.schemas), name="schema"),
    re_path(r"^(?:Me|Bulk)(?P<rest>/.*)?$", scim_endpoint(discovery.not_implemented), name="unsupported"),
    re_path(r"^.*$", scim_endpoint(views.unknown), name="unknown"),
]
