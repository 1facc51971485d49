# Issue 8: every role a user already holds was granted by hand (there were no sources yet), so each
# existing role-group membership gets a manual RoleGrant row. Without it, a source that later grants
# the same role would hold the only grant row and take the role away when it stops granting it.

from django.conf import settings
from django.db import migrations


def manual_grants(apps, schema_editor):
    Role = apps.get_model("accounts", "Role")
    RoleGrant = apps.get_model("provisioning", "RoleGrant")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    through = User.groups.through
    role_by_group = dict(Role.objects.values_list("group_id", "pk"))
    if not role_by_group:
        return
    batch = []
    rows = through.objects.filter(group_id__in=list(role_by_group)).values_list("user_id", "group_id")
    for user_id, group_id in rows.iterator(chunk_size=5000):
        batch.append(RoleGrant(user_id=user_id, role_id=role_by_group[group_id], source=None,
                               granted_by_label="before provisioning"))
        if len(batch) >= 5000:
            RoleGrant.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    RoleGrant.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):

    dependencies = [
        ("provisioning", "0001_prov_initial"),
        ("accounts", "0005_prov_owner_source"),
    ]

    operations = [migrations.RunPython(manual_grants, migrations.RunPython.noop)]
