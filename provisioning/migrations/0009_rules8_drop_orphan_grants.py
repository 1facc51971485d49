"""Delete role grant rows for roles their user does not hold (issue 8: a grant never outlives its
role). Rows like that were left when a role was removed by a path that did not clean them up; the
identity service's writer now deletes every grant row of a removed role, and a person may not remove
a role an enabled source grants (``role_granted_by_source``)."""

from django.db import migrations
from django.db.models import Exists, OuterRef


def drop_orphan_grants(apps, schema_editor):
    RoleGrant = apps.get_model("provisioning", "RoleGrant")
    Membership = apps.get_model("auth", "User").groups.through
    held = Membership.objects.filter(user_id=OuterRef("user_id"), group_id=OuterRef("role__group_id"))
    RoleGrant.objects.exclude(Exists(held)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0008_sync10_progress_reconcile"),
        ("accounts", "0010_search12_sort_indexes"),
    ]

    operations = [migrations.RunPython(drop_orphan_grants, migrations.RunPython.noop)]
