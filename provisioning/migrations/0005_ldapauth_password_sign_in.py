from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("provisioning", "0004_directory_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="directory",
            name="password_sign_in",
            field=models.BooleanField(
                default=False, help_text="Users this directory manages may sign in with their directory password."),
        ),
    ]
