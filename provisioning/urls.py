"""Console routes: Identity management -> Provisioning, mounted at /provisioning/."""

from django.urls import path

from provisioning import (
    converters,  # noqa: F401  (registers <server_id:> and <run_id:>)
    views,
)
from provisioning.ldap import views as directory_views
from provisioning.scim import console as scim_console

app_name = "provisioning"

urlpatterns = [
    path("", views.source_list, name="source_list"),
    path("sources/add/", views.source_edit, name="source_add"),
    path("sources/<int:pk>/", views.source_detail, name="source_detail"),
    path("sources/<int:pk>/edit/", views.source_edit, name="source_edit"),
    path("sources/<int:pk>/rules/", views.source_rules, name="source_rules"),
    path("sources/<int:pk>/adopt/", views.source_adopt, name="source_adopt"),
    path("sources/<int:pk>/reapply/", views.source_reapply, name="source_reapply"),
    path("sources/<int:pk>/rules/<int:rule_pk>/", views.source_rules, name="rule_edit"),
    path("sources/<int:pk>/rules/<int:rule_pk>/delete/", views.rule_remove, name="rule_delete"),
    path("scim/", scim_console.provider_list, name="scim_providers"),
    path("scim/add/", scim_console.provider_add, name="scim_add"),
    path("scim/<int:pk>/rotate/", scim_console.provider_rotate, name="scim_rotate"),
    path("scim/<int:pk>/toggle/", scim_console.provider_toggle, name="scim_toggle"),
    path("scim/<int:pk>/basic/", scim_console.provider_basic, name="scim_basic"),
    path("scim/<int:pk>/delete/", scim_console.provider_delete, name="scim_delete"),
    path("scim/<int:pk>/log/", scim_console.provider_log, name="scim_log"),
    path("directories/add/", directory_views.directory_add, name="directory_add"),
    path("sources/<int:pk>/directory/", directory_views.directory_edit, name="directory_edit"),
    path("sources/<int:pk>/directory/test/", directory_views.directory_test, name="directory_test"),
    path("sources/<int:pk>/directory/sync/", directory_views.directory_sync, name="directory_sync"),
    path("sources/<int:pk>/directory/link/", directory_views.directory_link, name="directory_link"),
    path("runs/<run_id:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<run_id:run_id>/journal.csv", views.run_export, name="run_export"),
    path("runs/<run_id:run_id>/progress.json", views.run_progress, name="run_progress"),
]
