"""Django admin for superusers: read-only views of identity data.

Every identity change must go through the identity service (policy + audit), so the admin shows
users, orgs, roles, links and audit events but cannot change them; the console is where changes happen.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User

from accounts.models import AuditEvent, DirectoryGroup, ExternalIdentity, Organization, Role, UserProfile


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and details only: no add, change or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyUserAdmin(ReadOnlyAdmin, UserAdmin):
    pass


class ReadOnlyGroupAdmin(ReadOnlyAdmin, GroupAdmin):
    pass


admin.site.unregister(User)
admin.site.unregister(Group)
admin.site.register(User, ReadOnlyUserAdmin)
admin.site.register(Group, ReadOnlyGroupAdmin)


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    list_display = ("name", "parent", "path", "is_active", "auth_method")
    search_fields = ("name", "external_ref")


@admin.register(Role)
class RoleAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "scope", "builtin")


@admin.register(UserProfile)
class UserProfileAdmin(ReadOnlyAdmin):
    list_display = ("user", "org", "state", "source", "source_provider")
    list_filter = ("state", "source")


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyAdmin):
    list_display = ("user", "source", "provider", "external_id", "last_seen_at")


@admin.register(DirectoryGroup)
class DirectoryGroupAdmin(ReadOnlyAdmin):
    list_display = ("display_name", "source", "provider", "external_id")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "actor_label", "action", "target_label", "field", "source")
    list_filter = ("action", "source", "actor_type")
    search_fields = ("actor_label", "target_label", "action")
