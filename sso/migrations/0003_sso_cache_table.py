"""Create the database cache table of the "sso" cache alias (replay and request state)."""

from django.core.management import call_command
from django.db import migrations


def forwards(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("sso", "0002_provider_config")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
