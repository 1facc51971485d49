"""A run id may be 36 characters: a bulk upload's run takes the upload's id (a UUID with dashes), which
its audit events already carry as ``job_id``, so the audit log links them to the run unchanged.
Widening a varchar is a catalogue change on PostgreSQL (no table rewrite)."""

from django.db import migrations, models

import provisioning.models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0009_rules8_drop_orphan_grants"),
    ]

    operations = [
        migrations.AlterField(
            model_name="provisioningrun",
            name="run_id",
            field=models.CharField(default=provisioning.models.new_run_id, max_length=36, unique=True),
        ),
    ]
